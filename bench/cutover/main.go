// Command cutover measures pghaul's cut-over under load: several
// databases replicate while pgbench writes to each at a steady rate, then
// the same file with stop: true cuts over. Each run starts a fresh source
// and target. Per run it reports each database's freeze window (from the
// state: the moment the database refused connections to its switch), the
// cut-over's wall time, and the transactions pgbench saw committed against
// those present on the target (pgbench_history rows: only pgbench writes
// them, one per transaction):
//
//	go run ./bench/cutover -runs 5 -rate 200 -databases 3     (make bench-cutover)
//
// Each run is followed by a baseline on fresh clusters of its own: the same
// cut-over with write_freeze: false and verify: none (what pghaul did
// before the freeze), which shows what the freeze protects.
//
// Results go to bench/results/cutover.tsv.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/bench/internal/benchkit"
	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/state"
)

type options struct {
	runs, databases, scale, clients int
	rate                            float64
	lag                             int64
	out                             string
	baseline                        bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "cut-overs to measure, each on fresh clusters")
	flag.IntVar(&o.databases, "databases", 3, "databases replicated and cut over")
	flag.IntVar(&o.scale, "scale", 1, "pgbench scale of each database")
	flag.IntVar(&o.clients, "clients", 2, "pgbench clients per database")
	flag.Float64Var(&o.rate, "rate", 200, "transactions per second over all databases")
	flag.Int64Var(&o.lag, "lag", 16<<20, "replication.max_lag_bytes: the lag at which to freeze")
	flag.StringVar(&o.out, "out", "bench/results/cutover.tsv", "results file")
	flag.BoolVar(&o.baseline, "baseline", true, "also cut over without the freeze after each run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "cutover:", err)
		os.Exit(1)
	}
}

// outcome is one measured cut-over.
type outcome struct {
	freeze    bool
	windows   []time.Duration // by database (with the freeze)
	took      time.Duration   // the cut-over apply's wall time
	committed int64           // transactions pgbench saw committed
	present   int64           // pgbench_history rows on the target
	missing   int64           // committed on the source, absent on the target
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "pghaul-cutover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "pghaul")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pghaul").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	var all, base []outcome
	for i := range o.runs {
		for _, freeze := range []bool{true, false} {
			if !freeze && !o.baseline {
				continue
			}
			r, err := once(ctx, o, work, bin, freeze)
			if ctx.Err() != nil {
				return errors.New("interrupted: clusters and work directory removed")
			}
			if err != nil {
				return fmt.Errorf("run %d (freeze %t): %w", i+1, freeze, err)
			}
			fmt.Printf("run %d, freeze %-5t: windows %s, cut-over %.2fs, pgbench committed %d, on the target %d, missing %d\n",
				i+1, freeze, durations(r.windows), r.took.Seconds(), r.committed, r.present, r.missing)
			if freeze {
				all = append(all, r)
			} else {
				base = append(base, r)
			}
		}
	}
	return report(o, all, base)
}

func durations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.3fs", d.Seconds()))
	}
	return strings.Join(s, " ")
}

// once measures one cut-over on fresh clusters.
func once(ctx context.Context, o options, work, bin string, freeze bool) (outcome, error) {
	src, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return outcome{}, err
	}
	defer src.Stop(context.WithoutCancel(ctx))
	dst, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return outcome{}, err
	}
	defer dst.Stop(context.WithoutCancel(ctx))
	dbs := make([]string, o.databases)
	for i := range dbs {
		dbs[i] = fmt.Sprintf("bench%d", i+1)
		script := fmt.Sprintf("%s -h 127.0.0.1 -p %d -U postgres %s && %s -i -q -s %d %q",
			src.Program("createdb"), src.Port, dbs[i], src.Program("pgbench"), o.scale, src.URI(dbs[i]))
		if err := benchkit.Sh(src, "sh", "-c", script); err != nil {
			return outcome{}, err
		}
		if err := exec1(ctx, src.URI(dbs[i]), "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"); err != nil {
			return outcome{}, err
		}
	}
	cfg := filepath.Join(work, "cutover.yaml")
	os.RemoveAll(cfg + ".state")
	policy := "write_freeze: true"
	if !freeze {
		policy = "write_freeze: false, verify: none" // verify would see the writes going on
	}
	doc := func(stop bool) string {
		return fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\nmethod: replication\ndatabases: {include: [%s]}\nparallel: {databases: %d}\nreplication: {max_lag_bytes: %d, stop: %t, %s}\n",
			src.URI("postgres"), dst.URI("postgres"), strings.Join(dbs, ", "), o.databases, o.lag, stop, policy)
	}
	if err := os.WriteFile(cfg, []byte(doc(false)), 0o600); err != nil {
		return outcome{}, err
	}
	if out, err := pghaul(bin, "apply", "-c", cfg); err != nil {
		return outcome{}, fmt.Errorf("apply: %v\n%s", err, out)
	}
	benches := make([]*exec.Cmd, len(dbs))
	outs := make([]*strings.Builder, len(dbs))
	for i, db := range dbs {
		benches[i] = exec.Command(src.Program("pgbench"), "-n", "-c", strconv.Itoa(o.clients), "-R", fmt.Sprint(o.rate/float64(len(dbs))), "-T", "600", src.URI(db))
		outs[i] = &strings.Builder{}
		benches[i].Stdout, benches[i].Stderr = outs[i], outs[i]
		if err := benches[i].Start(); err != nil {
			return outcome{}, err
		}
	}
	time.Sleep(3 * time.Second) // steady load while replicating
	if err := os.WriteFile(cfg, []byte(doc(true)), 0o600); err != nil {
		return outcome{}, err
	}
	start := time.Now()
	out, err := pghaul(bin, "apply", "-c", cfg)
	r := outcome{freeze: freeze, took: time.Since(start)}
	if path := os.Getenv("CUTOVER_LOG"); path != "" {
		os.WriteFile(path, out, 0o644) // the last cut-over's log, for a closer look
	}
	for _, b := range benches {
		b.Process.Signal(syscall.SIGINT)
		b.Wait()
	}
	if err != nil {
		return r, fmt.Errorf("cut-over: %v\n%s", err, out)
	}
	return r, r.count(ctx, bin, cfg, src, dst, dbs, outs, start.Add(r.took))
}

// count reads the freeze windows from the state, lifts the freezes and
// compares the transactions committed on the source before the cut-over
// ended (switched) with the target's rows. With the freeze, pgbench's own
// count of committed transactions is checked too; without it, pgbench
// writes on after the switch (what it writes then is not counted) and is
// stopped without a summary.
func (r *outcome) count(ctx context.Context, bin, cfg string, src, dst *cluster.Cluster, dbs []string, outs []*strings.Builder, switched time.Time) error {
	st, err := (&state.FileStore{Dir: cfg + ".state"}).Load()
	if err != nil {
		return err
	}
	for _, db := range dbs {
		f := st.Freezes[db]
		switch {
		case !r.freeze:
		case f == nil || !f.Switched():
			return fmt.Errorf("%s: no switched freeze in the state", db)
		default:
			r.windows = append(r.windows, f.Window())
		}
	}
	if out, err := pghaul(bin, "cleanup", "-c", cfg, "--unfreeze"); err != nil {
		return fmt.Errorf("cleanup --unfreeze: %v\n%s", err, out)
	}
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	for i, db := range dbs {
		var before, onTarget int64
		if err := historyBefore(ctx, src.URI(db), switched, &before); err != nil {
			return err
		}
		if err := historyBefore(ctx, dst.URI(db), switched, &onTarget); err != nil {
			return err
		}
		committed := before
		if r.freeze {
			m := processed.FindStringSubmatch(outs[i].String())
			if m == nil {
				return fmt.Errorf("%s: pgbench printed no count:\n%s", db, outs[i])
			}
			committed, _ = strconv.ParseInt(m[1], 10, 64)
		}
		r.committed += committed
		r.present += onTarget
		r.missing += max(0, before-onTarget, committed-onTarget)
	}
	return nil
}

func pghaul(bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PGHAUL_LAG_POLL=100ms")
	return cmd.CombinedOutput()
}

func exec1(ctx context.Context, uri, sql string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// historyBefore counts pgbench_history rows stamped before t (mtime is
// the transaction's start in the server's time zone).
func historyBefore(ctx context.Context, uri string, t time.Time, n *int64) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_history WHERE mtime < ($1::timestamptz AT TIME ZONE current_setting('TimeZone'))", t).Scan(n)
}

// report prints and writes the medians: of each run's longest window, of
// every database's window, and of the cut-over's wall time.
func report(o options, all, base []outcome) error {
	var longest, every, took []time.Duration
	var missing int64
	for _, r := range all {
		longest = append(longest, slices.Max(r.windows))
		every = append(every, r.windows...)
		took = append(took, r.took)
		missing += r.missing
	}
	lines := []string{fmt.Sprintf("%d runs, %d databases, pgbench %.0f tps, freeze at %d bytes of lag: window median %.3fs (longest per run: median %.3fs, max %.3fs); cut-over wall time median %.2fs; committed transactions missing on the target: %d",
		len(all), o.databases, o.rate, o.lag, benchkit.Median(every).Seconds(), benchkit.Median(longest).Seconds(), slices.Max(longest).Seconds(), benchkit.Median(took).Seconds(), missing)}
	if len(base) > 0 {
		var baseTook []time.Duration
		var baseMissing, baseCommitted int64
		for _, r := range base {
			baseTook = append(baseTook, r.took)
			baseMissing += r.missing
			baseCommitted += r.committed
		}
		lines = append(lines, fmt.Sprintf("baseline, write_freeze: false and verify: none, same load: cut-over wall time median %.2fs (with the freeze %.2fx that); committed transactions missing on the target: %d of %d",
			benchkit.Median(baseTook).Seconds(), benchkit.Median(took).Seconds()/benchkit.Median(baseTook).Seconds(), baseMissing, baseCommitted))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# go run ./bench/cutover -runs %d -databases %d -scale %d -clients %d -rate %.0f -lag %d\n", o.runs, o.databases, o.scale, o.clients, o.rate, o.lag)
	for _, l := range lines {
		fmt.Println(l)
		fmt.Fprintf(&b, "# %s\n", l)
	}
	fmt.Fprintf(&b, "run\tfreeze\twindows_s\tcutover_s\tcommitted\tpresent\tmissing\n")
	for i, r := range append(all, base...) {
		fmt.Fprintf(&b, "%d\t%t\t%s\t%.2f\t%d\t%d\t%d\n", i%len(all)+1, r.freeze, durations(r.windows), r.took.Seconds(), r.committed, r.present, r.missing)
	}
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}
