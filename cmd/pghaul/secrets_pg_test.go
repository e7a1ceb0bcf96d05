package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestNoPasswordAnywhere runs a whole live migration with a password full
// of URI delimiters, in a URI (source) and in key=value form (target), and
// looks for it in every output, the state directory, the plan file and
// both servers' logs.
func TestNoPasswordAnywhere(t *testing.T) {
	t.Parallel()
	const pw = `p@ss:w/rd#&? %x`
	src, dst := pgtest.Pair(t, pgtest.WithPassword(pw))
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", liveSource...)
	target := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable password='%s'", dst.Port, pw)
	cfg := writeConfig(t, src.URI("postgres"), target, "method: replication\ndatabases: {include: [shop]}\nreplication: {max_lag_bytes: 0, stop: true}\n")
	planFile := filepath.Join(t.TempDir(), "plan.json")
	var outputs []string
	for _, args := range [][]string{
		{"validate", "-c", cfg},
		{"plan", "-c", cfg, "-o", planFile},
		{"plan", "-c", cfg, "--format", "json"},
		{"apply", "-c", cfg, planFile},
		{"status", "-c", cfg},
		{"cleanup", "-c", cfg, "--unfreeze"},
		{"verify", "-c", cfg},
	} {
		r := runBin(t, []string{"PGHAUL_LAG_POLL=100ms"}, args...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", args[0], r.code, r.stdout, r.stderr)
		}
		outputs = append(outputs, r.stdout, r.stderr)
	}
	assertSameRows(t, src, dst, "shop")
	files := map[string]string{"plan file": planFile, "source server log": src.LogFile(), "target server log": dst.LogFile()}
	state, _ := filepath.Glob(filepath.Join(cfg+".state", "*"))
	for _, f := range state {
		files["state "+filepath.Base(f)] = f
	}
	for what, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if holdsSecret(string(b), pw) {
			t.Errorf("the %s (%s) holds the password", what, path)
		}
	}
	for i, out := range outputs {
		if holdsSecret(out, pw) {
			t.Errorf("output %d holds the password:\n%s", i, out)
		}
	}
}

// holdsSecret looks for the password as written and as a URI or a query
// string encodes it.
func holdsSecret(s, pw string) bool {
	for _, form := range []string{pw, url.PathEscape(pw), url.QueryEscape(pw), strings.TrimPrefix(url.UserPassword("", pw).String(), ":")} {
		if strings.Contains(s, form) {
			return true
		}
	}
	return false
}

// TestRefusedProbeLogsNoPassword: plan's subscription probe, run by a
// target role that may not subscribe (a non-superuser before 16, which
// cannot quiet the server's statement logging), must not leave the
// source's password in the target's log with the refused statement.
func TestRefusedProbeLogsNoPassword(t *testing.T) {
	t.Parallel()
	const pw = "Src-pw 9"
	src, dst := pgtest.Pair(t, pgtest.WithPassword(pw))
	pgtest.Exec(t, src, "postgres", "CREATE TABLE orders (id int PRIMARY KEY)") // something to replicate
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE PASSWORD 'Mig-pw'")
	cfg := writeConfig(t, src.URI("postgres"), dst.URIAs("migrator", "Mig-pw", "postgres"), "method: replication\n")
	r := runBin(t, nil, "plan", "-c", cfg)
	if dst.Major < 16 && (r.code == 0 || !strings.Contains(r.stdout, "no-subscription-privilege")) {
		t.Errorf("plan with a target role that may not subscribe: exit %d, want no-subscription-privilege\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(dst.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if holdsSecret(string(b), pw) {
		t.Errorf("the target's log holds the source's password:\n%s", b)
	}
}
