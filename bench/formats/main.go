// Command formats measures text against binary COPY per type family: for
// each family a table is streamed COPY TO STDOUT -> COPY FROM STDIN (FREEZE,
// after a TRUNCATE in the same transaction, as pghaul copies) between two
// databases of one throwaway cluster, alternating the two formats, and the
// CPU time of the sending and the receiving backend is read from
// /proc/<pid>/stat around each copy:
//
//	go run ./bench/formats -rows 500000 -runs 3      (make bench-formats)
//
// Results go to bench/results/copy-formats.tsv: per family and format the
// median source, target and total backend CPU seconds, the bytes on the
// wire, and binary's total CPU over text's.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/bench/internal/benchkit"
	"github.com/pghaul/pghaul/internal/cluster"
)

// family is a table of one kind of columns; fill is the SELECT list over
// generate_series(1, rows) g.
type family struct {
	name, columns, fill string
}

var families = []family{
	{"integers", "a int4, b int8, c int2", "g, g::int8 * 1000003, (g % 30000)::int2"},
	{"numeric", "a numeric(12,2), b numeric", "(g * 1.37)::numeric(12,2), g::numeric / 7"},
	{"floats", "a float8, b float4", "g * 1.000001, (g / 3.0)::float4"},
	{"date-time", "a timestamptz, b timestamp, c date", "'2020-01-01'::timestamptz + g * interval '1 minute', '2020-01-01'::timestamp + g * interval '1 second', '2020-01-01'::date + g % 3000"},
	{"text", "a text, b varchar(40)", "'row number ' || g || ' of the text family', md5(g::text)"},
	{"bpchar", "a char(84)", "''"},
	{"bool-uuid", "a bool, b uuid", "g % 2 = 0, md5(g::text)::uuid"},
	{"jsonb", "a jsonb", "jsonb_build_object('id', g, 'name', 'item ' || g, 'tags', jsonb_build_array('x', g % 7))"},
	{"bytea", "a bytea", "decode(md5(g::text), 'hex')"},
	{"arrays", "a int4[], b text[]", "ARRAY[g, g + 1, g + 2, g + 3], ARRAY['a' || g, 'b' || g]"},
	{"pgbench_accounts", "aid int4, bid int4, abalance int4, filler char(84)", "g, 1 + g / 100000, 0, ''"},
}

var formats = []string{"text", "binary"}

func main() {
	rows := flag.Int("rows", 500000, "rows per family")
	runs := flag.Int("runs", 3, "runs of each format")
	out := flag.String("out", "bench/results/copy-formats.tsv", "results file")
	flag.Parse()
	if err := run(*rows, *runs, *out); err != nil {
		fmt.Fprintln(os.Stderr, "formats:", err)
		os.Exit(1)
	}
}

// sample is one copy's cost.
type sample struct {
	src, dst time.Duration
	bytes    int64
}

func run(rows, runs int, out string) error {
	ctx := context.Background()
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop(ctx)
	for _, db := range []string{"src", "dst"} {
		if err := benchkit.Sh(c, c.Program("createdb"), "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres", db); err != nil {
			return err
		}
	}
	src, err := pgconn.Connect(ctx, c.URI("src"))
	if err != nil {
		return err
	}
	defer src.Close(ctx)
	dst, err := pgconn.Connect(ctx, c.URI("dst"))
	if err != nil {
		return err
	}
	defer dst.Close(ctx)
	for _, f := range families {
		create := fmt.Sprintf("CREATE TABLE %q (%s)", f.name, f.columns)
		fill := fmt.Sprintf("INSERT INTO %q SELECT %s FROM generate_series(1, %d) g", f.name, f.fill, rows)
		if err := exec(ctx, src, create, fill, fmt.Sprintf("VACUUM (FREEZE, ANALYZE) %q", f.name)); err != nil {
			return err
		}
		if err := exec(ctx, dst, create); err != nil {
			return err
		}
	}
	fmt.Printf("%d families of %d rows, %d runs of each format\n", len(families), rows, runs)
	results := map[string][]sample{}
	for i := range runs {
		for _, f := range families {
			for _, format := range formats {
				s, err := copyOnce(ctx, src, dst, f.name, format)
				if err != nil {
					return fmt.Errorf("%s %s: %w", f.name, format, err)
				}
				results[f.name+"/"+format] = append(results[f.name+"/"+format], s)
				fmt.Printf("run %d %-18s %-6s source %.2fs target %.2fs %s\n", i+1, f.name, format, s.src.Seconds(), s.dst.Seconds(), byteCount(s.bytes))
			}
		}
	}
	return report(out, rows, results)
}

func exec(ctx context.Context, conn *pgconn.PgConn, stmts ...string) error {
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s).ReadAll(); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// copyOnce streams one table in one format and returns what each backend
// spent on it.
func copyOnce(ctx context.Context, src, dst *pgconn.PgConn, table, format string) (sample, error) {
	if err := exec(ctx, dst, "BEGIN", fmt.Sprintf("TRUNCATE %q", table)); err != nil {
		return sample{}, err
	}
	s0, d0 := backendCPU(src.PID()), backendCPU(dst.PID())
	pr, pw := io.Pipe()
	// Rows batched as pghaul does: one network message per row would
	// cost the target more than the format.
	buf := bufio.NewWriterSize(pw, 256<<10)
	counted := &counter{w: buf}
	done := make(chan error, 1)
	go func() {
		_, err := src.CopyTo(ctx, counted, fmt.Sprintf("COPY %q TO STDOUT (FORMAT %s)", table, format))
		if err == nil {
			err = buf.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	_, err := dst.CopyFrom(ctx, pr, fmt.Sprintf("COPY %q FROM STDIN (FORMAT %s, FREEZE)", table, format))
	if err = errors.Join(err, <-done); err != nil {
		exec(ctx, dst, "ROLLBACK")
		return sample{}, err
	}
	s1, d1 := backendCPU(src.PID()), backendCPU(dst.PID())
	if err := exec(ctx, dst, "COMMIT"); err != nil {
		return sample{}, err
	}
	return sample{src: s1 - s0, dst: d1 - d0, bytes: counted.n}, nil
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// backendCPU is a server process's user and system time so far.
func backendCPU(pid uint32) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name's closing parenthesis: utime and
	// stime are the 12th and 13th of them, in USER_HZ (100) ticks.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func byteCount(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func report(path string, rows int, results map[string][]sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(f, "family\tformat\trows\tmedian_source_cpu_s\tmedian_target_cpu_s\tmedian_total_cpu_s\tmib\tbinary_over_text")
	fmt.Fprintln(tw, "family\tformat\tsource CPU s\ttarget CPU s\ttotal\tMiB\tbinary/text")
	for _, fam := range families {
		var textTotal time.Duration
		for _, format := range formats {
			ss := results[fam.name+"/"+format]
			var srcs, dsts, tots []time.Duration
			for _, s := range ss {
				srcs, dsts, tots = append(srcs, s.src), append(dsts, s.dst), append(tots, s.src+s.dst)
			}
			tot := benchkit.Median(tots)
			ratio := "1.00"
			if format == "text" {
				textTotal = tot
			} else if textTotal > 0 {
				ratio = fmt.Sprintf("%.2f", tot.Seconds()/textTotal.Seconds())
			}
			mib := float64(ss[0].bytes) / (1 << 20)
			fmt.Fprintf(f, "%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.1f\t%s\n", fam.name, format, rows, benchkit.Median(srcs).Seconds(), benchkit.Median(dsts).Seconds(), tot.Seconds(), mib, ratio)
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t%s\n", fam.name, format, benchkit.Median(srcs).Seconds(), benchkit.Median(dsts).Seconds(), tot.Seconds(), mib, ratio)
		}
	}
	return tw.Flush()
}
