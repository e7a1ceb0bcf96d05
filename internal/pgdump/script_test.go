package pgdump

import "testing"

func TestRestoreScript(t *testing.T) {
	out := "--\n-- PostgreSQL database dump\n--\n\n\\restrict AbC123\n\nBEGIN;\nSET client_encoding = 'LATIN1';\n" +
		"CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'SET client_encoding = ''UTF8'';' $$;\nCOMMIT;\n\n\\unrestrict AbC123\n"
	script, encoding, ok := RestoreScript([]byte(out))
	if !ok || encoding != "LATIN1" {
		t.Fatalf("restoreScript = %q, %v; want LATIN1, true", encoding, ok)
	}
	want := "--\n-- PostgreSQL database dump\n--\n\n\nBEGIN;\nSET client_encoding = 'LATIN1';\n" +
		"CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'SET client_encoding = ''UTF8'';' $$;\nCOMMIT;\n\n"
	if script != want {
		t.Errorf("script =\n%q\nwant\n%q", script, want)
	}
	// A line of a function's body that starts with a backslash cannot be
	// told from a psql command: pg_restore restores that archive.
	for _, bad := range []string{"SELECT 1;\n\\connect other\n", "CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'a\n\\b'; END $$;\n", "\\restrict\n"} {
		if _, _, ok := RestoreScript([]byte(bad)); ok {
			t.Errorf("RestoreScript(%q) is ok; want refused", bad)
		}
	}
}
