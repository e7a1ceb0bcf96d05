package pgdump

import "testing"

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
		if e.Kind != tt.kind || e.Schema != tt.schema || e.Tag != tt.tag || e.Owner != tt.owner {
			t.Errorf("parseEntry(%q) = %q %q %q %q", tt.line, e.Kind, e.Schema, e.Tag, e.Owner)
		}
	}
}
