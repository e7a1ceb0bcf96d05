package pg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestPreferredTLSRefusedOnce: under sslmode=prefer a server without TLS
// costs pgx a second TCP connection (and the server a second backend) per
// connect; once refused, the endpoint dials plain at once. Required TLS
// never falls back.
func TestPreferredTLSRefusedOnce(t *testing.T) {
	c := pgtest.Start(t, pgtest.Source)
	ctx := context.Background()

	e, err := NewEndpoint("source", strings.Replace(c.URI("postgres"), "sslmode=disable", "sslmode=prefer", 1))
	if err != nil {
		t.Fatal(err)
	}
	if e.config.TLSConfig == nil || len(e.config.Fallbacks) != 1 {
		t.Fatalf("sslmode=prefer should try TLS first, then plain: tls %v, fallbacks %d", e.config.TLSConfig != nil, len(e.config.Fallbacks))
	}
	for i := range 3 {
		conn, err := e.Connect(ctx, "", Options{})
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("query on connection %d: %v", i, err)
		}
		conn.Close(ctx)
		if e.config.TLSConfig != nil || len(e.config.Fallbacks) != 0 {
			t.Fatalf("after the server refused TLS, the endpoint still dials a TLS attempt first")
		}
	}
	raw, err := e.ConnectRaw(ctx, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw.Close(ctx)

	// Required TLS has no plain fallback: it keeps failing, clearly.
	req, err := NewEndpoint("target", strings.Replace(c.URI("postgres"), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := req.Connect(ctx, "", Options{})
		if err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("sslmode=require against a server without TLS: %v", err)
		}
	}
	if req.config.TLSConfig == nil {
		t.Fatal("sslmode=require lost its TLS configuration")
	}
}

// TestReleasedSessionsReused: a released session serves the next Connect
// to the same database whose options include its own, with the extra
// settings applied; any other database, a writable request or a session in
// a transaction gets a new backend, and CloseIdle ends what waits.
func TestReleasedSessionsReused(t *testing.T) {
	c := pgtest.Start(t, pgtest.Source)
	ctx := context.Background()
	pgtest.Exec(t, c, "postgres", "CREATE DATABASE other")
	e, err := NewEndpoint("source", c.URI("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	pid := func(conn interface {
		PgConn() *pgconn.PgConn
	}) uint32 {
		return conn.PgConn().PID()
	}
	show := func(conn *pgx.Conn, name string) string {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	first, err := e.Connect(ctx, "", Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	firstPID := pid(first)
	e.Release(ctx, first)
	// Another database, or a writable session: a new backend.
	other, err := e.Connect(ctx, "other", Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	writable, err := e.Connect(ctx, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pid(other) == firstPID || pid(writable) == firstPID {
		t.Fatalf("a released read-only session of postgres served database other or a writable session")
	}
	if show(writable, "default_transaction_read_only") != "off" {
		t.Fatal("a writable session is read-only")
	}
	other.Close(ctx)
	writable.Close(ctx)

	// Same database, read-only plus settings: the same backend, settings applied.
	again, err := e.Connect(ctx, "", Options{ReadOnly: true, Settings: map[string]string{"statement_timeout": "1234", "lock_timeout": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if pid(again) != firstPID {
		t.Fatalf("the released session was not reused: backend %d, want %d", pid(again), firstPID)
	}
	if got := show(again, "statement_timeout"); got != "1234ms" {
		t.Fatalf("statement_timeout of the reused session = %q, want 1234ms", got)
	}
	if show(again, "default_transaction_read_only") != "on" {
		t.Fatal("the reused session lost default_transaction_read_only")
	}
	// A session holding settings the next one does not ask for is not reused.
	e.Release(ctx, again)
	plain, err := e.Connect(ctx, "", Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if pid(plain) == firstPID || show(plain, "statement_timeout") != "0" {
		t.Fatalf("a session with statement_timeout set served one without it")
	}
	plain.Close(ctx)

	// In a transaction: closed, not kept.
	busy, err := e.Connect(ctx, "other", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := busy.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	e.Release(ctx, busy)
	if !busy.IsClosed() {
		t.Fatal("a session released inside a transaction was kept")
	}

	// At most maxIdle wait; CloseIdle ends them.
	var conns []*pgx.Conn
	for range maxIdle + 2 {
		conn, err := e.Connect(ctx, "other", Options{})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		e.Release(ctx, conn)
	}
	closed := 0
	for _, conn := range conns {
		if conn.IsClosed() {
			closed++
		}
	}
	// The earlier read-only session (again) waits too.
	if closed != 3 {
		t.Fatalf("%d of %d released sessions closed, want 3 (%d may wait)", closed, len(conns), maxIdle)
	}
	e.CloseIdle(ctx)
	for _, conn := range conns {
		if !conn.IsClosed() {
			t.Fatal("CloseIdle left a session open")
		}
	}
	if !again.IsClosed() {
		t.Fatal("CloseIdle left the read-only session open")
	}

	// A released session ends once idleFor has passed, with no Connect.
	defer func(d time.Duration) { idleFor = d }(idleFor)
	idleFor = 50 * time.Millisecond
	last, err := e.Connect(ctx, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Release(ctx, last)
	if last.IsClosed() {
		t.Fatal("a released session was closed at once")
	}
	for deadline := time.Now().Add(10 * time.Second); !last.IsClosed(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a released session outlived idleFor")
		}
	}
}
