package pgbin

import "testing"

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in    string
		major int
		full  string
	}{
		{"pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n", 15, "15.14"},
		{"initdb (PostgreSQL) 18.0\n", 18, "18.0"},
		{"postgres (PostgreSQL) 12.22\n", 12, "12.22"},
		{"pg_ctl (PostgreSQL) 17beta1\n", 17, "17"},
	}
	for _, tt := range tests {
		major, full, err := ParseVersion(tt.in)
		if err != nil || major != tt.major || full != tt.full {
			t.Errorf("ParseVersion(%q) = %d, %q, %v, want %d, %q", tt.in, major, full, err, tt.major, tt.full)
		}
	}
	if _, _, err := ParseVersion("mysqldump  Ver 8.0"); err == nil {
		t.Error("ParseVersion accepted a non-PostgreSQL version")
	}
}

func TestNewest(t *testing.T) {
	tools := []Tool{{Path: "/a/18", Major: 18}, {Path: "/b/15", Major: 15}, {Path: "/c/13", Major: 13}}
	tests := []struct {
		lo, hi int
		want   string
		ok     bool
	}{
		{0, 0, "/a/18", true}, {13, 16, "/b/15", true}, {12, 13, "/c/13", true}, {16, 17, "", false},
	}
	for _, tt := range tests {
		got, ok := Newest(tools, tt.lo, tt.hi)
		if got.Path != tt.want || ok != tt.ok {
			t.Errorf("Newest(%d, %d) = %q, %v, want %q, %v", tt.lo, tt.hi, got.Path, ok, tt.want, tt.ok)
		}
	}
}
