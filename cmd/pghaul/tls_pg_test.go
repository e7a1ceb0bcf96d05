package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestVerifyFullEndToEnd runs a live migration whose source accepts the
// migration user only over TLS (pg_hba rejects it without), with
// sslmode=verify-full and a CA made for the test: pghaul's sessions,
// pg_dump and the target's subscription all verify the server. Then the
// wrong CA, in source.uri or only in uri_from_target, and a CA given to
// pghaul alone through PGSSLROOTCERT are refused by plan, naming the CA,
// before anything exists on the target.
func TestVerifyFullEndToEnd(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t, pgtest.WithPassword("Sup3r-pw"))
	ca, wrong := pgtest.TLS(t, src), pgtest.OtherCA(t, src)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE migrator LOGIN SUPERUSER PASSWORD 'Tls pw/1'", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", liveSource...)
	onlyTLS(t, src, "migrator")
	sourceURI := func(params string) string {
		return fmt.Sprintf("postgres://%s@localhost:%d/postgres?%s", url.UserPassword("migrator", "Tls pw/1"), src.Port, params)
	}
	good := sourceURI("sslmode=verify-full&sslrootcert=" + url.QueryEscape(ca))
	if conn, err := pgx.Connect(t.Context(), sourceURI("sslmode=disable")); err == nil {
		conn.Close(t.Context())
		t.Fatal("the source let migrator in without TLS: the test would prove nothing")
	}
	notCreated := func(what string) {
		t.Helper()
		if n := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM pg_database WHERE datname = 'shop'"); n != "0" {
			t.Errorf("%s: database shop exists on the target", what)
		}
	}

	t.Run("wrong CA in source.uri", func(t *testing.T) {
		cfg := writeConfig(t, sourceURI("sslmode=verify-full&sslrootcert="+url.QueryEscape(wrong)), dst.URI("postgres"), "method: replication\ndatabases: {include: [shop]}\n")
		r := runBin(t, nil, "plan", "-c", cfg)
		if r.code == 0 || !strings.Contains(r.stderr, "certificate") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("plan with the wrong CA: exit %d, want a short error about the certificate\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		notCreated("wrong CA in source.uri")
	})
	t.Run("wrong CA in uri_from_target", func(t *testing.T) {
		fromTarget := sourceURI("sslmode=verify-full&sslrootcert=" + url.QueryEscape(wrong))
		cfg := writeConfig(t, good, dst.URI("postgres"), "")
		writeTo(t, cfg, fmt.Sprintf("version: 1\nsource: {uri: %q, uri_from_target: %q}\ntarget: {uri: %q}\nmethod: replication\ndatabases: {include: [shop]}\n", good, fromTarget, dst.URI("postgres")))
		r := runBin(t, nil, "plan", "-c", cfg)
		if r.code == 0 || !strings.Contains(r.stdout, "subscription-connection-refused") || !strings.Contains(r.stdout, filepath.Base(wrong)) {
			t.Errorf("plan with the wrong CA for the subscription: exit %d, want subscription-connection-refused naming %s\n%s\n%s", r.code, wrong, r.stdout, r.stderr)
		}
		if r := runBin(t, nil, "apply", "-c", cfg); r.code == 0 {
			t.Errorf("apply went ahead with a subscription that cannot connect:\n%s", r.stdout)
		}
		notCreated("wrong CA in uri_from_target")
	})
	t.Run("CA only in PGSSLROOTCERT", func(t *testing.T) {
		cfg := writeConfig(t, sourceURI("sslmode=verify-full"), dst.URI("postgres"), "method: replication\ndatabases: {include: [shop]}\n")
		r := runBin(t, []string{"PGSSLROOTCERT=" + ca}, "plan", "-c", cfg)
		if r.code == 0 || !strings.Contains(r.stdout, "subscription-connection-refused") || !strings.Contains(r.stdout, "PGSSLROOTCERT") {
			t.Errorf("plan with the CA in PGSSLROOTCERT only: exit %d, want subscription-connection-refused naming PGSSLROOTCERT\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		notCreated("CA only in PGSSLROOTCERT")
	})
	t.Run("right CA", func(t *testing.T) {
		cfg := writeConfig(t, good, dst.URI("postgres"), "method: replication\ndatabases: {include: [shop]}\nreplication: {max_lag_bytes: 0, stop: true}\n")
		if r := runBin(t, nil, "plan", "-c", cfg); r.code != 0 {
			t.Fatalf("plan over verify-full: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if r := runBin(t, []string{"PGHAUL_LAG_POLL=100ms"}, "apply", "-c", cfg); r.code != 0 {
			t.Fatalf("apply over verify-full: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		assertReplicated(t, src, dst, cfg)
	})
}

// onlyTLS makes c refuse role over TCP without TLS.
func onlyTLS(t *testing.T, c *cluster.Cluster, role string) {
	t.Helper()
	hba := filepath.Join(c.DataDir(), "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFile(hba, fmt.Sprintf("hostnossl all %s all reject\n%s", role, old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
}
