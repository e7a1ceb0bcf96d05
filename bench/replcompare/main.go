// Command replcompare times the replication method from start to "lag 0
// with every table synced" on a pgbench database: pgferry apply (method:
// replication, max_lag_bytes: 0) against what aiven-db-migrate does — the
// schema through pg_dump | pg_restore, then a native subscription with
// copy_data = true until every pg_subscription_rel row is 'r' — alternating,
// each on a fresh target cluster.
//
//	go run ./bench/replcompare -scale 20 -runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgferry/pgferry/bench/internal/benchkit"
	"github.com/pgferry/pgferry/internal/cluster"
)

func main() {
	scale := flag.Int("scale", 20, "pgbench scale")
	runs := flag.Int("runs", 3, "runs of each method")
	flag.Parse()
	if err := run(*scale, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "replcompare:", err)
		os.Exit(1)
	}
}

func run(scale, runs int) error {
	ctx := context.Background()
	work, bin, src, cleanup, err := benchkit.Setup(ctx, scale)
	if err != nil {
		return err
	}
	defer cleanup()
	// pgbench_history has no key: publishing it as it is would be a blocker.
	if err := execSQL(ctx, src.URI("bench"), "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"); err != nil {
		return err
	}
	var ferry, native []time.Duration
	for i := range runs {
		d, err := timePgferry(ctx, bin, work, src, i)
		if err != nil {
			return err
		}
		ferry = append(ferry, d)
		if d, err = timeNative(ctx, src); err != nil {
			return err
		}
		native = append(native, d)
		fmt.Printf("run %d: pgferry %.2fs, native subscription (copy_data = true) %.2fs\n", i+1, ferry[i].Seconds(), native[i].Seconds())
	}
	mf, mn := benchkit.Median(ferry), benchkit.Median(native)
	fmt.Printf("pgbench scale %d, %d runs each, medians to lag 0 with all tables synced: pgferry %.2fs, native %.2fs, ratio %.2f\n",
		scale, runs, mf.Seconds(), mn.Seconds(), mf.Seconds()/mn.Seconds())
	return nil
}

func timePgferry(ctx context.Context, bin, work string, src *cluster.Cluster, i int) (time.Duration, error) {
	dst, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return 0, err
	}
	defer dst.Stop(ctx)
	cfg := filepath.Join(work, fmt.Sprintf("m%d.yaml", i))
	doc := fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\nmethod: replication\ndatabases: {include: [bench]}\nreplication: {max_lag_bytes: 0, stop: true}\n",
		src.URI("postgres"), dst.URI("postgres"))
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		return 0, err
	}
	// Stop at the cut-over's first step: the wait for lag 0 is done then.
	cmd := exec.Command(bin, "apply", "-c", cfg)
	cmd.Env = append(os.Environ(), "PGFERRY_LAG_POLL=100ms")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgferry apply: %v\n%s", err, out)
	}
	// The time to lag 0 is when wait-for-lag finished, not the cut-over after it.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `step=db:bench/wait-for-lag`) && strings.Contains(l, "step done") {
			if ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(l)[0], "time=")); err == nil {
				return ts.Sub(start), nil
			}
		}
	}
	return time.Since(start), nil
}

func timeNative(ctx context.Context, src *cluster.Cluster) (time.Duration, error) {
	dst, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return 0, err
	}
	defer dst.Stop(ctx)
	start := time.Now()
	script := fmt.Sprintf("%s -h 127.0.0.1 -p %d -U postgres bench && %s -Fc --schema-only %q | %s -d %q",
		src.Program("createdb"), dst.Port, src.Program("pg_dump"), src.URI("bench"), src.Program("pg_restore"), dst.URI("bench"))
	if err := benchkit.Sh(src, "sh", "-c", script); err != nil {
		return 0, err
	}
	if err := execSQL(ctx, src.URI("bench"), "CREATE PUBLICATION bench_pub FOR ALL TABLES"); err != nil {
		return 0, err
	}
	defer execSQL(ctx, src.URI("bench"), "DROP PUBLICATION bench_pub")
	sub := fmt.Sprintf("CREATE SUBSCRIPTION bench_sub CONNECTION '%s' PUBLICATION bench_pub WITH (copy_data = true)", src.URI("bench"))
	if err := execSQL(ctx, dst.URI("bench"), sub); err != nil {
		return 0, err
	}
	conn, err := pgx.Connect(ctx, dst.URI("bench"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	for {
		var pending int
		if err := conn.QueryRow(ctx, "SELECT count(*) FILTER (WHERE srsubstate <> 'r') FROM pg_subscription_rel").Scan(&pending); err != nil {
			return 0, err
		}
		if pending == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	if err := execSQL(ctx, dst.URI("bench"), "DROP SUBSCRIPTION bench_sub"); err != nil {
		return 0, err
	}
	return took, nil
}

func execSQL(ctx context.Context, uri, sql string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
