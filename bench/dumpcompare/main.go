// Command dumpcompare times pgferry apply (method: dump) against
// `pg_dump -Fc | pg_restore` (what aiven-db-migrate runs) on a pgbench
// database, alternating the two, each on a fresh target cluster, and
// prints wall times, their ratio and pgferry's peak RSS.
//
//	go run ./bench/dumpcompare -scale 20 -runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/pgferry/pgferry/bench/internal/benchkit"
	"github.com/pgferry/pgferry/internal/cluster"
)

func main() {
	scale := flag.Int("scale", 20, "pgbench scale")
	runs := flag.Int("runs", 3, "runs of each method")
	flag.Parse()
	if err := run(*scale, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "dumpcompare:", err)
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
	var ferry, dump []time.Duration
	var rss []int64
	for i := range runs {
		d, r, err := timePgferry(ctx, bin, work, src, i)
		if err != nil {
			return err
		}
		ferry, rss = append(ferry, d), append(rss, r)
		if d, err = timeDumpRestore(ctx, src); err != nil {
			return err
		}
		dump = append(dump, d)
		fmt.Printf("run %d: pgferry %.2fs (peak RSS %d MiB), pg_dump -Fc | pg_restore %.2fs\n", i+1, ferry[i].Seconds(), rss[i]>>10, dump[i].Seconds())
	}
	mf, md := benchkit.Median(ferry), benchkit.Median(dump)
	fmt.Printf("pgbench scale %d, %d runs each, medians: pgferry %.2fs, pg_dump -Fc | pg_restore %.2fs, ratio %.2f; pgferry peak RSS max %d MiB\n",
		scale, runs, mf.Seconds(), md.Seconds(), mf.Seconds()/md.Seconds(), slices.Max(rss)>>10)
	return nil
}

func timePgferry(ctx context.Context, bin, work string, src *cluster.Cluster, i int) (time.Duration, int64, error) {
	dst, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer dst.Stop(ctx)
	cfg := filepath.Join(work, fmt.Sprintf("m%d.yaml", i))
	doc := fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\nmethod: dump\ndatabases: {include: [bench]}\n", src.URI("postgres"), dst.URI("postgres"))
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(bin, "apply", "-c", cfg)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("pgferry apply: %v\n%s", err, out)
	}
	if os.Getenv("BENCH_VERBOSE") != "" {
		os.Stderr.Write(out)
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		fmt.Fprintf(os.Stderr, "pgferry cpu: user %.2fs sys %.2fs\n", time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds())
	}
	return took, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, nil
}

func timeDumpRestore(ctx context.Context, src *cluster.Cluster) (time.Duration, error) {
	dst, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return 0, err
	}
	defer dst.Stop(ctx)
	start := time.Now()
	script := fmt.Sprintf("%s -h 127.0.0.1 -p %d -U postgres bench && %s -Fc %q | %s -d %q",
		src.Program("createdb"), dst.Port, src.Program("pg_dump"), src.URI("bench"), src.Program("pg_restore"), dst.URI("bench"))
	if err := benchkit.Sh(src, "sh", "-c", script); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
