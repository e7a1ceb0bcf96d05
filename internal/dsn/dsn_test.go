package dsn

import (
	"reflect"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"uri with password", "postgres://app:s3cret@db.example.com:5432/shop", "postgres://app:***@db.example.com:5432/shop"},
		{"uri without password", "postgres://app@db:5432/shop?sslmode=require", "postgres://app@db:5432/shop?sslmode=require"},
		{"uri with encoded password", "postgresql://app:p%40ss%2Fw@h/db", "postgresql://app:***@h/db"},
		{"password in query", "postgres://h/db?password=x&sslmode=require", "postgres://h/db?password=***&sslmode=require"},
		{"both places", "postgres://u:a@h/db?password=b", "postgres://u:***@h/db?password=***"},
		{"key value", "host=h user=u password=secret dbname=d", "host=h user=u password=*** dbname=d"},
		{"quoted key value", `host=h password='sec ret\'s' sslmode=require`, "host=h password=*** sslmode=require"},
		{"unparseable", "host=h password='open", "<unparseable connection string>"},
		{"slash in a raw uri password", "postgres://app:Hunter2/TopSecret@db.example.com:5432/postgres", "<unparseable connection string>"},
		{"delimiters in a raw uri password", "postgres://app:p@ss:w/rd#&?@db.example.com/postgres", "<unparseable connection string>"},
		{"space in an unquoted password", "host=h password=Top Secret", "<unparseable connection string>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.in)
			if got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, secret := range []string{"s3cret", "secret", "sec ret", "p%40ss", "Hunter2", "TopSecret", "Secret", "ss:w", "rd#"} {
				if strings.Contains(got, secret) {
					t.Errorf("Redact(%q) = %q still holds %q", tt.in, got, secret)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"postgres://u:p@h:5432/db?sslmode=require", ""},
		{"postgresql:///db?host=/tmp", ""},
		{"host=localhost port=5432 dbname=postgres", ""},
		{"host = localhost  password = 'a b'", ""},
		{"", "is empty"},
		{"mysql://h/db", `has scheme "mysql"`},
		{"postgres://u:p@h:notaport/db", "not a port"},
		{"localhost:5432", `a word without "=" at its start`},
		{"host=h password=Top Secret", `a word without "=" after the value of "password"`},
		{"postgres://app:Hunter2/TopSecret@db.example.com:5432/postgres", "what follows the host is not a port"},
		{"postgres://app:p@ss:w/rd#&?@db.example.com/postgres", "is not a valid URI"},
		{"host=h password='x", "unterminated"},
	}
	for _, tt := range tests {
		err := Validate(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Validate(%q) = %v, want nil", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Validate(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		}
		if err != nil && (strings.Contains(err.Error(), ":p@") || strings.Contains(err.Error(), "Hunter2") || strings.Contains(err.Error(), "Secret") || strings.Contains(err.Error(), "ss:w")) {
			t.Errorf("Validate(%q) error leaks the password: %v", tt.in, err)
		}
	}
}

func TestParseKeyValue(t *testing.T) {
	got, err := ParseKeyValue(`host=h  password='it\'s \\ x' user=u\ v`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{"host", "h"}, {"password", `it's \ x`}, {"user", "u v"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseKeyValue = %q, want %q", got, want)
	}
	if q := QuoteValue(`it's`); q != `'it\'s'` {
		t.Errorf("QuoteValue = %s, want 'it\\'s'", q)
	}
}

// TestRedactBrokenURI: a URI that does not parse is shown as nothing of
// it: where its password ends cannot be told.
func TestRedactBrokenURI(t *testing.T) {
	got := Redact("mysql://b:hunter2@h:x/db?password=hunter3")
	if want := "<unparseable connection string>"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}

func TestForTool(t *testing.T) {
	tests := []struct {
		in, db, want, pw string
	}{
		{"postgres://u:p%40ss@h:5432/postgres?sslmode=require", "My DB", "postgres://u@h:5432/My%20DB?sslmode=require", "p@ss"},
		{"postgres://u@h/postgres?password=x&dbname=y", "shop", "postgres://u@h/shop", "x"},
		{"host=h user=u password='a b' dbname=postgres sslmode=disable", "it's", `host=h user=u sslmode=disable dbname='it\'s'`, "a b"},
		{"postgres://u@h/db?client_encoding=LATIN1&sslmode=disable", "shop", "postgres://u@h/shop?sslmode=disable", ""},
		{"host=h client_encoding=LATIN1 dbname=db", "shop", "host=h dbname=shop", ""},
	}
	for _, tt := range tests {
		got, pw := ForTool(tt.in, tt.db)
		if got != tt.want || pw != tt.pw {
			t.Errorf("ForTool(%q, %q) = %q, %q, want %q, %q", tt.in, tt.db, got, pw, tt.want, tt.pw)
		}
	}
	if !HasPassword("host=h password=x") || HasPassword("postgres://u@h/db") || !HasPassword("postgres://u:x@h/db") {
		t.Error("HasPassword is wrong")
	}
}

func TestReplacePassword(t *testing.T) {
	tests := []struct {
		in, want string
		found    bool
	}{
		{"postgres://u:p%40ss@h:5432/db?sslmode=require", "postgres://u:${PW}@h:5432/db?sslmode=require", true},
		{"postgres://u@h/db?password=secret&sslmode=require", "postgres://u@h/db?password=${PW}&sslmode=require", true},
		{"host=h password='a b' user=u", "host=h password=${PW} user=u", true},
		{"postgres://u@h/db?sslpassword=k", "postgres://u@h/db?sslpassword=k", false},
		{"host=h user=u", "host=h user=u", false},
	}
	for _, tt := range tests {
		got, found := ReplacePassword(tt.in, "${PW}")
		if got != tt.want || found != tt.found {
			t.Errorf("ReplacePassword(%q) = %q, %v, want %q, %v", tt.in, got, found, tt.want, tt.found)
		}
	}
}

func TestWithPassword(t *testing.T) {
	tests := []struct{ in, pw, want string }{
		{"postgres://u@h/shop?sslmode=require", "p@ss", "postgres://u:p%40ss@h/shop?sslmode=require"},
		{"postgres://u@h/shop?password=old", "new", "postgres://u@h/shop?password=new"},
		{"host=h dbname=shop", "a b", "host=h dbname=shop password='a b'"},
		{"host=h password=old dbname=shop", "new", "host=h dbname=shop password=new"},
		{"host=h dbname=shop", "", "host=h dbname=shop"},
	}
	for _, tt := range tests {
		if got := WithPassword(tt.in, tt.pw); got != tt.want {
			t.Errorf("WithPassword(%q, %q) = %q, want %q", tt.in, tt.pw, got, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u@%2Fvar%2Frun%2Fpostgresql/db", "postgres://u@/db?host=%2Fvar%2Frun%2Fpostgresql"},
		{"postgresql://u:p%40w@%2ftmp:5433/db?sslmode=disable", "postgresql://u:p%40w@/db?host=%2Ftmp&port=5433&sslmode=disable"},
		{"postgres://%2Ftmp", "postgres://?host=%2Ftmp"},
		{"postgres://u@h:5432/db", "postgres://u@h:5432/db"},
		{"host=/tmp dbname=db", "host=/tmp dbname=db"},
	}
	for _, tt := range tests {
		got := Normalize(tt.in)
		if got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := Validate(got); err != nil {
			t.Errorf("Validate(Normalize(%q)) = %v", tt.in, err)
		}
	}
}
