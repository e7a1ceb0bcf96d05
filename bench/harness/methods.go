package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/bench/internal/benchkit"
	"github.com/pghaul/pghaul/internal/cluster"
)

// method is one way to move the source; verify names the tables to
// compare by database (nil: every table of every database).
type method struct {
	name   string
	run    func(context.Context, *harness, *cluster.Cluster) (result, error)
	verify map[string][]string
	// noLargeObjects: the method leaves large objects behind (a
	// subscription does not carry them); -large-objects skips it.
	noLargeObjects bool
}

var methods = []method{
	{name: "pghaul-dump", run: pghaulDump},
	{name: "pg_dump-Fc|pg_restore", run: dumpRestore("-Fc")},
	{name: "pg_dump-Fc-Z0|pg_restore", run: dumpRestore("-Fc", "-Z0")},
	{name: "pg_dump-Fd-j2+pg_restore-j2", run: dumpDirectory},
	{name: "pgcopydb-clone", run: pgcopydb},
	{name: "pghaul-replication", run: pghaulReplication},
	{name: "native-subscription", run: nativeSubscription, noLargeObjects: true},
	{name: "copy-proxy", run: copyProxy, verify: map[string][]string{"bench": {"public.pgbench_accounts"}}, noLargeObjects: true},
	{name: "largest-table", run: largestTable, verify: map[string][]string{"bench": {"public.pgbench_accounts"}}, noLargeObjects: true},
}

func methodNames() []string {
	var out []string
	for _, m := range methods {
		out = append(out, m.name)
	}
	return out
}

func methodByName(name string) (method, bool) {
	for _, m := range methods {
		if m.name == name {
			return m, true
		}
	}
	return method{}, false
}

func (h *harness) config(dst *cluster.Cluster, extra string) (string, error) {
	h.configs++
	path := filepath.Join(h.work, fmt.Sprintf("m%d.yaml", h.configs))
	doc := fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\ndatabases: {include: [%s]}\n%s", h.src.URI("postgres"), dst.URI("postgres"), strings.Join(h.databases, ", "), extra)
	return path, os.WriteFile(path, []byte(doc), 0o600)
}

// runPghaul runs apply and returns its wall time, peak RSS and log.
func (h *harness) runPghaul(cfg string) (time.Duration, int64, string, error) {
	cmd := exec.Command(h.bin, "apply", "-c", cfg)
	cmd.Env = append(os.Environ(), "PGHAUL_LAG_POLL=100ms")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return 0, 0, "", fmt.Errorf("pghaul apply: %v\n%s", err, out)
	}
	if os.Getenv("HARNESS_LOG") != "" {
		os.WriteFile(os.Getenv("HARNESS_LOG"), out, 0o644)
	}
	return took, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, string(out), nil
}

func pghaulDump(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	cfg, err := h.config(dst, "method: dump\n")
	if err != nil {
		return result{}, err
	}
	took, rss, log, err := h.runPghaul(cfg)
	return result{took: took, rssKiB: rss, phases: phases(log, took)}, err
}

// pghaulReplication times apply until lag 0 with every table synced: the
// end of its wait, before the cut-over steps.
func pghaulReplication(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	cfg, err := h.config(dst, "method: replication\nreplication: {max_lag_bytes: 0, stop: true}\n")
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	took, rss, log, err := h.runPghaul(cfg)
	if err != nil {
		return result{}, err
	}
	caughtUp := start
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "wait-for-lag") && strings.Contains(l, "step done") {
			if ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(l)[0], "time=")); err == nil && ts.After(caughtUp) {
				caughtUp = ts
			}
		}
	}
	if caughtUp == start {
		caughtUp = start.Add(took)
	}
	wall := caughtUp.Sub(start)
	return result{took: wall, rssKiB: rss, phases: phases(log, wall)}, nil
}

func (h *harness) createDatabases(dst *cluster.Cluster) error {
	for _, db := range h.databases {
		if err := createdb(dst, db); err != nil {
			return err
		}
	}
	return nil
}

// createdb creates an empty database on c.
func createdb(c *cluster.Cluster, db string) error {
	return benchkit.Sh(c, c.Program("createdb"), "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres", db)
}

// dumpRestore is aiven-db-migrate's way: per database, createdb and
// pg_dump | pg_restore.
func dumpRestore(args ...string) func(context.Context, *harness, *cluster.Cluster) (result, error) {
	return func(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
		start := time.Now()
		if err := h.createDatabases(dst); err != nil {
			return result{}, err
		}
		for _, db := range h.databases {
			script := fmt.Sprintf("%s %s %q | %s -d %q", h.src.Program("pg_dump"), strings.Join(args, " "), h.src.URI(db), h.src.Program("pg_restore"), dst.URI(db))
			if err := benchkit.Sh(h.src, "bash", "-o", "pipefail", "-c", script); err != nil {
				return result{}, err
			}
		}
		return result{took: time.Since(start)}, nil
	}
}

func dumpDirectory(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	start := time.Now()
	if err := h.createDatabases(dst); err != nil {
		return result{}, err
	}
	for _, db := range h.databases {
		dir := filepath.Join(h.work, fmt.Sprintf("dir-%d-%s", h.configs, db))
		h.configs++
		if err := benchkit.Sh(h.src, h.src.Program("pg_dump"), "-Fd", "-j", "2", "-f", dir, h.src.URI(db)); err != nil {
			return result{}, err
		}
		if err := benchkit.Sh(h.src, h.src.Program("pg_restore"), "-j", "2", "-d", dst.URI(db), dir); err != nil {
			return result{}, err
		}
		os.RemoveAll(dir)
	}
	return result{took: time.Since(start)}, nil
}

// pgcopydb clones each database; roles are copied beforehand with
// pg_dumpall --roles-only (its own --roles trips on the \restrict line of
// pg_dump 15.14+), not counted in its time.
func pgcopydb(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	roles := fmt.Sprintf("%s --roles-only -d %q | grep -v '^\\\\\\(un\\)\\?restrict' | %s -q -d %q", h.src.Program("pg_dumpall"), h.src.URI("postgres"), h.src.Program("psql"), dst.URI("postgres"))
	if err := benchkit.Sh(h.src, "bash", "-c", roles); err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := h.createDatabases(dst); err != nil {
		return result{}, err
	}
	for _, db := range h.databases {
		dir := filepath.Join(h.work, fmt.Sprintf("pgcopydb-%d-%s", h.configs, db))
		h.configs++
		cmd := exec.Command("pgcopydb", "clone", "--table-jobs", "2", "--index-jobs", "2", "--dir", dir,
			"--source", h.src.URI(db), "--target", dst.URI(db))
		cmd.Env = append(h.src.Env(), "PGCOPYDB_LOG_LEVEL=error")
		if out, err := cmd.CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("pgcopydb clone %s: %v\n%s", db, err, lastLines(string(out), 8))
		}
		os.RemoveAll(dir)
	}
	return result{took: time.Since(start)}, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// nativeSubscription is aiven-db-migrate's replication: the schema by
// pg_dump --schema-only | pg_restore, then a subscription with copy_data =
// true until every table is ready.
func nativeSubscription(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	start := time.Now()
	if err := h.createDatabases(dst); err != nil {
		return result{}, err
	}
	for _, db := range h.databases {
		script := fmt.Sprintf("%s -Fc --schema-only %q | %s -d %q", h.src.Program("pg_dump"), h.src.URI(db), h.src.Program("pg_restore"), dst.URI(db))
		if err := benchkit.Sh(h.src, "bash", "-o", "pipefail", "-c", script); err != nil {
			return result{}, err
		}
		if err := execAll(ctx, h.src.URI(db), "CREATE PUBLICATION harness_pub FOR ALL TABLES WITH (publish_via_partition_root = true)"); err != nil {
			return result{}, err
		}
		sub := fmt.Sprintf("CREATE SUBSCRIPTION harness_sub_%s CONNECTION '%s' PUBLICATION harness_pub WITH (copy_data = true, slot_name = 'harness_%s')", db, h.src.URI(db), db)
		if err := execAll(ctx, dst.URI(db), sub); err != nil {
			return result{}, err
		}
	}
	for _, db := range h.databases {
		if err := waitReady(ctx, dst.URI(db)); err != nil {
			return result{}, err
		}
	}
	took := time.Since(start)
	for _, db := range h.databases {
		if err := execAll(ctx, dst.URI(db), "DROP SUBSCRIPTION harness_sub_"+db); err != nil {
			return result{}, err
		}
		if err := execAll(ctx, h.src.URI(db), "DROP PUBLICATION harness_pub"); err != nil {
			return result{}, err
		}
	}
	return result{took: took}, nil
}

func waitReady(ctx context.Context, uri string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for {
		var total, pending int
		if err := conn.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE srsubstate <> 'r') FROM pg_subscription_rel").Scan(&total, &pending); err != nil {
			return err
		}
		if total > 0 && pending == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// copyProxy is the physical limit of a copy: the largest table's raw COPY
// streamed into a table without indexes.
func copyProxy(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	return copyAccounts(ctx, h, dst, "COPY pgbench_accounts TO STDOUT", []string{"COPY pgbench_accounts FROM STDIN"})
}

// largestTable is the floor of a dump's critical path: the largest table
// alone, as pghaul loads it (binary COPY FREEZE into the table truncated
// in the same transaction), then its primary key.
func largestTable(ctx context.Context, h *harness, dst *cluster.Cluster) (result, error) {
	return copyAccounts(ctx, h, dst, "COPY pgbench_accounts TO STDOUT (FORMAT binary)",
		[]string{"TRUNCATE pgbench_accounts", "COPY pgbench_accounts FROM STDIN (FORMAT binary, FREEZE)"},
		"ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)")
}

// copyAccounts creates database bench on dst with pgbench_accounts empty
// and without indexes, then times the source's out piped into the target's
// in (one transaction when several statements), and the statements after.
func copyAccounts(ctx context.Context, h *harness, dst *cluster.Cluster, out string, in []string, after ...string) (result, error) {
	if err := createdb(dst, "bench"); err != nil {
		return result{}, err
	}
	if err := execAll(ctx, dst.URI("bench"), "CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84))"); err != nil {
		return result{}, err
	}
	target := fmt.Sprintf("%s -Xq -d %q", h.src.Program("psql"), dst.URI("bench"))
	if len(in) > 1 {
		target += " -1"
	}
	for _, stmt := range in {
		target += " -c '" + stmt + "'"
	}
	start := time.Now()
	script := fmt.Sprintf("%s -Xq -d %q -c '%s' | %s", h.src.Program("psql"), h.src.URI("bench"), out, target)
	if err := benchkit.Sh(h.src, "bash", "-o", "pipefail", "-c", script); err != nil {
		return result{}, err
	}
	for _, stmt := range after {
		if err := execAll(ctx, dst.URI("bench"), stmt); err != nil {
			return result{}, err
		}
	}
	return result{took: time.Since(start)}, nil
}
