package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgtest"
)

// BenchmarkPlanScale plans a source of 10 databases x 1,000 tables (each
// with a primary key, an index and a foreign key) against an empty target.
// It reports the wall time of `pghaul plan` and the statements inspection
// sends. Run: go test -run '^$' -bench PlanScale -benchtime 3x ./cmd/pghaul
func BenchmarkPlanScale(b *testing.B) {
	const databases, tables = 10, 1000
	src, dst := pgtest.Pair(b)
	for i := range databases {
		db := fmt.Sprintf("db%02d", i)
		pgtest.Exec(b, src, "postgres", "CREATE DATABASE "+db)
		pgtest.Exec(b, src, db, scaleSchema(tables))
	}
	cfg := writeConfigTB(b, src.URI("postgres"), dst.URI("postgres"), "")

	var queries atomic.Int64
	for _, c := range []string{src.URI("postgres"), dst.URI("postgres")} {
		ep, err := pg.NewEndpoint("source", c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inspect.Cluster(context.Background(), ep, inspect.Options{TableRows: c == dst.URI("postgres"), Queries: &queries}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		r := runCLIB(b, "plan", "-c", cfg, "--format", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"tables": 10000`) {
			b.Fatalf("plan: exit %d, stderr %q", r.code, r.stderr)
		}
	}
	b.ReportMetric(float64(queries.Load()), "queries")
}

// scaleSchema creates n tables, each with a primary key, an index and a
// foreign key to the previous one, in one server-side loop.
func scaleSchema(n int) string {
	return fmt.Sprintf(`DO $$
BEGIN
  FOR i IN 1..%d LOOP
    EXECUTE format('CREATE TABLE t%%s (id int PRIMARY KEY, parent int %%s, v text)', i,
      CASE WHEN i > 1 THEN format('REFERENCES t%%s', i - 1) ELSE '' END);
    EXECUTE format('CREATE INDEX ON t%%s (v)', i);
  END LOOP;
END $$`, n)
}
