// Package pgtest starts real PostgreSQL clusters for tests (internal/cluster
// under testing.TB) and offers small helpers to query them. Test-only: no
// production package may import it.
//
// Binaries come from PGHAUL_PG_BIN, or per side from PGHAUL_SOURCE_PG_BIN
// and PGHAUL_TARGET_PG_BIN (with PGHAUL_SOURCE_LD_LIBRARY_PATH and
// PGHAUL_TARGET_LD_LIBRARY_PATH), else the newest installed.
package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/cluster"
)

func init() {
	// Stray PG* variables would steer pgx and the client programs away
	// from the test servers.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PG") && !strings.HasPrefix(k, "PGHAUL_") {
			os.Unsetenv(k)
		}
	}
}

// Side says which binaries a cluster uses: the source's or the target's.
type Side string

// The sides.
const (
	Source Side = "SOURCE"
	Target Side = "TARGET"
)

// Option changes the cluster a test starts.
type Option func(*cluster.Options)

// WithPassword makes TCP connections use scram-sha-256 with this superuser password.
func WithPassword(pw string) Option { return func(o *cluster.Options) { o.Password = pw } }

// WithSettings adds postgresql.conf settings.
func WithSettings(s map[string]string) Option {
	return func(o *cluster.Options) {
		if o.Settings == nil {
			o.Settings = map[string]string{}
		}
		for k, v := range s {
			o.Settings[k] = v
		}
	}
}

// Start starts a cluster for side, stopped and removed when the test ends.
// It fails the test, with the install command, when no binaries are found.
func Start(t testing.TB, side Side, opts ...Option) *cluster.Cluster {
	t.Helper()
	o := cluster.Options{
		BinDir:  firstEnv("PGHAUL_"+string(side)+"_PG_BIN", "PGHAUL_PG_BIN"),
		LibPath: os.Getenv("PGHAUL_" + string(side) + "_LD_LIBRARY_PATH"),
	}
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, o)
	if err != nil {
		t.Fatalf("start %s cluster: %v", strings.ToLower(string(side)), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

// Standby starts a physical standby of primary (pg_basebackup), stopped
// when t finishes; it skips, saying why, where pg_basebackup is missing.
func Standby(t testing.TB, primary *cluster.Cluster) *cluster.Cluster {
	t.Helper()
	if _, err := os.Stat(primary.Program("pg_basebackup")); err != nil {
		t.Skipf("no pg_basebackup beside %s: the standby case needs it", primary.Program("postgres"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.StartStandby(ctx, primary)
	if err != nil {
		t.Fatalf("start a standby: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop the standby: %v", err)
		}
	})
	return c
}

// Pair starts a source and a target cluster.
func Pair(t testing.TB, opts ...Option) (src, dst *cluster.Cluster) {
	t.Helper()
	return Start(t, Source, opts...), Start(t, Target, opts...)
}

func firstEnv(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// Connect opens a connection to db as the superuser, closed at test end.
func Connect(t testing.TB, c *cluster.Cluster, db string) *pgx.Conn {
	t.Helper()
	return ConnectURI(t, c.URI(db))
}

// ConnectURI opens a connection to uri, closed at test end.
func ConnectURI(t testing.TB, uri string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	// Go strings are UTF-8 whatever the database's encoding.
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs each statement in db as the superuser, failing the test on error.
func Exec(t testing.TB, c *cluster.Cluster, db string, stmts ...string) {
	t.Helper()
	conn := Connect(t, c, db)
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}

// QueryString runs a query returning one text value.
func QueryString(t testing.TB, c *cluster.Cluster, db, sql string, args ...any) string {
	t.Helper()
	return QueryStringConn(t, Connect(t, c, db), sql, args...)
}

// QueryStringConn runs a query returning one text value on conn.
func QueryStringConn(t testing.TB, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return s
}
