package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/cluster"
)

type harness struct {
	work, bin string
	src       *cluster.Cluster
	results   map[string][]result
	configs   int
	// databases are what the dump and replication methods move: bench
	// and mixed, and many with -tables.
	databases []string
}

func (h *harness) prepare(ctx context.Context, o options) error {
	h.databases = []string{"bench", "mixed"}
	loads := map[string][]string{"mixed": mixedSQL()}
	switch {
	case o.databases > 0:
		for i := range o.databases {
			db := fmt.Sprintf("small%03d", i+1)
			h.databases = append(h.databases, db)
			loads[db] = manySQL(cmp.Or(o.tables, 20))
		}
	case o.tables > 0:
		h.databases = append(h.databases, "many")
		loads["many"] = manySQL(o.tables)
	}
	if o.largeObjects > 0 {
		h.databases = append(h.databases, "blobs")
		loads["blobs"] = blobsSQL(o.largeObjects)
	}
	for _, db := range h.databases {
		stmts, ok := loads[db]
		if !ok {
			continue // bench: pgbench made it
		}
		if err := createdb(h.src, db); err != nil {
			return err
		}
		if err := execAll(ctx, h.src.URI(db), append(stmts, "VACUUM ANALYZE")...); err != nil {
			return err
		}
	}
	// pgbench_history has no key; publishing it needs a replica identity.
	if err := execAll(ctx, h.src.URI("bench"), "ALTER TABLE pgbench_history REPLICA IDENTITY FULL", "ANALYZE"); err != nil {
		return err
	}
	// Settle the source as a live one would be: hint bits and the
	// visibility map set by a vacuum, dirty pages written by a checkpoint
	// and flushed by the kernel. Otherwise the first method timed pays for
	// the load's writes (its first run took 1.4x the others). The other
	// databases had their VACUUM ANALYZE above.
	if err := execAll(ctx, h.src.URI("postgres"), "CHECKPOINT"); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

func execAll(ctx context.Context, uri string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// verify compares row counts and an ordered md5 of the rows of every table
// (only ones listed, when tables is set) on both sides.
func (h *harness) verify(ctx context.Context, dst *cluster.Cluster, tables map[string][]string) error {
	for _, db := range h.databases {
		want := tables[db]
		if tables != nil && len(want) == 0 {
			continue
		}
		s, err := digests(ctx, h.src.URI(db), want)
		if err != nil {
			return err
		}
		d, err := digests(ctx, dst.URI(db), want)
		if err != nil {
			return err
		}
		for t, v := range s {
			if d[t] != v {
				return fmt.Errorf("%s.%s: %s on the target, %s on the source", db, t, d[t], v)
			}
		}
		if tables == nil {
			if err := sameLargeObjects(ctx, h.src.URI(db), dst.URI(db)); err != nil {
				return fmt.Errorf("%s: %w", db, err)
			}
		}
	}
	return nil
}

// largeObjectsSQL digests a database's large objects: their count, and an
// md5 of each one's OID and contents in OID order.
const largeObjectsSQL = `SELECT count(*) || ':' || coalesce(md5(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid)), '') FROM pg_largeobject_metadata`

func sameLargeObjects(ctx context.Context, srcURI, dstURI string) error {
	var digest [2]string
	for i, uri := range []string{srcURI, dstURI} {
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			return err
		}
		err = conn.QueryRow(ctx, largeObjectsSQL).Scan(&digest[i])
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("large objects: %w", err)
		}
	}
	if digest[0] != digest[1] {
		return fmt.Errorf("large objects: %s on the target, %s on the source", digest[1], digest[0])
	}
	return nil
}

const tablesSQL = `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' ORDER BY 1`

func digests(ctx context.Context, uri string, only []string) (map[string]string, error) {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	tables := only
	if tables == nil {
		rows, err := conn.Query(ctx, tablesSQL)
		if err != nil {
			return nil, err
		}
		if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for _, t := range tables {
		var v string
		q := fmt.Sprintf("SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '') FROM ONLY %s r", t)
		if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		out[t] = v
	}
	return out, nil
}

// phaseNames are where pghaul's time goes, from its step log.
var phaseNames = []string{"schema", "copy", "post-data", "rest"}

// phases measures pghaul's wall time by kind of work: for each kind, the
// time during which a step of that kind ran in some database (databases
// run at once, so kinds overlap and need not add up to the wall time);
// "rest" is the time no step ran at all (planning, process start and exit).
// Early index builds run inside the copy step and count as copy.
func phases(log string, wall time.Duration) map[string]time.Duration {
	kind := map[string]string{"dump-schema": "schema", "pre-data": "schema", "copy-data": "copy", "large-objects": "copy", "post-data": "post-data"}
	spans := map[string][]span{}
	var all []span
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, `msg="step done"`) {
			continue
		}
		step := field(l, "step=")
		d, err := time.ParseDuration(field(l, "took="))
		if err != nil {
			continue
		}
		end, err := time.Parse(time.RFC3339Nano, field(l, "time="))
		if err != nil {
			continue
		}
		sp := span{end.Add(-d), end}
		all = append(all, sp)
		if k, ok := kind[step[strings.LastIndexByte(step, '/')+1:]]; ok {
			spans[k] = append(spans[k], sp)
		}
	}
	out := map[string]time.Duration{}
	for k, ss := range spans {
		out[k] = covered(ss)
	}
	out["rest"] = max(0, wall-covered(all))
	return out
}

type span struct{ from, to time.Time }

// covered is the length of the union of spans.
func covered(ss []span) time.Duration {
	slices.SortFunc(ss, func(a, b span) int { return a.from.Compare(b.from) })
	var total time.Duration
	var cur span
	for i, s := range ss {
		switch {
		case i == 0:
			cur = s
		case s.from.After(cur.to):
			total += cur.to.Sub(cur.from)
			cur = s
		case s.to.After(cur.to):
			cur.to = s.to
		}
	}
	if len(ss) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}

func field(line, key string) string {
	i := strings.Index(line, key)
	if i < 0 {
		return ""
	}
	v := line[i+len(key):]
	if strings.HasPrefix(v, `"`) {
		v = v[1:]
		return v[:strings.IndexByte(v, '"')]
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// report writes the results file and prints the table.
func (h *harness) report(o options) error {
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("scale\tmethod\truns\tmin_s\tmedian_s\tmax_s\tratio_to_pghaul\tverified\tpeak_rss_mib\tmedian_cpu_s\tmedian_source_cpu_s\tmedian_target_cpu_s\tphases\n")
	base := map[string]time.Duration{}
	for _, ref := range []string{"pghaul-dump", "pghaul-replication"} {
		if rs := h.results[ref]; len(rs) > 0 {
			_, base[ref], _ = stats(rs)
		}
	}
	fmt.Printf("\n| method | min s | median s | max s | × pghaul | CPU s | source CPU s | target CPU s |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range o.methods {
		rs := h.results[name]
		if len(rs) == 0 {
			continue
		}
		lo, med, hi := stats(rs)
		ratio := ""
		if ref := base[reference(name)]; ref > 0 {
			ratio = fmt.Sprintf("%.2f", med.Seconds()/ref.Seconds())
		}
		var rss int64
		for _, r := range rs {
			rss = max(rss, r.rssKiB)
		}
		cpu := medianCPU(rs, func(r result) time.Duration { return r.cpu })
		srcCPU := medianCPU(rs, func(r result) time.Duration { return r.srcCPU })
		dstCPU := medianCPU(rs, func(r result) time.Duration { return r.dstCPU })
		fmt.Fprintf(&b, "%d\t%s\t%d\t%.2f\t%.2f\t%.2f\t%s\t%t\t%d\t%.2f\t%.2f\t%.2f\t%s\n", o.scale, name, len(rs), lo.Seconds(), med.Seconds(), hi.Seconds(),
			ratio, allVerified(rs), rss>>10, cpu, srcCPU, dstCPU, rs[len(rs)/2].note())
		fmt.Printf("| %s | %.2f | %.2f | %.2f | %s | %.2f | %.2f | %.2f |\n", name, lo.Seconds(), med.Seconds(), hi.Seconds(), ratio, cpu, srcCPU, dstCPU)
	}
	fmt.Printf("\nresults written to %s\n", o.out)
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}

func allVerified(rs []result) bool {
	for _, r := range rs {
		if !r.verified {
			return false
		}
	}
	return true
}

// reference is the pghaul method a method is compared with.
func reference(name string) string {
	if name == "pghaul-replication" || name == "native-subscription" {
		return "pghaul-replication"
	}
	return "pghaul-dump"
}
