package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
	"github.com/pghaul/pghaul/plan"
)

// writeConfig writes a migration file from source and target URIs and
// extra YAML, returning its path.
func writeConfig(t *testing.T, srcURI, dstURI, extra string) string {
	t.Helper()
	return writeConfigTB(t, srcURI, dstURI, extra)
}

func writeConfigTB(t testing.TB, srcURI, dstURI, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "migration.yaml")
	doc := fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\n%s", srcURI, dstURI, extra)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// planJSON runs plan --format json and decodes the plan.
func planJSON(t *testing.T, cfg string) (plan.Plan, result) {
	t.Helper()
	r := runCLI(t, nil, "plan", "-c", cfg, "--format", "json")
	var p plan.Plan
	if r.code != 1 {
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("plan output is not JSON (exit %d, stderr %q): %v", r.code, r.stderr, err)
		}
	}
	return p, r
}

func has(p plan.Plan, severity plan.Severity, code string) bool {
	for _, f := range p.Findings {
		if f.Severity == severity && f.Code == code {
			return true
		}
	}
	return false
}

func describe(p plan.Plan) string {
	var b strings.Builder
	for _, f := range p.Findings {
		fmt.Fprintf(&b, "\n  %s %s %s: %s", f.Severity, f.Code, f.Object, f.Message)
	}
	return b.String()
}

// TestPlanFindsRealProblems creates each problem for real on one pair of
// clusters (plan only reads, so the cases share it, a database each) and
// checks the finding and the exit code.
func TestPlanFindsRealProblems(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres",
		"CREATE ROLE mig LOGIN", "CREATE ROLE repl_role LOGIN REPLICATION",
		"CREATE DATABASE nopk", "CREATE DATABASE fulljson", "CREATE DATABASE rows", "CREATE DATABASE existing",
		"CREATE DATABASE owned OWNER repl_role", "CREATE DATABASE rls", "CREATE DATABASE fk", "CREATE DATABASE closed", "CREATE DATABASE open",
		"ALTER DATABASE closed ALLOW_CONNECTIONS false")
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE tgt LOGIN CREATEROLE", "CREATE DATABASE rows", "CREATE DATABASE existing")
	pgtest.Exec(t, src, "nopk", "CREATE TABLE events (at timestamptz, what text)", "INSERT INTO events VALUES (now(), 'x')")
	pgtest.Exec(t, src, "fulljson", "CREATE TABLE docs (id int, body json)", "ALTER TABLE docs REPLICA IDENTITY FULL")
	pgtest.Exec(t, src, "rows", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	pgtest.Exec(t, dst, "rows", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (2)")
	pgtest.Exec(t, src, "existing", "CREATE TABLE t (id int PRIMARY KEY)")
	pgtest.Exec(t, dst, "existing", "CREATE TABLE t (id int PRIMARY KEY)")
	pgtest.Exec(t, src, "owned", "CREATE TABLE t (id int PRIMARY KEY)", "ALTER TABLE t OWNER TO repl_role")
	pgtest.Exec(t, src, "rls",
		"CREATE TABLE secrets (id int PRIMARY KEY, owner text)", "ALTER TABLE secrets ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY mine ON secrets USING (owner = current_user)", "GRANT SELECT ON secrets TO mig")
	pgtest.Exec(t, src, "fk", "CREATE TABLE orders (id int PRIMARY KEY)", "CREATE TABLE items (id int PRIMARY KEY, order_id int REFERENCES orders)")
	pgtest.Exec(t, src, "open", "CREATE TABLE t (id int PRIMARY KEY)")

	tests := []struct {
		name           string
		srcURI, dstURI string
		extra          string
		wantExit       int
		want           []string // "severity code"
		check          func(t *testing.T, p plan.Plan)
	}{
		{name: "table without primary key, method replication", extra: "method: replication\ndatabases: {include: [nopk]}",
			wantExit: 2, want: []string{"blocker no-replica-identity"}},
		{name: "REPLICA IDENTITY FULL with json", extra: "method: replication\ndatabases: {include: [fulljson]}",
			wantExit: 2, want: []string{"blocker replica-identity-full-unusable"}},
		{name: "non-empty target table", extra: "databases: {include: [rows]}",
			wantExit: 2, want: []string{"blocker target-table-not-empty", "blocker target-schema-not-empty"}},
		{name: "existing target table", extra: "databases: {include: [existing]}",
			wantExit: 2, want: []string{"blocker target-schema-not-empty"}},
		{name: "non-superuser target: uncreatable owner role, no CREATEDB", dstURI: dst.URIAs("tgt", "", "postgres"),
			extra: "method: dump\ndatabases: {include: [owned]}", wantExit: 2,
			want: []string{"blocker role-not-creatable", "blocker no-createdb-privilege"}},
		{name: "RLS the source user cannot bypass; no REPLICATION falls back to dump", srcURI: src.URIAs("mig", "", "postgres"),
			extra: "databases: {include: [rls]}", wantExit: 2,
			want: []string{"blocker row-security", "info no-replication-privilege"},
			check: func(t *testing.T, p plan.Plan) {
				if len(p.Databases) != 1 || p.Databases[0].Method != plan.MethodDump {
					t.Errorf("databases = %+v, want rls by dump", p.Databases)
				}
			}},
		{name: "foreign key to a skipped table", extra: "databases: {include: [fk]}\ntables: {skip: [public.orders]}",
			wantExit: 2, want: []string{"blocker filter-breaks-dependency"}},
		{name: "database refusing connections, others still planned", extra: "databases: {include: [closed, open]}",
			wantExit: 2, want: []string{"blocker connection-failed"},
			check: func(t *testing.T, p plan.Plan) {
				if len(p.Databases) != 2 || p.Databases[1].Name != "open" || p.Databases[1].Tables != 1 {
					t.Errorf("databases = %+v, want open planned with its table", p.Databases)
				}
			}},
		{name: "same server", dstURI: src.URI("postgres"), extra: "databases: {include: [open]}",
			wantExit: 2, want: []string{"blocker same-server"}},
		{name: "a clean database plans", extra: "databases: {include: [open]}\nmethod: replication", wantExit: 0,
			check: func(t *testing.T, p plan.Plan) {
				if p.Databases[0].Method != plan.MethodReplication || len(p.Blockers()) != 0 {
					t.Errorf("plan = %+v", p.Databases)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcURI, dstURI := cmpOr(tt.srcURI, src.URI("postgres")), cmpOr(tt.dstURI, dst.URI("postgres"))
			p, r := planJSON(t, writeConfig(t, srcURI, dstURI, tt.extra))
			if r.code != tt.wantExit {
				t.Errorf("exit = %d, want %d; stderr %q%s", r.code, tt.wantExit, r.stderr, describe(p))
			}
			for _, w := range tt.want {
				sev, code, _ := strings.Cut(w, " ")
				if !has(p, plan.Severity(sev), code) {
					t.Errorf("no %s finding:%s", w, describe(p))
				}
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}

	// The fix removes the blocker: a primary key on the PK-less table.
	pgtest.Exec(t, src, "nopk", "ALTER TABLE events ADD COLUMN id serial PRIMARY KEY")
	p, r := planJSON(t, writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: replication\ndatabases: {include: [nopk]}"))
	if r.code != 0 || has(p, plan.Blocker, "no-replica-identity") {
		t.Errorf("after adding a primary key: exit %d%s", r.code, describe(p))
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestPlanFallsBackWithReplicaWALLevel: a wal_level=replica source makes
// method auto choose dump, with an info finding saying why.
func TestPlanFallsBackWithReplicaWALLevel(t *testing.T) {
	t.Parallel()
	src := pgtest.Start(t, pgtest.Source, pgtest.WithSettings(map[string]string{"wal_level": "replica"}))
	dst := pgtest.Start(t, pgtest.Target)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)")
	p, r := planJSON(t, writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "databases: {include: [shop]}"))
	if r.code != 0 || !has(p, plan.Info, "wal-level-not-logical") || p.Databases[0].Method != plan.MethodDump {
		t.Errorf("exit %d, databases %+v%s", r.code, p.Databases, describe(p))
	}
	_, r = planJSON(t, writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: replication\ndatabases: {include: [shop]}"))
	if r.code != 2 {
		t.Errorf("method replication with wal_level replica: exit %d, want 2", r.code)
	}
}

// TestPlanWritesNothing runs plan as roles whose sessions are read-only and
// checks that no object appeared on either side.
func TestPlanWritesNothing(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	for _, c := range []*cluster.Cluster{src, dst} {
		pgtest.Exec(t, c, "postgres", "CREATE ROLE ro SUPERUSER LOGIN", "ALTER ROLE ro SET default_transaction_read_only = on")
	}
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	before := [2]string{objects(t, src), objects(t, dst)}
	out := filepath.Join(t.TempDir(), "plan.json")
	cfg := writeConfig(t, src.URIAs("ro", "", "postgres"), dst.URIAs("ro", "", "postgres"), "replication: {max_lag_bytes: 0, stop: true}")
	r := runCLI(t, nil, "plan", "-c", cfg, "-o", out)
	if r.code != 0 {
		t.Fatalf("plan as read-only roles: exit %d, stderr %q\n%s", r.code, r.stderr, r.stdout)
	}
	if !strings.Contains(r.stdout, "create_publication") {
		t.Errorf("the plan does not show the replication steps:\n%s", r.stdout)
	}
	if after := [2]string{objects(t, src), objects(t, dst)}; after != before {
		t.Errorf("plan changed the servers:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("plan file not written: %v", err)
	}
}

// objects lists the databases, roles, publications, slots and subscriptions
// of a cluster.
func objects(t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	return pgtest.QueryString(t, c, "postgres", `SELECT concat_ws(' | ',
		(SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database),
		(SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles),
		(SELECT string_agg(slot_name, ',') FROM pg_replication_slots),
		(SELECT string_agg(subname, ',') FROM pg_subscription),
		(SELECT string_agg(pubname, ',') FROM pg_publication))`)
}

// TestPlanKeepsSecrets uses password authentication on both sides: no
// password in any output or the plan file; an unreachable target is an
// error naming the side, redacted.
func TestPlanKeepsSecrets(t *testing.T) {
	const pw = "Sup3r-s3cret/pw"
	src, dst := pgtest.Pair(t, pgtest.WithPassword(pw))
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	t.Setenv("PGHAUL_TEST_PW", pw)
	srcURI := strings.Replace(src.URI("postgres"), "Sup3r-s3cret%2Fpw", "${PGHAUL_TEST_PW}", 1)
	dstURI := strings.Replace(dst.URI("postgres"), "Sup3r-s3cret%2Fpw", "${PGHAUL_TEST_PW}", 1)
	if !strings.Contains(srcURI, "${") {
		t.Fatalf("URI %q does not hold the expected encoded password", srcURI)
	}
	out := filepath.Join(t.TempDir(), "plan.json")
	cfg := writeConfig(t, srcURI, dstURI, "")
	var all strings.Builder
	for _, format := range []string{"table", "markdown", "json"} {
		r := runCLIEnv(t, "plan", "-c", cfg, "--format", format, "-o", out, "-d")
		if r.code != 0 {
			t.Fatalf("plan --format %s: exit %d, stderr %q", format, r.code, r.stderr)
		}
		all.WriteString(r.stdout + r.stderr)
	}
	saved, _ := os.ReadFile(out)
	all.Write(saved)
	for _, secret := range []string{pw, "Sup3r", "s3cret"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("output or plan file holds %q", secret)
		}
	}
	if !strings.Contains(all.String(), "postgres:***@127.0.0.1") {
		t.Errorf("output does not show the redacted URI")
	}

	// Unreachable target: the bootstrap connection fails, exit 1, one line.
	ctx := context.Background()
	if err := dst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r := runCLIEnv(t, "plan", "-c", cfg)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "pghaul: connect to target postgres://postgres:***@127.0.0.1:") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("unreachable target: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("error holds the password: %q", r.stderr)
	}
	assertOneLineErrors(t, r)
}

// runCLIEnv runs the CLI with the process environment.
func runCLIEnv(t *testing.T, args ...string) result {
	t.Helper()
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return runCLI(t, env, args...)
}

func writeTo(t testing.TB, path, doc string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPlanUnixSocketURI: the source given in libpq's URI form for a Unix
// socket, its directory percent-encoded as the host.
func TestPlanUnixSocketURI(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	socket := fmt.Sprintf("postgres://postgres@%s:%d/postgres", url.PathEscape(src.SocketDir()), src.Port)
	if !strings.Contains(socket, "%2F") {
		t.Fatalf("the socket URI %s has no %%2F", socket)
	}
	cfg := writeConfig(t, socket, dst.URI("postgres"), "method: dump\n")
	if r := runBin(t, nil, "plan", "-c", cfg); r.code != 0 || !strings.Contains(r.stdout, "Source: postgres://postgres@") {
		t.Errorf("plan with a %%2F socket URI: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestPlanFilterTypos: a filter pattern that matches nothing is a finding
// naming the closest name: a blocker for include and only, a warning for
// skip and exclude.
func TestPlanFilterTypos(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE bench")
	pgtest.Exec(t, src, "bench", "CREATE TABLE pgbench_accounts (aid int PRIMARY KEY)")
	for _, tt := range []struct {
		filter string
		code   int
		want   string
	}{
		{"databases: {include: [benchh]}", 2, `databases.include pattern \"benchh\" matches no database on the source (did you mean \"bench\"?)`},
		{"tables: {only: [nosuch.table]}", 2, `tables.only pattern \"nosuch.table\" matches no table`},
		{"tables: {skip: [public.pgbench_acounts]}", 0, `tables.skip pattern \"public.pgbench_acounts\" matches no table of the selected databases on the source (did you mean \"public.pgbench_accounts\"?)`},
	} {
		cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\n"+tt.filter+"\n")
		r := runBin(t, nil, "plan", "-c", cfg, "--format", "json")
		if r.code != tt.code || !strings.Contains(r.stdout, tt.want) {
			t.Errorf("plan with %s: exit %d, want %d and %s\n%s\n%s", tt.filter, r.code, tt.code, tt.want, r.stdout, r.stderr)
		}
	}
}

// TestStandbyTarget: a physical standby as the target is a blocker in the
// plan, and apply refuses before it touches the source (no slot, no
// publication left there).
func TestStandbyTarget(t *testing.T) {
	t.Parallel()
	src, primary := pgtest.Pair(t)
	standby := pgtest.Standby(t, primary)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)")
	cfg := writeConfig(t, src.URI("postgres"), standby.URI("postgres"), "method: replication\ndatabases: {include: [shop]}\n")
	p := runBin(t, nil, "plan", "-c", cfg, "--format", "json")
	if p.code != 2 || !strings.Contains(p.stdout, `"target-in-recovery"`) {
		t.Errorf("plan with a standby target: exit %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, "the target is a standby") {
		t.Errorf("apply with a standby target: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, src, "shop", "SELECT concat((SELECT count(*) FROM pg_replication_slots), '/', (SELECT count(*) FROM pg_publication))"); got != "0/0" {
		t.Errorf("slots/publications on the source after the refused apply: %s", got)
	}
}

// TestPlanMarkdownLinks: the markdown plan links each finding to its
// documentation, relative by default and under --docs-url (or
// PGHAUL_DOCS_URL) for a pull request comment.
func TestPlanMarkdownLinks(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE events (at int)") // no key: a finding
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "databases: {include: [shop]}\n")
	r := runBin(t, nil, "plan", "-c", cfg, "--format", "markdown")
	if !strings.Contains(r.stdout, "](docs/findings.md#no-replica-identity)") {
		t.Errorf("default link missing:\n%s\n%s", r.stdout, r.stderr)
	}
	const base = "https://example.com/pghaul/blob/main/docs"
	r = runBin(t, nil, "plan", "-c", cfg, "--format", "markdown", "--docs-url", base+"/")
	if !strings.Contains(r.stdout, "]("+base+"/findings.md#no-replica-identity)") {
		t.Errorf("--docs-url link missing:\n%s\n%s", r.stdout, r.stderr)
	}
	r = runBin(t, []string{"PGHAUL_DOCS_URL=" + base}, "plan", "-c", cfg, "--format", "json")
	if !strings.Contains(r.stdout, `"`+base+`/findings.md#no-replica-identity"`) {
		t.Errorf("PGHAUL_DOCS_URL link missing from the JSON:\n%s\n%s", r.stdout, r.stderr)
	}
}
