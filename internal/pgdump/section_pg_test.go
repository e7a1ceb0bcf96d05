package pgdump

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/internal/pgbin"
	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestSectionsAsListingAndScript: the two sections' renderings list what
// pg_restore -l lists, line for line, and their scripts, run on a session,
// make the schema pg_restore makes; an excluded entry and a disowned owner
// are left out.
func TestSectionsAsListingAndScript(t *testing.T) {
	ctx := context.Background()
	c := pgtest.Start(t, pgtest.Source)
	pgtest.Exec(t, c, "postgres", "CREATE DATABASE diverse", "CREATE DATABASE by_script", "CREATE DATABASE by_restore", "CREATE ROLE r1", "CREATE ROLE \"odd owner\"")
	pgtest.Exec(t, c, "diverse",
		"CREATE EXTENSION pg_trgm",
		`CREATE SCHEMA "s; Type: x"`,
		`CREATE TYPE "s; Type: x".mood AS ENUM ('a', 'b')`,
		`CREATE DOMAIN "s; Type: x".pos AS int CHECK (VALUE > 0)`,
		`CREATE TABLE "s; Type: x".p (id int PRIMARY KEY, k "s; Type: x".pos) PARTITION BY RANGE (id)`,
		`CREATE TABLE "s; Type: x".p1 PARTITION OF "s; Type: x".p FOR VALUES FROM (0) TO (100)`,
		`CREATE TABLE "s; Type: x"."café table" (id int PRIMARY KEY, pid int REFERENCES "s; Type: x".p (id), m "s; Type: x".mood, t text)`,
		`CREATE INDEX trgm ON "s; Type: x"."café table" USING gin (t gin_trgm_ops)`,
		`COMMENT ON TABLE "s; Type: x"."café table" IS 'hello'`,
		`GRANT SELECT ON "s; Type: x"."café table" TO r1`,
		`ALTER DEFAULT PRIVILEGES IN SCHEMA "s; Type: x" GRANT SELECT ON TABLES TO r1`,
		`CREATE MATERIALIZED VIEW "s; Type: x".mv AS SELECT * FROM "s; Type: x"."café table"`,
		`CREATE FUNCTION "s; Type: x".f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`CREATE TRIGGER tr BEFORE INSERT ON "s; Type: x"."café table" FOR EACH ROW EXECUTE FUNCTION "s; Type: x".f()`,
		`CREATE TABLE public.owned (a int CHECK (a > 0))`,
		`ALTER TABLE public.owned OWNER TO "odd owner"`,
		`CREATE PUBLICATION pub1 FOR TABLE "s; Type: x"."café table"`,
		`CREATE POLICY pol ON "s; Type: x"."café table" USING (true)`)
	pgDump := newest(ctx, t, "pg_dump")
	pgRestore := newest(ctx, t, "pg_restore")
	dump := filepath.Join(t.TempDir(), "schema.dump")
	run(t, pgDump, "-Fc", "--section=pre-data", "--section=post-data", "-f", dump, c.URI("diverse"))

	want := strings.Split(strings.TrimSpace(run(t, pgRestore, "-l", dump)), "\n")
	want = slices.DeleteFunc(want, func(l string) bool { return strings.HasPrefix(l, ";") || l == "" })
	sections := map[string]*Section{}
	var got []string
	for _, name := range []string{"pre-data", "post-data"} {
		s := ParseSection([]byte(run(t, pgRestore, "--verbose", "--section="+name, "-f", "-", dump)))
		if !s.OK {
			t.Fatalf("the %s rendering cannot be read", name)
		}
		sections[name] = s
		got = append(got, strings.Split(strings.TrimSpace(s.Listing()), "\n")...)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the renderings list\n%s\npg_restore -l lists\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The scripts make what pg_restore makes, less what was left out.
	keep := func(e Entry) bool { return !(e.Kind == "PUBLICATION" || e.Kind == "PUBLICATION TABLE") }
	disowned := map[string]bool{"odd owner": true}
	for _, name := range []string{"pre-data", "post-data"} {
		var entries []Entry
		for _, e := range ParseTOC([]byte(sections[name].Listing())) {
			if keep(e) {
				entries = append(entries, e)
			}
		}
		script := sections[name].Script(entries, name == "pre-data", disowned)
		if strings.Contains(script, "pub1") || strings.Contains(script, `OWNER TO "odd owner"`) {
			t.Errorf("the %s script holds what was left out", name)
		}
		conn := pgtest.Connect(t, c, "by_script")
		if _, err := conn.PgConn().Exec(ctx, "SET standard_conforming_strings = on; SET client_encoding = "+quote(sections[name].Encoding)).ReadAll(); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.PgConn().Exec(ctx, script).ReadAll(); err != nil {
			t.Fatalf("the %s script: %v", name, err)
		}
		conn.Close(ctx)
		run(t, pgRestore, "--section="+name, "-d", c.URI("by_restore"), dump)
	}
	pgtest.Exec(t, c, "by_restore", "DROP PUBLICATION pub1", "ALTER TABLE public.owned OWNER TO postgres")
	norm := func(db string) string {
		out := run(t, pgDump, "-s", c.URI(db))
		var kept []string
		for l := range strings.Lines(out) {
			if !strings.HasPrefix(l, `\`) && !strings.HasPrefix(l, "-- Dumped") {
				kept = append(kept, l)
			}
		}
		return strings.Join(kept, "")
	}
	if a, b := norm("by_script"), norm("by_restore"); a != b {
		t.Errorf("the scripts made\n%s\npg_restore made\n%s", a, b)
	}
	if !strings.Contains(norm("by_script"), "CREATE TRIGGER tr") {
		t.Error("the comparison holds no trigger: it proves nothing")
	}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func newest(ctx context.Context, t *testing.T, program string) string {
	t.Helper()
	tools := pgbin.Find(ctx, program, pgbin.SearchDirs(ctx), nil)
	if len(tools) == 0 {
		t.Skipf("no %s on this machine", program)
	}
	return tools[0].Path
}

func run(t *testing.T, program string, args ...string) string {
	t.Helper()
	out, err := exec.Command(program, args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("%s %s: %s", filepath.Base(program), strings.Join(args, " "), msg)
	}
	return string(out)
}
