package pgdump

import (
	"slices"
	"strings"
	"testing"
)

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

func TestSplitEntries(t *testing.T) {
	script := strings.Join([]string{
		"-- Started on 2026-12-07 03:44:59 UTC",
		"",
		"SET statement_timeout = 0;",
		"SELECT pg_catalog.set_config('search_path', '', false);",
		"",
		"--",
		"-- TOC entry 217 (class 1255 OID 16394)",
		"-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres",
		"-- Data Pos: 0",
		"--",
		"",
		"CREATE FUNCTION public.f() RETURNS integer",
		"    LANGUAGE sql",
		"    AS $$SELECT 1$$;",
		"",
		"ALTER FUNCTION public.f() OWNER TO postgres;",
		"",
		"SET default_tablespace = '';",
		"",
		"--",
		"-- TOC entry 214 (class 1259 OID 16384)",
		"-- Dependencies: 217",
		"-- Name: a; Type: TABLE; Schema: public; Owner: postgres",
		"--",
		"",
		"CREATE TABLE public.a (id integer);",
		"",
		"-- Completed on 2026-12-07 03:44:59 UTC",
		"",
		"--",
		"-- PostgreSQL database dump complete",
		"--",
		"",
	}, "\n")
	pre, ids, pieces, ok := splitEntries(script)
	if !ok || !strings.HasSuffix(pre, "SELECT pg_catalog.set_config('search_path', '', false);") {
		t.Errorf("preamble = %q, %v", pre, ok)
	}
	if len(pieces) != 2 {
		t.Fatalf("%d pieces, want 2: %q", len(pieces), pieces)
	}
	if !slices.Equal(ids, []string{"217", "214"}) {
		t.Errorf("ids = %v, want 217 then 214 as rendered", ids)
	}
	if p := pieces["217"]; !strings.Contains(p, "CREATE FUNCTION") || strings.Contains(p, "default_tablespace") || !strings.HasSuffix(p, "OWNER TO postgres;") {
		t.Errorf("piece 217 = %q", p)
	}
	if p := pieces["214"]; !strings.HasPrefix(p, "\nSET default_tablespace = '';") || !strings.Contains(p, "CREATE TABLE public.a") || strings.Contains(p, "Completed") {
		t.Errorf("piece 214 = %q", p)
	}
	// A header in a function's body: the same ID twice refuses the split.
	if _, _, _, ok := splitEntries(script + "\n--\n-- TOC entry 214 (class 1259 OID 16384)\n--\n"); ok {
		t.Error("a repeated entry was split")
	}
}

func TestDependenciesAndSettings(t *testing.T) {
	piece := "SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n--\n-- TOC entry 214 (class 1259 OID 328411)\n-- Dependencies: 839 12\n-- Name: t; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.t (\n    m public.mood\n);\n-- Dependencies: 1\n"
	if got := Dependencies(piece); !slices.Equal(got, []string{"839", "12"}) {
		t.Errorf("Dependencies = %q, want [839 12]", got)
	}
	if got := Dependencies("--\n-- TOC entry 215 (class 1259 OID 328416)\n-- Name: t2; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE x ();\n-- Dependencies: 3\n"); got != nil {
		t.Errorf("Dependencies of an entry without any = %q, want none (the line after its header is the entry's own text)", got)
	}
	if got := Settings(piece); !slices.Equal(got, []string{"SET default_tablespace = '';", "SET default_table_access_method = heap;"}) {
		t.Errorf("Settings = %q", got)
	}
}
