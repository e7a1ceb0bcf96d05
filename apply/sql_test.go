package apply

import (
	"slices"
	"testing"
)

func TestSetClause(t *testing.T) {
	tests := map[string]string{
		"work_mem=8MB":                   `"work_mem" TO '8MB'`,
		`search_path="$user", public`:    `"search_path" TO '$user', 'public'`,
		`search_path=sales, "Odd, name"`: `"search_path" TO 'sales', 'Odd, name'`,
		"application_name=it's":          `"application_name" TO 'it''s'`,
		"search_path=":                   `"search_path" TO ''`,
	}
	for in, want := range tests {
		if got := setClause(in); got != want {
			t.Errorf("setClause(%q) = %s, want %s", in, got, want)
		}
	}
	if got := splitGUCList(`a, "b""c", d`); !slices.Equal(got, []string{"a", `b"c`, "d"}) {
		t.Errorf("splitGUCList = %q", got)
	}
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		line                     string
		kind, schema, tag, owner string
	}{
		{"2; 3079 16387 EXTENSION - pg_trgm ", "EXTENSION", "-", "pg_trgm", ""},
		{"3429; 0 0 COMMENT - EXTENSION pg_trgm ", "COMMENT", "-", "EXTENSION pg_trgm", ""},
		{"3270; 2606 16484 CONSTRAINT s orders orders_pkey postgres", "CONSTRAINT", "s", "orders orders_pkey", "postgres"},
		{"3272; 2606 16488 FK CONSTRAINT s items items_order_id_fkey app", "FK CONSTRAINT", "s", "items items_order_id_fkey", "app"},
		{"3420; 0 16499 MATERIALIZED VIEW DATA public mv postgres", "MATERIALIZED VIEW DATA", "public", "mv", "postgres"},
		{"3421; 2613 16504 BLOB - 16504 postgres", "BLOB", "-", "16504", "postgres"},
		{"3430; 0 0 ACL s TABLE orders postgres", "ACL", "s", "TABLE orders", "postgres"},
		{"219; 1259 16493 TABLE public my table app", "TABLE", "public", "my table", "app"},
	}
	for _, tt := range tests {
		e := parseEntry(tt.line)
		if e.kind != tt.kind || e.schema != tt.schema || e.tag != tt.tag || e.owner != tt.owner {
			t.Errorf("parseEntry(%q) = %q %q %q %q", tt.line, e.kind, e.schema, e.tag, e.owner)
		}
	}
}
