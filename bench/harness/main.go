// Command harness measures pghaul against the tools people use instead,
// side by side in one run on the same source, each method several times,
// alternating, each run on a fresh target cluster, every run verified:
//
//	go run ./bench/harness -scale 20 -runs 3        (make bench)
//	go run ./bench/harness -tables 1000 -methods pghaul-dump,'pg_dump-Fc|pg_restore'
//
// -tables N adds a third database of N small tables, where what each
// table costs (statements, sessions' catalog work, bookkeeping) dominates.
//
// Dump methods: pghaul apply (method: dump), pg_dump -Fc | pg_restore (what
// aiven-db-migrate runs), the same with -Z0, pg_dump -Fd -j 2 + pg_restore -j 2,
// and pgcopydb clone --table-jobs 2 --index-jobs 2. Replication: pghaul apply
// (method: replication) until lag 0 with every table synced, and a native
// subscription with copy_data = true until every table is ready. A
// physical-limit proxy: COPY TO STDOUT piped into COPY FROM STDIN of the
// largest table into a table without indexes; and the dump's floor, that
// table alone as pghaul loads it (binary COPY FREEZE) with its primary
// key. Results go to a TSV file.
//
// The clusters live under TMPDIR (the targets until the harness ends: a
// file system without a journal makes creating files slow for minutes
// after many are removed). docs/speed.md measures the many-tables shapes
// on a journaled ext4 too: TMPDIR=<its mount point> go run ./bench/harness.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pghaul/pghaul/bench/internal/benchkit"
	"github.com/pghaul/pghaul/internal/cluster"
)

type options struct {
	scale, runs, tables int
	out                 string
	databases           int
	largeObjects        int
	methods             []string
}

func main() {
	var o options
	var methods string
	flag.IntVar(&o.scale, "scale", 20, "pgbench scale")
	flag.IntVar(&o.runs, "runs", 3, "runs of each method")
	flag.IntVar(&o.tables, "tables", 0, "also move a database of this many small tables (with -databases: in each)")
	flag.IntVar(&o.databases, "databases", 0, "also move this many databases of -tables small tables each (default 20)")
	flag.IntVar(&o.largeObjects, "large-objects", 0, "also move a database of this many large objects of 1-10 KiB")
	flag.StringVar(&o.out, "out", "", "results file (default bench/results/scale-<N>.tsv)")
	flag.StringVar(&methods, "methods", strings.Join(methodNames(), ","), "methods to run, comma-separated")
	flag.Parse()
	o.methods = strings.Split(methods, ",")
	if o.out == "" {
		o.out = fmt.Sprintf("bench/results/scale-%d.tsv", o.scale)
		switch {
		case o.databases > 0:
			o.out = fmt.Sprintf("bench/results/scale-%d-databases-%d-tables-%d.tsv", o.scale, o.databases, cmp.Or(o.tables, 20))
		case o.tables > 0:
			o.out = fmt.Sprintf("bench/results/scale-%d-tables-%d.tsv", o.scale, o.tables)
		}
		if o.largeObjects > 0 {
			o.out = strings.TrimSuffix(o.out, ".tsv") + fmt.Sprintf("-large-objects-%d.tsv", o.largeObjects)
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	// Ctrl-C or SIGTERM: the method running fails, and the clusters and the
	// work directory are removed on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, bin, src, cleanup, err := benchkit.Setup(ctx, o.scale)
	if err != nil {
		return err
	}
	defer cleanup()
	h := &harness{work: work, bin: bin, src: src, results: map[string][]result{}}
	if err := h.prepare(ctx, o); err != nil {
		return err
	}
	fmt.Printf("source ready: %s (pgbench scale %d); %d runs of %s\n", strings.Join(h.databases, ", "), o.scale, o.runs, strings.Join(o.methods, ", "))
	for i := range o.runs {
		for _, name := range o.methods {
			m, ok := methodByName(name)
			if !ok {
				return fmt.Errorf("unknown method %q (have %s)", name, strings.Join(methodNames(), ", "))
			}
			if o.largeObjects > 0 && m.noLargeObjects {
				if i == 0 {
					fmt.Printf("%s skipped: it does not move large objects\n", name)
				}
				continue
			}
			r, err := h.measure(ctx, m)
			if ctx.Err() != nil {
				return errors.New("interrupted: clusters and work directory removed")
			}
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", name, i+1, err)
			}
			fmt.Printf("run %d %-24s %6.2fs  cpu %6.2fs (source %.2fs, target %.2fs, tool %.2fs)  %s\n", i+1, name, r.took.Seconds(), r.cpu.Seconds(), r.srcCPU.Seconds(), r.dstCPU.Seconds(), r.toolCPU.Seconds(), r.note())
			h.results[name] = append(h.results[name], r)
		}
	}
	return h.report(o)
}

// measure runs one method against a fresh target cluster and verifies it.
func (h *harness) measure(ctx context.Context, m method) (result, error) {
	// The target's files stay until the harness ends, in its work
	// directory: ext4 skips inodes freed in the last minutes when it
	// allocates new ones, rereading each, so removing a run's tens of
	// thousands of files made the next run's file creation cost seconds
	// of kernel CPU (2,000 tables: 2.1 s of system time against 0.3 s).
	dst, err := cluster.Start(ctx, cluster.Options{BaseDir: h.work})
	if err != nil {
		return result{}, err
	}
	defer dst.Halt(context.WithoutCancel(ctx))
	busy, srcCPU, dstCPU, tool := benchkit.BusyCPU(), benchkit.ServerCPU(h.src), benchkit.ServerCPU(dst), benchkit.ChildrenCPU()
	r, err := m.run(ctx, h, dst)
	r.toolCPU = benchkit.ChildrenCPU() - tool
	if err != nil {
		return r, err
	}
	time.Sleep(300 * time.Millisecond) // the backends that were ending
	r.cpu = benchkit.BusyCPU() - busy
	r.srcCPU, r.dstCPU = benchkit.ServerCPU(h.src)-srcCPU, benchkit.ServerCPU(dst)-dstCPU
	if err := h.verify(ctx, dst, m.verify); err != nil {
		return r, fmt.Errorf("verification: %w", err)
	}
	r.verified = true
	return r, nil
}

// result is one timed, verified run.
type result struct {
	took   time.Duration
	rssKiB int64
	// cpu is the machine's busy CPU time during the run (every process:
	// both servers, the tool, the rest of the machine).
	cpu time.Duration
	// srcCPU and dstCPU are each server's CPU time during the run.
	srcCPU, dstCPU time.Duration
	// toolCPU is the method's own processes' CPU time (the harness's
	// children that ended: pghaul with its pg_dump and pg_restore, or the
	// pipeline), the servers not included.
	toolCPU  time.Duration
	phases   map[string]time.Duration
	verified bool
}

func (r result) note() string {
	var parts []string
	if r.rssKiB > 0 {
		parts = append(parts, fmt.Sprintf("peak RSS %d MiB", r.rssKiB>>10))
	}
	for _, p := range phaseNames {
		if d, ok := r.phases[p]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2fs", p, d.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

// sorted returns one figure of every run, ascending.
func sorted(rs []result, figure func(result) time.Duration) []time.Duration {
	var d []time.Duration
	for _, r := range rs {
		d = append(d, figure(r))
	}
	slices.Sort(d)
	return d
}

func medianCPU(rs []result, figure func(result) time.Duration) float64 {
	return benchkit.Median(sorted(rs, figure)).Seconds()
}

func stats(rs []result) (lo, med, hi time.Duration) {
	d := sorted(rs, func(r result) time.Duration { return r.took })
	return d[0], benchkit.Median(d), d[len(d)-1]
}
