package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/cluster"
)

// DemoCmd runs a whole live migration between two throwaway clusters.
type DemoCmd struct {
	Keep bool `help:"Keep the clusters and files (and say where) instead of removing them."`
}

// demoData is the sample the demo moves: two databases (one with an odd
// name), roles, a partitioned table, a PK-less table with REPLICA IDENTITY
// FULL and a few hundred thousand rows.
var demoData = []struct {
	db    string
	stmts []string
}{
	{"postgres", []string{
		"CREATE ROLE app LOGIN PASSWORD 'demo-app'", "CREATE ROLE reporting NOLOGIN", "GRANT reporting TO app",
		"CREATE DATABASE shop OWNER app", `CREATE DATABASE "Analytics DB"`,
	}},
	{"shop", []string{
		"CREATE TABLE customers (id int PRIMARY KEY, name text, email text)",
		"INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 20000) g",
		"CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2), placed timestamptz)",
		"INSERT INTO orders (customer_id, total, placed) SELECT 1 + g % 20000, (g % 1000) / 7.0, timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 300000) g",
		"CREATE INDEX orders_customer ON orders (customer_id)",
		"CREATE TABLE page_views (day date, path text, views int, PRIMARY KEY (day, path)) PARTITION BY RANGE (day)",
		"CREATE TABLE page_views_2025 PARTITION OF page_views FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"CREATE TABLE page_views_2026 PARTITION OF page_views FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
		"INSERT INTO page_views SELECT date '2025-06-01' + g % 400, '/p/' || (g / 400), g FROM generate_series(1, 40000) g",
		"CREATE TABLE audit_log (at timestamptz, who text, what text)",
		"ALTER TABLE audit_log REPLICA IDENTITY FULL",
		"INSERT INTO audit_log SELECT now(), 'app', 'login ' || g FROM generate_series(1, 5000) g",
		"ALTER TABLE customers OWNER TO app", "ALTER TABLE orders OWNER TO app",
		"GRANT SELECT ON orders TO reporting",
	}},
	{"Analytics DB", []string{
		`CREATE TABLE "Daily Totals" (day date PRIMARY KEY, "Revenue" numeric)`,
		`INSERT INTO "Daily Totals" SELECT date '2025-01-01' + g, g * 10 FROM generate_series(0, 365) g`,
	}},
}

// Run starts the clusters, loads the sample, plans, applies, writes while
// replicating, cuts over, verifies and removes everything (also on Ctrl-C).
func (d *DemoCmd) Run(ctx context.Context, stdout io.Writer, errOut stderr, log *slog.Logger, cli *CLI) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "pghaul-demo-")
	if err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(stdout, "\n== "+format+"\n", args...) }
	say("starting two throwaway PostgreSQL clusters in %s", dir)
	src, dst, err := startDemoClusters(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	defer func() {
		if d.Keep {
			say("kept: source %s, target %s, files in %s", src.URI("postgres"), dst.URI("postgres"), dir)
			return
		}
		stopCtx := context.WithoutCancel(ctx)
		src.Stop(stopCtx)
		dst.Stop(stopCtx)
		os.RemoveAll(dir)
		fmt.Fprintf(stdout, "\n== removed the clusters and %s (%.0f s in all)\n", dir, time.Since(start).Seconds())
	}()
	fmt.Fprintf(stdout, "source: %s (PostgreSQL %s)\ntarget: %s\n", src.URI("postgres"), src.Version, dst.URI("postgres"))
	say("loading sample data: databases shop and \"Analytics DB\", roles, a partitioned table, a PK-less table with REPLICA IDENTITY FULL, 365,000 rows")
	if err := loadDemo(ctx, src); err != nil {
		return err
	}
	err = d.migrate(ctx, stdout, errOut, cli, dir, src, dst, say)
	if ctx.Err() != nil {
		return &exitError{code: 130, err: errors.New("interrupted; the demo's clusters and files are removed")}
	}
	return err
}

func startDemoClusters(ctx context.Context, dir string) (src, dst *cluster.Cluster, err error) {
	opt := cluster.Options{BinDir: os.Getenv("PGHAUL_PG_BIN")}
	if src, err = cluster.Start(ctx, opt); err != nil {
		return nil, nil, fmt.Errorf("start the source cluster: %w", err)
	}
	if dst, err = cluster.Start(ctx, opt); err != nil {
		src.Stop(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("start the target cluster: %w", err)
	}
	return src, dst, nil
}

func loadDemo(ctx context.Context, c *cluster.Cluster) error {
	for _, d := range demoData {
		conn, err := pgx.Connect(ctx, c.URI(d.db))
		if err != nil {
			return err
		}
		for _, s := range d.stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				conn.Close(ctx)
				return fmt.Errorf("load demo data: %s: %w", s, err)
			}
		}
		conn.Close(ctx)
	}
	return nil
}

func (d *DemoCmd) migrate(ctx context.Context, stdout io.Writer, errOut stderr, cli *CLI, dir string, src, dst *cluster.Cluster,
	say func(string, ...any)) error {
	example, err := os.ReadFile(filepath.Join("examples", "demo.yaml"))
	if err != nil {
		return fmt.Errorf("read examples/demo.yaml: %w; run the demo from the repository root (make demo)", err)
	}
	cfg := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(cfg, example, 0o600); err != nil {
		return err
	}
	vars := map[string]string{"PGHAUL_DEMO_SOURCE_PORT": fmt.Sprint(src.Port), "PGHAUL_DEMO_TARGET_PORT": fmt.Sprint(dst.Port),
		"PGHAUL_DEMO_STATE": filepath.Join(dir, "state")}
	env := func(k string) (string, bool) {
		if v, ok := vars[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	pghaul := func(args ...string) int {
		fmt.Fprintf(stdout, "\n$ pghaul %s\n", strings.Join(args, " "))
		return run(ctx, append([]string{"--log-format", cli.LogFormat}, args...), stdout, errOut.Writer, env)
	}
	say("planning (read-only): %s", cfg)
	if code := pghaul("plan", "-c", cfg); code != 0 {
		return fmt.Errorf("plan exited %d", code)
	}
	say("applying: roles, databases, schema, the copy under the slot's snapshot, then replication until the lag is 0")
	if code := pghaul("apply", "-c", cfg); code != 0 {
		return fmt.Errorf("apply exited %d", code)
	}
	say("writing on the source while replication runs")
	if err := demoWrites(ctx, src); err != nil {
		return err
	}
	if code := pghaul("status", "-c", cfg); code != 0 {
		return fmt.Errorf("status exited %d", code)
	}
	say("cutting over: the same file with stop: true (plan lists the cut-over: wait, freeze writes, fence, sequences, verify, switch)")
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(example), "  max_lag_bytes: 0           # wait until the target has caught up; the demo\n", "  max_lag_bytes: 0\n  stop: true                 # cut over\n", 1)), 0o600); err != nil {
		return err
	}
	if code := pghaul("plan", "-c", cfg); code != 0 {
		return fmt.Errorf("plan exited %d", code)
	}
	if code := pghaul("apply", "-c", cfg); code != 0 {
		return fmt.Errorf("apply exited %d", code)
	}
	say("the source stays frozen after the switch; lifting the freeze to compare both sides again")
	if code := pghaul("cleanup", "-c", cfg, "--unfreeze"); code != 0 {
		return fmt.Errorf("cleanup exited %d", code)
	}
	say("verifying every table on both sides (row hashes), sequences and large objects")
	if code := pghaul("verify", "-c", cfg); code != 0 {
		return fmt.Errorf("verify exited %d", code)
	}
	return nil
}

// demoWrites changes rows on the source while replication runs.
func demoWrites(ctx context.Context, c *cluster.Cluster) error {
	conn, err := pgx.Connect(ctx, c.URI("shop"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range []string{
		"INSERT INTO orders (customer_id, total, placed) SELECT 1 + g, 9.99, now() FROM generate_series(1, 100) g",
		"UPDATE customers SET email = 'new-' || email WHERE id <= 10",
		"DELETE FROM audit_log WHERE what = 'login 1'",
		"INSERT INTO page_views VALUES ('2026-02-01', '/new', 1)",
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("demo write: %w", err)
		}
	}
	return nil
}
