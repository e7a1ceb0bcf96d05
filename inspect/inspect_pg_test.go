package inspect_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgtest"
	"github.com/pghaul/pghaul/plan"
)

var updateFixtures = flag.Bool("update", false, "rewrite plan/testdata/snapshots from real clusters")

// sourceSQL builds the source of the rich scenario, shared with plan's
// golden tests through the fixtures this test can rewrite.
var sourceSQL = map[string][]string{
	"postgres": {
		"CREATE ROLE reporting NOLOGIN",
		"CREATE ROLE app LOGIN CREATEDB PASSWORD 'app-secret' CONNECTION LIMIT 20",
		"GRANT reporting TO app WITH ADMIN OPTION",
		"ALTER ROLE app SET search_path = sales, public",
		"CREATE DATABASE shop OWNER app",
		"CREATE DATABASE crm",
		"CREATE DATABASE legacy",
		"ALTER DATABASE legacy ALLOW_CONNECTIONS false",
		"ALTER ROLE app IN DATABASE shop SET work_mem = '8MB'",
	},
	"shop": {
		"CREATE EXTENSION pg_trgm",
		"CREATE SCHEMA sales AUTHORIZATION app",
		"CREATE TYPE sales.status AS ENUM ('new', 'paid')",
		"CREATE TABLE sales.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status sales.status, total numeric, doc jsonb)",
		"CREATE TABLE sales.items (id bigint PRIMARY KEY, order_id bigint REFERENCES sales.orders (id), sku text)",
		"CREATE TABLE events (at timestamptz, payload text)",
		"CREATE TABLE geo (id int, pos point)",
		"ALTER TABLE geo REPLICA IDENTITY FULL",
		"CREATE TABLE metrics (id int, day date, v float8, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)",
		"CREATE TABLE metrics_2025 PARTITION OF metrics FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"CREATE TABLE metrics_2026 PARTITION OF metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
		"CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text)",
		"CREATE SEQUENCE invoice_no",
		"CREATE VIEW sales.open_orders AS SELECT * FROM sales.orders WHERE status = 'new'",
		"CREATE MATERIALIZED VIEW daily AS SELECT day, sum(v) FROM metrics GROUP BY day",
		"INSERT INTO sales.orders (status, total) SELECT 'new', g FROM generate_series(1, 2000) g",
		"INSERT INTO sales.items SELECT g, g, 'sku' || g FROM generate_series(1, 2000) g",
		"INSERT INTO metrics SELECT g, date '2025-06-01' + g % 300, g FROM generate_series(1, 3000) g",
		"SELECT lo_from_bytea(0, 'hello')",
		"ANALYZE",
	},
	"crm": {
		"CREATE TABLE contacts (id int PRIMARY KEY, email text)",
		"INSERT INTO contacts VALUES (1, 'a@example.com')",
	},
}

var targetSQL = map[string][]string{
	"postgres": {"CREATE ROLE reporting NOLOGIN", "CREATE DATABASE crm"},
	"crm":      {"CREATE TABLE contacts (id int PRIMARY KEY, email text)", "INSERT INTO contacts VALUES (7, 'z@example.com')"},
}

func load(t *testing.T, c *cluster.Cluster, script map[string][]string) {
	t.Helper()
	for _, db := range []string{"postgres", "shop", "crm"} {
		if stmts, ok := script[db]; ok {
			pgtest.Exec(t, c, db, stmts...)
		}
	}
}

func inspectCluster(t *testing.T, c *cluster.Cluster, rows bool, queries *atomic.Int64) plan.Snapshot {
	t.Helper()
	ep, err := pg.NewEndpoint("source", c.URI("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := inspect.Cluster(context.Background(), ep, inspect.Options{TableRows: rows, Queries: queries})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInspectRichCluster(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	load(t, src, sourceSQL)
	load(t, dst, targetSQL)
	var q atomic.Int64
	s := inspectCluster(t, src, false, &q)
	d := inspectCluster(t, dst, true, nil)

	shop := s.Database("shop")
	if shop == nil || !shop.Inspected || shop.Owner != "app" {
		t.Fatalf("shop = %+v, want an inspected database owned by app", shop)
	}
	if legacy := s.Database("legacy"); legacy == nil || legacy.AllowConn || legacy.Inspected {
		t.Errorf("legacy = %+v, want allow_conn false and not inspected", legacy)
	}
	app := s.Role("app")
	if app == nil || !app.Login || !app.CreateDB || app.ConnLimit != 20 || !slices.Equal(app.Config, []string{"search_path=sales, public"}) ||
		len(app.MemberOf) != 1 || app.MemberOf[0] != (plan.Membership{Role: "reporting", Admin: true}) ||
		len(app.DatabaseConfig) != 1 || app.DatabaseConfig[0].Database != "shop" {
		t.Errorf("role app = %+v", app)
	}
	tables := map[string]plan.Table{}
	for _, tb := range shop.Tables {
		tables[tb.Ref().String()] = tb
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"orders has a primary key", tables["sales.orders"].HasPrimaryKey},
		{"orders has rows estimated", tables["sales.orders"].EstRows == 2000},
		{"orders has bytes", tables["sales.orders"].Bytes > 0},
		{"items references orders", len(tables["sales.items"].ForeignKeys) == 1 && tables["sales.items"].ForeignKeys[0].RefTable == "orders"},
		{"events has no key", !tables["public.events"].HasPrimaryKey && tables["public.events"].ReplicaIdentity == "d"},
		{"geo is FULL with a point lacking equality", tables["public.geo"].ReplicaIdentity == "f" && !tables["public.geo"].Columns[1].Equality},
		{"orders.id has equality", tables["sales.orders"].Columns[0].Equality},
		{"orders.status (enum) has equality", tables["sales.orders"].Columns[1].Equality},
		{"metrics is partitioned", tables["public.metrics"].Kind == plan.KindPartitioned},
		{"metrics_2025 is its partition", tables["public.metrics_2025"].ParentName == "metrics"},
		{"cache is unlogged", tables["public.cache"].Persistence == "u"},
		{"one large object", shop.LargeObjects == 1},
		{"sequence listed", slices.ContainsFunc(shop.Sequences, func(x plan.Sequence) bool { return x.Name == "invoice_no" })},
		{"matview depends on metrics", slices.ContainsFunc(shop.Views, func(v plan.View) bool {
			return v.Name == "daily" && v.Materialized && len(v.DependsOn) == 1 && v.DependsOn[0].Name == "metrics"
		})},
		{"enum type listed", slices.Contains(shop.Types, plan.Object{Schema: "sales", Name: "status", Kind: "e"})},
		{"pg_trgm installed", slices.ContainsFunc(shop.Extensions, func(e plan.Extension) bool { return e.Name == "pg_trgm" })},
		{"schema sales owned by app", slices.Contains(shop.Schemas, plan.Schema{Name: "sales", Owner: "app"})},
		{"source has no row check", tables["sales.orders"].HasRows == nil},
		{"target contacts holds rows", hasRows(d, "crm", "contacts")},
		{"superuser reads passwords", s.PasswordsReadable},
		{"wal_level read", s.Settings["wal_level"] == "logical"},
		{"system identifiers differ", s.Server.SystemID != "" && s.Server.SystemID != d.Server.SystemID},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not so", c.what)
		}
	}
	// The cluster queries plus one batch per connectable database: a fixed
	// number, whatever the tables.
	if n := q.Load(); n > 12+12*4 {
		t.Errorf("sent %d queries, want at most %d", n, 12+12*4)
	}
	if shop.SizeBytes <= 0 {
		t.Errorf("shop has size %d, want its size", shop.SizeBytes)
	}
	// Only the selected databases are sized.
	ep, err := pg.NewEndpoint("source", src.URI("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	only, err := inspect.Cluster(context.Background(), ep, inspect.Options{Select: func(name string) bool { return name == "shop" }})
	if err != nil {
		t.Fatal(err)
	}
	if got, other := only.Database("shop").SizeBytes, only.Database("postgres").SizeBytes; got <= 0 || other != 0 {
		t.Errorf("selecting shop: sizes shop %d (want its size), postgres %d (want 0)", got, other)
	}
	if *updateFixtures {
		writeFixture(t, "rich-source.json", s)
		writeFixture(t, "rich-target.json", d)
	}
}

func hasRows(s plan.Snapshot, db, table string) bool {
	d := s.Database(db)
	if d == nil {
		return false
	}
	for _, t := range d.Tables {
		if t.Name == table && t.HasRows != nil {
			return *t.HasRows
		}
	}
	return false
}

func writeFixture(t *testing.T, name string, s plan.Snapshot) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "plan", "testdata", "snapshots", name), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
