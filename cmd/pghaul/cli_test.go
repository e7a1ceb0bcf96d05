package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/config"
)

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCLIWith(env, args...)
}

func runCLIB(b *testing.B, args ...string) result {
	b.Helper()
	return runCLIWith(nil, args...)
}

func runCLIWith(env map[string]string, args ...string) result {
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := run(context.Background(), args, &out, &errb, lookup)
	return result{code, out.String(), errb.String()}
}

// assertOneLineErrors checks that stderr is only "pghaul: ..." lines.
func assertOneLineErrors(t *testing.T, r result) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "pghaul: ") {
			t.Errorf("stderr line %q does not start with \"pghaul: \"", l)
		}
	}
	if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "Usage:") {
		t.Errorf("stderr holds a stack trace or usage text:\n%s", r.stderr)
	}
}

func TestValidateExamples(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		r := runCLI(t, nil, "validate", "-c", f, "--allow-missing-env")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "config OK: ") {
			t.Errorf("validate %s = exit %d, stdout %q, stderr %q", f, r.code, r.stdout, r.stderr)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	base := "version: 1\nsource: {uri: \"postgres://a@src/postgres\"}\ntarget: {uri: \"postgres://b@dst/postgres\"}\n"
	tests := []struct {
		name, doc, want string
	}{
		{"typo key", base + "replication: {max_lag_byte: 1}\n", `m.yaml:4:15: unknown key "replication.max_lag_byte" (did you mean "replication.max_lag_bytes"?)`},
		{"missing variable", "version: 1\nsource: {uri: \"postgres://a:${NOPE_PW}@src/postgres\"}\ntarget: {uri: \"postgres://b@dst/postgres\"}\n", "m.yaml:2:29: source.uri: environment variable NOPE_PW is not set"},
		{"wrong type", base + "replication: {max_lag_bytes: 1, stop: maybe}\n", `m.yaml:4:39: replication.stop: expected true or false, got "maybe"`},
		{"skip with only", base + "tables: {skip: [a], only: [b]}\n", "m.yaml:4:27: tables.only: cannot be used together with tables.skip"},
		{"stop without lag", base + "replication: {stop: true}\n", "m.yaml:4:21: replication.stop: true requires replication.max_lag_bytes"},
		{"unknown method", base + "method: magic\n", `m.yaml:4:9: method: "magic" is not one of auto, replication, dump`},
		{"version 7", strings.Replace(base, "version: 1", "version: 7", 1), "m.yaml:1:10: version: 7 is not a version this pghaul reads"},
		{"version one", strings.Replace(base, "version: 1", "version: one", 1), `m.yaml:1:10: version: expected a whole number, got "one"`},
		// A password written raw with URI delimiters, or unquoted with a
		// space: none of it is printed (the test below checks).
		{"raw password with a slash", strings.Replace(base, "postgres://a@src/postgres", "postgres://app:Hunter2/TopSecret@db.example.com:5432/postgres", 1),
			"m.yaml:2:15: source.uri: is not a valid URI (what follows the host is not a port)"},
		{"raw password with delimiters", strings.Replace(base, "postgres://a@src/postgres", "postgres://app:p@ss:w/rd#&?@db.example.com/postgres", 1),
			"m.yaml:2:15: source.uri: is not a valid URI"},
		{"unquoted password with a space", strings.Replace(base, "postgres://a@src/postgres", "host=db password=Top Secret", 1),
			"m.yaml:2:15: source.uri: is neither a postgres"}, // (filepath.Join would fold "://")
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "m.yaml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, nil, "validate", "-c", path)
			if r.code != 1 {
				t.Errorf("exit code = %d, want 1", r.code)
			}
			if want := "pghaul: " + filepath.Join(dir, tt.want); !strings.Contains(r.stderr, want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, want)
			}
			if n := strings.Count(r.stderr, "\n"); n != 1 {
				t.Errorf("stderr has %d lines, want 1: %q", n, r.stderr)
			}
			for _, secret := range []string{"Hunter2", "TopSecret", "Secret", "ss:w", "rd#"} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("the output holds %q of a password: %q", secret, r.stderr)
				}
			}
			assertOneLineErrors(t, r)
		})
	}
}

func TestUsageErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, "pghaul: unexpected argument bogus; run 'pghaul --help'\n"},
		{[]string{"validate"}, "pghaul: missing flags: --config=FILE; run 'pghaul validate --help'\n"},
		{[]string{"validate", "-c", "x.yaml", "--frobnicate"}, "pghaul: unknown flag --frobnicate; run 'pghaul validate --help'\n"},
		{[]string{"--log-format", "xml", "version"}, ""},
		{[]string{"validate", "-c", "/nonexistent/m.yaml"}, "pghaul: read config: open /nonexistent/m.yaml: no such file or directory\n"},
	}
	for _, tt := range tests {
		r := runCLI(t, nil, tt.args...)
		if r.code != 1 {
			t.Errorf("%v: exit code = %d, want 1", tt.args, r.code)
		}
		if tt.want != "" && r.stderr != tt.want {
			t.Errorf("%v: stderr = %q, want %q", tt.args, r.stderr, tt.want)
		}
		assertOneLineErrors(t, r)
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Exit codes: 0 success, 1 error") {
		t.Errorf("--help = exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runCLI(t, nil, "version"); r.code != 0 || r.stdout != "pghaul dev\n" {
		t.Errorf("version = exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestInitRoundTrip turns the aiven-db-migrate command into a file,
// and checks that validate accepts it once the variables are exported and
// that it means the same migration, without any password in the output.
func TestInitRoundTrip(t *testing.T) {
	t.Parallel()
	const srcPW, dstPW = "s3cr@t/pw$x", "hunter2 it's"
	r := runCLI(t, nil, "init",
		"-s", "postgres://admin:s3cr%40t%2Fpw$x@src.example.com:5432/postgres",
		"-t", "host=dst.example.com user=avnadmin password='hunter2 it\\'s' dbname=defaultdb sslmode=require",
		"-f", "db1,db2", "--max-replication-lag", "1", "--stop-replication",
		"--skip-table", "public.spatial_ref_sys", "--skip-table", "a.b,c",
		"-xr", "r1,r2", "-xe=postgis", "--no-replicate-extension-tables", "--force-method", "replication",
		"--dbs-max-total-size", "1000000", "--skip-db-version-check", "--no-createdb", "--pgbin", "/opt/pg/bin",
		"-v", "--migration-id", "abcd")
	if r.code != 0 {
		t.Fatalf("init = exit %d, stderr %q", r.code, r.stderr)
	}
	for _, secret := range []string{"s3cr", "hunter2"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("output holds the password %q:\n%s\n%s", secret, r.stdout, r.stderr)
		}
	}
	for _, want := range []string{"export SOURCE_PASSWORD", "export TARGET_PASSWORD", "--verbose is not part of a migration file", "--migration-id is not part"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr = %q, want it to say %q", r.stderr, want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SOURCE_PASSWORD": srcPW, "TARGET_PASSWORD": dstPW}
	if v := runCLI(t, env, "validate", "-c", path); v.code != 0 {
		t.Fatalf("validate of init's output = exit %d, stderr %q\n%s", v.code, v.stderr, r.stdout)
	}
	c, err := config.Load(path, config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"source.uri", c.Source.URI, "postgres://admin:s3cr%40t%2Fpw%24x@src.example.com:5432/postgres"},
		{"target.uri", c.Target.URI, `host=dst.example.com user=avnadmin password='hunter2 it\'s' dbname=defaultdb sslmode=require`},
		{"databases.exclude", strings.Join(c.Databases.Exclude.Strings(), ","), "db1,db2"},
		{"databases.create", c.Databases.Create, false},
		{"tables.skip", strings.Join(c.Tables.Skip.Strings(), ","), "public.spatial_ref_sys,a.b,c"},
		{"tables.extension_tables", c.Tables.ExtensionTables, false},
		{"roles.exclude", strings.Join(c.Roles.Exclude.Strings(), ","), "r1,r2"},
		{"extensions.exclude", strings.Join(c.Extensions.Exclude.Strings(), ","), "postgis"},
		{"method", c.Method, config.MethodReplication},
		{"replication.max_lag_bytes", *c.Replication.MaxLagBytes, int64(1)},
		{"replication.stop", c.Replication.Stop, true},
		{"limits.max_total_size", int64(*c.Limits.MaxTotalSize), int64(1000000)},
		{"limits.allow_older_target", c.Limits.AllowOlderTarget, true},
		{"pg_bin", c.PGBin, "/opt/pg/bin"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestInitServiceURIsWin(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SOURCE_SERVICE_URI": "postgres://env-src/postgres", "TARGET_SERVICE_URI": "postgres://env-dst/postgres"}
	r := runCLI(t, env, "init", "-s", "postgres://flag-src/postgres")
	if r.code != 0 || !strings.Contains(r.stdout, "env-src") || !strings.Contains(r.stdout, "env-dst") || strings.Contains(r.stdout, "flag-src") {
		t.Errorf("init = exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "init", "-s", "postgres://a@h/b?password=q-secret", "-t", "postgres://c/d")
	if r.code != 0 || strings.Contains(r.stdout, "q-secret") || !strings.Contains(r.stdout, "password=${SOURCE_PASSWORD}") {
		t.Errorf("init with a password parameter: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, nil, "init", "-s", "postgres://a/b", "-t", "postgres://c/d", "--stop-replication")
	if r.code != 1 || r.stderr != "pghaul: --stop-replication requires --max-replication-lag >= 0\n" {
		t.Errorf("init --stop-replication alone = exit %d, stderr %q", r.code, r.stderr)
	}
}
