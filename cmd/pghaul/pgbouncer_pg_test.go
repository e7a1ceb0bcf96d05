package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
)

// pgbouncer is a PgBouncer in transaction pooling mode in front of one
// database of a cluster, started for a test.
type pgbouncer struct {
	port      int
	ini, dir  string
	adminConn string
}

// startPgbouncer runs PgBouncer (as the postgres OS user under root: it
// refuses to run as root) with database db pointing at c ("*": every
// database), passing on no startup parameter but extra_float_digits and
// ignore.
func startPgbouncer(t *testing.T, c *cluster.Cluster, db string, ignore ...string) *pgbouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/pgbouncer"); err != nil {
			t.Skip("no pgbouncer: the pooler cut-over test needs it (Debian package pgbouncer; .ci/run installs it)")
		}
	}
	dir, err := os.MkdirTemp("", "pgbouncer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	b := &pgbouncer{port: port, dir: dir, ini: filepath.Join(dir, "pgbouncer.ini"),
		adminConn: fmt.Sprintf("host=127.0.0.1 port=%d dbname=pgbouncer user=postgres", port)}
	target := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres", c.Port)
	if db != "*" {
		target += " dbname=" + db
	}
	ini := fmt.Sprintf(`[databases]
%s = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = postgres
pool_mode = transaction
default_pool_size = 4
max_client_conn = 50
ignore_startup_parameters = %s
logfile = %s
pidfile = %s
`, db, target, port, filepath.Join(dir, "users.txt"), strings.Join(append([]string{"extra_float_digits"}, ignore...), ","), filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	for name, body := range map[string]string{"pgbouncer.ini": ini, "users.txt": `"postgres" ""` + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, b.ini)
	if cred, err := cluster.Credential(); err != nil {
		t.Fatal(err)
	} else if cred != nil {
		os.Chmod(dir, 0o777)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Logf("pgbouncer log:\n%s", log)
		}
	})
	waitFor(t, "pgbouncer to listen", func() bool {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return b
}

func (b *pgbouncer) uri(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.port, db)
}

// TestCutoverThroughPgBouncer cuts over with examples/cutover-pgbouncer.yaml
// and its script while pgbench -c 4 runs through PgBouncer against the
// source: the hooks PAUSE PgBouncer, then point it at the target, RELOAD
// and RESUME. pgbench sees no failed transaction, and every transaction it
// committed is on the target.
func TestCutoverThroughPgBouncer(t *testing.T) {
	t.Parallel()
	psql := psqlProgram(t, nil)
	src, dst := pgtest.Pair(t)
	pgbenchSource(t, src)
	bouncer := startPgbouncer(t, src, "shop")
	// The example as shipped, with this test's servers, in a directory of
	// its own with the script beside it.
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "cutover-pgbouncer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join("..", "..", "examples", "pgbouncer-cutover.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer-cutover.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := regexp.MustCompile(`(?m)^(source|target):\n  uri: .*$`).ReplaceAllStringFunc(string(example), func(m string) string {
		if strings.HasPrefix(m, "source") {
			return fmt.Sprintf("source:\n  uri: %q", src.URI("postgres"))
		}
		return fmt.Sprintf("target:\n  uri: %q", dst.URI("postgres"))
	})
	cfg := filepath.Join(dir, "migration.yaml")
	writeTo(t, cfg, strings.Replace(doc, "  stop: true\n", "  stop: false\n", 1))
	env := []string{"PGHAUL_LAG_POLL=100ms", "PGBOUNCER_ADMIN=" + bouncer.adminConn, "PGBOUNCER_INI=" + bouncer.ini,
		fmt.Sprintf("PGBOUNCER_TARGET=host=127.0.0.1 port=%d user=postgres", dst.Port), "PATH=" + filepath.Dir(psql) + ":" + os.Getenv("PATH")}
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 || !strings.Contains(r.stdout, "running") {
		t.Fatalf("apply (stop: false): exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// pgbench through PgBouncer for 8 s at 100 transactions/s; the
	// cut-over happens in the middle.
	cmd := exec.Command(pgbenchProgram(t, src), "-n", "-c", "4", "-R", "100", "-T", "8", bouncer.uri("shop"))
	var bench strings.Builder
	cmd.Stdout, cmd.Stderr = &bench, &bench
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	writeTo(t, cfg, doc)
	r := runBin(t, env, "apply", "-c", cfg)
	benchErr := cmd.Wait()
	if r.code != 0 {
		t.Fatalf("cut-over through PgBouncer: exit %d\n%s\n%s\npgbench:\n%s", r.code, r.stdout, r.stderr, bench.String())
	}
	out := bench.String()
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(out)
	if benchErr != nil || processed == nil || !strings.Contains(out, "number of failed transactions: 0 ") || strings.Contains(out, "aborted") {
		t.Fatalf("pgbench through PgBouncer saw the cut-over (%v):\n%s\napply:\n%s", benchErr, out, r.stderr)
	}
	// Every transaction pgbench committed, before the freeze on the source
	// (replicated) or after the switch on the target, is on the target.
	if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM pgbench_history"); got != processed[1] || got == "0" {
		t.Errorf("target pgbench_history has %s rows, pgbench committed %s transactions", got, processed[1])
	}
	if !strings.Contains(r.stderr, "hook ran") || !strings.Contains(r.stderr, "after_cutover") {
		t.Errorf("the hooks did not run:\n%s", r.stderr)
	}
}

// TestPlanThroughPgBouncer: a pooler as source.uri is found by plan. One
// that refuses pghaul's read-only setting fails the connection with a
// hint; one that drops it is a finding, and method auto copies with dump.
func TestPlanThroughPgBouncer(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)")
	strict := startPgbouncer(t, src, "*")
	cfg := writeConfig(t, strict.uri("postgres"), dst.URI("postgres"), "databases: {include: [shop]}\n")
	r := runBin(t, nil, "plan", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "leads to a connection pooler") || !strings.Contains(r.stderr, "point source.uri at the PostgreSQL server itself") {
		t.Errorf("plan through a strict PgBouncer: exit %d\n%s", r.code, r.stderr)
	}
	lenient := startPgbouncer(t, src, "*", "default_transaction_read_only")
	cfg = writeConfig(t, lenient.uri("postgres"), dst.URI("postgres"), "databases: {include: [shop]}\n")
	r = runBin(t, nil, "plan", "-c", cfg, "--format", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"source-behind-pooler"`) || !strings.Contains(r.stdout, `"replication-connection-refused"`) || !strings.Contains(r.stdout, `"method": "dump"`) {
		t.Errorf("plan through a PgBouncer that drops the read-only setting: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
