package copyrelay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestRelay streams COPY between two servers through relay: rows larger
// than its buffer, both formats, and every way a copy can end — the target
// or the source refusing it, either failing mid-stream, a cancellation —
// with what each leaves of the two sessions.
func TestRelay(t *testing.T) {
	src, dst := pgtest.Pair(t)
	ctx := context.Background()
	table := `CREATE TABLE t (id int PRIMARY KEY, v text, b bytea)`
	pgtest.Exec(t, src, "postgres", table,
		// 20,000 small rows, then three larger than the relay's buffer.
		`INSERT INTO t SELECT g, 'row ' || g || E' tab\t', decode(md5(g::text), 'hex') FROM generate_series(1, 20000) g`,
		`INSERT INTO t SELECT 20000 + g, repeat(md5(g::text), 70000), decode(repeat('ab', 1500000), 'hex') FROM generate_series(1, 3) g`)
	pgtest.Exec(t, dst, "postgres", table, `CREATE TABLE capped (id int CHECK (id < 1000), v text, b bytea)`)
	const sum = `SELECT count(*) || ' ' || md5(string_agg(md5(t::text), ',' ORDER BY id)) FROM t`
	want := pgtest.QueryString(t, src, "postgres", sum)

	open := func(c *cluster.Cluster) *pgconn.PgConn {
		conn, err := pgconn.Connect(ctx, c.URI("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	exec := func(conn *pgconn.PgConn, sql string) error {
		_, err := conn.Exec(ctx, sql).ReadAll()
		return err
	}
	usable := func(what string, conn *pgconn.PgConn) {
		t.Helper()
		if err := exec(conn, "ROLLBACK"); err != nil {
			t.Fatalf("%s session after the relay: %v", what, err)
		}
		if err := exec(conn, "SELECT 1"); err != nil {
			t.Fatalf("%s session after the relay: %v", what, err)
		}
	}
	code := func(err error) string {
		var pge *pgconn.PgError
		if errors.As(err, &pge) {
			return pge.Code
		}
		return ""
	}
	// run relays out into in inside a target transaction.
	run := func(ctx context.Context, s, d *pgconn.PgConn, out, in string, counted *atomic.Int64) (int64, error) {
		if err := exec(d, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		return Relay(ctx, s, d, out, in, Options{Stall: time.Minute, Counted: counted})
	}

	for _, format := range []string{"text", "binary"} {
		s, d := open(src), open(dst)
		var counted atomic.Int64
		rows, err := run(ctx, s, d, "COPY t TO STDOUT (FORMAT "+format+")", "COPY t FROM STDIN (FORMAT "+format+")", &counted)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if err := exec(d, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if rows != 20003 {
			t.Fatalf("%s: relay reported %d rows, want 20003", format, rows)
		}
		if got := pgtest.QueryString(t, dst, "postgres", sum); got != want {
			t.Fatalf("%s: target rows %s, source %s", format, got, want)
		}
		// The bytes counted are the rows' bytes, as COPY TO writes them.
		var n countWriter
		if _, err := s.CopyTo(ctx, &n, "COPY t TO STDOUT (FORMAT "+format+")"); err != nil {
			t.Fatal(err)
		}
		if counted.Load() != int64(n) {
			t.Fatalf("%s: counted %d bytes, COPY TO writes %d", format, counted.Load(), n)
		}
		pgtest.Exec(t, dst, "postgres", "TRUNCATE t")
	}

	// The target refuses the COPY: nothing is read from the source, both
	// sessions go on.
	s, d := open(src), open(dst)
	var counted atomic.Int64
	_, err := run(ctx, s, d, "COPY t TO STDOUT", "COPY missing FROM STDIN", &counted)
	if code(err) != "42P01" || counted.Load() != 0 {
		t.Fatalf("target without the table: %v (%d bytes passed), want SQLSTATE 42P01 and none", err, counted.Load())
	}
	usable("source", s)
	usable("target", d)

	// The source refuses it: the target's COPY is failed, both go on.
	_, err = run(ctx, s, d, "COPY missing TO STDOUT", "COPY t FROM STDIN", &counted)
	if code(err) != "42P01" {
		t.Fatalf("source without the table: %v, want SQLSTATE 42P01", err)
	}
	usable("source", s)
	usable("target", d)

	// The source fails mid-stream (division by zero at row 15,000): the
	// target's COPY fails with it, both sessions go on, no row stays.
	_, err = run(ctx, s, d, "COPY (SELECT id, CASE WHEN 1 / (id - 15000) > -2 THEN v END, b FROM t ORDER BY id) TO STDOUT", "COPY t FROM STDIN", &counted)
	if code(err) != "22012" {
		t.Fatalf("source failing mid-stream: %v, want SQLSTATE 22012", err)
	}
	usable("source", s)
	usable("target", d)
	if n := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM t"); n != "0" {
		t.Fatalf("%s rows left on the target after a failed copy", n)
	}

	// The target fails mid-stream (a check at row 1,000): its error comes
	// back while the source still streams; neither session is used again.
	_, err = run(ctx, s, d, "COPY t TO STDOUT", "COPY capped FROM STDIN", &counted)
	if code(err) != "23514" || !errors.Is(err, ErrTargetEnded) {
		t.Fatalf("target failing mid-stream: %v, want SQLSTATE 23514", err)
	}
	if !s.IsClosed() || !d.IsClosed() {
		t.Fatal("after the target failed mid-stream, a session was left open")
	}
	if n := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM capped"); n != "0" {
		t.Fatalf("%s rows left in capped after a failed copy", n)
	}

	// Cancelled mid-stream: the context's error, both sessions closed.
	s, d = open(src), open(dst)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for counted.Store(0); counted.Load() == 0; {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err = run(cctx, s, d, "COPY (SELECT t.* FROM t, generate_series(1, 50)) TO STDOUT", "COPY t FROM STDIN", &counted)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled relay: %v, want context.Canceled", err)
	}
	if !s.IsClosed() || !d.IsClosed() {
		t.Fatal("after a cancellation, a session was left open")
	}
	if n := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM t"); n != "0" {
		t.Fatalf("%s rows left on the target after a cancelled copy", n)
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
