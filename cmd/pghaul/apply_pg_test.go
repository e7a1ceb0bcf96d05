package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgbin"
	"github.com/pghaul/pghaul/internal/pgtest"
	"github.com/pghaul/pghaul/plan"
)

// richSource holds everything the dump method must carry, by database.
var richSource = []struct {
	db    string
	stmts []string
}{
	{"postgres", []string{
		"CREATE ROLE app LOGIN PASSWORD 'app-pw' CONNECTION LIMIT 5 VALID UNTIL '2030-01-01 00:00:00+00'",
		`CREATE ROLE "Mixed Role" NOLOGIN`,
		"CREATE ROLE reader NOLOGIN",
		"GRANT reader TO app WITH ADMIN OPTION",
		`GRANT "Mixed Role" TO reader`,
		"ALTER ROLE app SET search_path = sales, public",
		"ALTER ROLE app SET work_mem = '8MB'",
		"CREATE DATABASE shop OWNER app",
		`CREATE DATABASE "Odd DB"`,
		"CREATE DATABASE skipme",
		"ALTER DATABASE shop SET lc_monetary = 'de_DE.UTF-8'",
		"ALTER ROLE app IN DATABASE shop SET statement_timeout = '5min'",
		"GRANT CONNECT ON DATABASE shop TO reader",
		"REVOKE CONNECT ON DATABASE shop FROM PUBLIC",
		"COMMENT ON DATABASE shop IS 'the shop'",
	}},
	{"shop", []string{
		"CREATE EXTENSION pg_trgm",
		"CREATE SCHEMA sales AUTHORIZATION app",
		`CREATE SCHEMA "Mixed Schema"`,
		"CREATE TYPE sales.status AS ENUM ('new', 'paid', 'shipped')",
		"CREATE DOMAIN sales.positive AS numeric CHECK (VALUE > 0)",
		"CREATE TYPE sales.addr AS (street text, zip text)",
		`CREATE TABLE sales.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status sales.status, total sales.positive,
			price money, doc jsonb, blob bytea, addrs sales.addr[], tags text[], statuses sales.status[], double_total numeric GENERATED ALWAYS AS (total * 2) STORED,
			created timestamptz, ratio float8, span interval)`,
		"ALTER TABLE sales.orders OWNER TO app",
		`INSERT INTO sales.orders (status, total, price, doc, blob, addrs, tags, statuses, created, ratio, span)
			SELECT (ARRAY['new','paid','shipped'])[1 + g % 3]::sales.status, g + 0.5, (g * 1.25)::numeric::money, jsonb_build_object('n', g, 's', repeat('x', g % 50)),
			decode(md5(g::text), 'hex'), ARRAY[ROW('Main St ' || g, '1000' || g)::sales.addr], ARRAY['a', 'b' || g], ARRAY['paid']::sales.status[],
			timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', g / 3.0, g * interval '1 second'
			FROM generate_series(1, 5000) g`,
		// Every type copied in binary (a domain by its base type), with the
		// values at their edges.
		"CREATE DOMAIN sales.qty AS int4 CHECK (VALUE >= 0)",
		`CREATE TABLE sales.kinds (i2 int2, i4 sales.qty, i8 int8, o oid, f4 float4, f8 float8, n numeric, b bool, c "char", bp char(5), vc varchar(10),
			tx text, nm name, ba bytea, u uuid, d date, t time, ttz timetz, ts timestamp, tstz timestamptz, iv interval, ip inet, cid cidr,
			mac macaddr, mac8 macaddr8, bt bit(4), vb varbit)`,
		`INSERT INTO sales.kinds VALUES (-32768, 0, -9223372036854775808, 4294967295, 'NaN', '-Infinity', 'NaN', true, 'x', 'ab', 'ünï €',
			E'tab\there\nnew line \\ back', 'name', '\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'infinity', '24:00', '23:59:59.999999+14',
			'-infinity', '2026-03-29 02:30:00+02', '-178000000 years 3 mons -2 days 01:02:03.000004', '::1', '10.0.0.0/8',
			'08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'1010', B''), (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
			NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
		`INSERT INTO sales.kinds SELECT g, g, g * 1000003, g, g / 7.0, -g / 3.0, g / 7.0, g % 2 = 0, chr(65 + g % 26), 'c' || g % 100, 'v' || g, repeat('t', g % 300),
			'n' || g, decode(md5(g::text), 'hex'), md5(g::text)::uuid, date '2000-01-01' + g, time '00:00' + g * interval '1 second',
			timetz '00:00+03' + g * interval '1 minute', timestamp '1999-12-31 23:00' + g * interval '1 hour', timestamptz '2026-01-01 00:00+00' + g * interval '77 seconds',
			g * interval '1 day 1 microsecond', ('192.168.' || g % 256 || '.' || g / 256)::inet, ('10.' || g % 256 || '.0.0/16')::cidr,
			'08:00:2b:00:00:00'::macaddr, '08:00:2b:ff:fe:00:00:00'::macaddr8, (g % 16)::bit(4), g::bit(12)::varbit FROM generate_series(1, 1000) g`,
		`CREATE TABLE "Mixed Schema"."Odd Table" ("Col" int, "quote""d" text)`,
		`INSERT INTO "Mixed Schema"."Odd Table" SELECT g, 'it''s "' || g FROM generate_series(1, 300) g`,
		"CREATE TABLE sales.items (id int PRIMARY KEY, order_id bigint REFERENCES sales.orders (id), sku text)",
		"INSERT INTO sales.items SELECT g, g, 'sku-' || g FROM generate_series(1, 5000) g",
		"CREATE INDEX items_sku ON sales.items (sku)",
		// Indexes the copy builds early, and ones whose archive entry holds
		// more than the definition (CLUSTER ON, REPLICA IDENTITY, statistics)
		// that post-data must build.
		"COMMENT ON INDEX sales.items_sku IS 'by sku'",
		"ALTER TABLE sales.items CLUSTER ON items_sku",
		"ALTER TABLE sales.items ADD CONSTRAINT items_sku_unique UNIQUE (sku) DEFERRABLE INITIALLY DEFERRED",
		"CREATE INDEX items_sku_trgm ON sales.items USING gin (sku gin_trgm_ops)",
		"CREATE INDEX orders_paid_doc ON sales.orders ((doc->>'s')) WHERE status = 'paid'",
		"CREATE INDEX orders_created ON sales.orders (created) INCLUDE (total) WITH (fillfactor = 70)",
		"CREATE INDEX orders_double ON sales.orders ((total * 2))",
		"ALTER INDEX sales.orders_double ALTER COLUMN 1 SET STATISTICS 500",
		"CREATE TABLE sales.bookings (id int, during tsrange, EXCLUDE USING gist (during WITH &&))",
		"INSERT INTO sales.bookings SELECT g, tsrange(timestamp '2026-01-01' + g * interval '1 hour', timestamp '2026-01-01' + (g + 1) * interval '1 hour') FROM generate_series(1, 500) g",
		`ALTER TABLE "Mixed Schema"."Odd Table" ALTER COLUMN "Col" SET NOT NULL`,
		`CREATE UNIQUE INDEX "Odd Index" ON "Mixed Schema"."Odd Table" ("Col")`,
		`ALTER TABLE "Mixed Schema"."Odd Table" REPLICA IDENTITY USING INDEX "Odd Index"`,
		"CREATE TABLE metrics (id int, day date, v float8, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)",
		"CREATE TABLE metrics_2025 PARTITION OF metrics FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"CREATE TABLE metrics_2026 PARTITION OF metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
		"INSERT INTO metrics SELECT g, date '2025-06-01' + g % 400, g * 0.1 FROM generate_series(1, 4000) g",
		"CREATE TABLE parent (id int, v text)",
		"CREATE TABLE child (extra int) INHERITS (parent)",
		"INSERT INTO parent VALUES (1, 'parent row')",
		"INSERT INTO child VALUES (2, 'child row', 42)",
		"CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text)",
		"INSERT INTO cache SELECT 'k' || g, 'v' || g FROM generate_series(1, 100) g",
		"CREATE SEQUENCE sales.invoice_no START 1000 INCREMENT 7 MINVALUE 10 MAXVALUE 100000 CYCLE CACHE 5",
		"SELECT nextval('sales.invoice_no') FROM generate_series(1, 3)",
		"CREATE SEQUENCE never_used",
		"CREATE MATERIALIZED VIEW sales.daily AS SELECT day, sum(v) AS v FROM metrics GROUP BY day",
		`CREATE FUNCTION sales.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.created := coalesce(NEW.created, now()); RETURN NEW; END $$`,
		"CREATE TRIGGER orders_stamp BEFORE INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION sales.stamp()",
		"CREATE TABLE sales.audit (id int, note text)",
		"INSERT INTO sales.audit VALUES (1, 'skipped rows')",
		"GRANT USAGE ON SCHEMA sales TO reader",
		"GRANT SELECT ON sales.orders TO reader",
		"SELECT lo_from_bytea(0, 'large object one')",
		"SELECT lo_from_bytea(0, decode(repeat('ab', 1500000), 'hex'))",
		// Large objects in several batches: an empty one, one of exactly
		// the first read's size, 600 small ones, an owner, privileges and
		// a comment.
		"SELECT lo_from_bytea(0, '')",
		"SELECT lo_from_bytea(0, decode(repeat('cd', 65536), 'hex'))",
		"SELECT lo_from_bytea(0, convert_to('small object ' || g, 'UTF8')) FROM generate_series(1, 600) g",
		`DO $$ BEGIN
			EXECUTE format('ALTER LARGE OBJECT %s OWNER TO app', (SELECT max(oid) FROM pg_largeobject_metadata));
			EXECUTE format('GRANT SELECT, UPDATE ON LARGE OBJECT %s TO reader', (SELECT min(oid) FROM pg_largeobject_metadata));
			EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT min(oid) FROM pg_largeobject_metadata), 'the first object');
		END $$`,
		"ANALYZE",
	}},
	{"Odd DB", []string{"CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t SELECT g, 'v' FROM generate_series(1, 50) g"}},
	{"skipme", []string{"CREATE TABLE t (id int)"}},
}

const richConfig = "method: dump\ndatabases: {exclude: [skipme]}\ntables: {skip: [sales.audit]}\n"

func loadRich(t *testing.T, src *cluster.Cluster) {
	t.Helper()
	if out, _ := exec.Command("locale", "-a").Output(); !regexp.MustCompile(`(?mi)^de_DE\.utf-?8$`).Match(out) {
		t.Fatal("locale de_DE.UTF-8 is missing: run `echo 'de_DE.UTF-8 UTF-8' >> /etc/locale.gen && locale-gen` (.ci/run does)")
	}
	for _, s := range richSource {
		pgtest.Exec(t, src, s.db, s.stmts...)
	}
}

// tableDigests maps every table of db holding rows to an ordered md5 of
// its rows (and its row count).
func tableDigests(t *testing.T, c *cluster.Cluster, db string) map[string]string {
	t.Helper()
	conn := pgtest.Connect(t, c, db)
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		tables = append(tables, s)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var digest string
		q := fmt.Sprintf("SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '') FROM ONLY %s r", tb)
		if err := conn.QueryRow(ctx, q).Scan(&digest); err != nil {
			t.Fatalf("digest %s: %v", tb, err)
		}
		out[tb] = digest
	}
	return out
}

func sequences(t *testing.T, c *cluster.Cluster, db string) string {
	return pgtest.QueryString(t, c, db, `SELECT coalesce(string_agg(format('%s.%s=%s/%s', schemaname, sequencename, last_value, increment_by), ', ' ORDER BY schemaname, sequencename), '') FROM pg_sequences`)
}

func largeObjects(t *testing.T, c *cluster.Cluster, db string) string {
	return pgtest.QueryString(t, c, db, `SELECT coalesce(string_agg(format('%s:%s:%s:%s', oid, pg_get_userbyid(lomowner), lomacl, md5(lo_get(oid))), ', ' ORDER BY oid), '') FROM pg_largeobject_metadata`)
}

// roleFacts lists the migrated roles' attributes, settings and memberships.
func roleFacts(t *testing.T, c *cluster.Cluster) string {
	return pgtest.QueryString(t, c, "postgres", `SELECT string_agg(format('%s super=%s login=%s createdb=%s conn=%s until=%s config=%s member_of=%s',
		r.rolname, r.rolsuper, r.rolcanlogin, r.rolcreatedb, r.rolconnlimit, r.rolvaliduntil, r.rolconfig,
		(SELECT string_agg(g.rolname || CASE WHEN m.admin_option THEN '(admin)' ELSE '' END, ',' ORDER BY g.rolname)
			FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)), E'\n' ORDER BY r.rolname)
		FROM pg_roles r WHERE r.rolname IN ('app', 'Mixed Role', 'reader')`)
}

func databaseFacts(t *testing.T, c *cluster.Cluster, db string) string {
	return pgtest.QueryString(t, c, "postgres", `SELECT format('owner=%s enc=%s acl=%s comment=%s settings=%s role_settings=%s', pg_get_userbyid(d.datdba),
		pg_encoding_to_char(d.encoding), (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'),
		(SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0),
		(SELECT string_agg(pg_get_userbyid(setrole) || '=' || setconfig::text, ',') FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole <> 0))
		FROM pg_database d WHERE datname = $1`, db)
}

// schemaDumps dumps db's schema on both sides with one pg_dump, the newest
// installed (the npm server builds used for other versions carry none);
// ok is false, with the reason logged, when it is older than a server.
func schemaDumps(t *testing.T, src, dst *cluster.Cluster, db string) (string, string, bool) {
	t.Helper()
	tools := pgbin.Find(context.Background(), "pg_dump", pgbin.SearchDirs(context.Background()), nil)
	if len(tools) == 0 {
		t.Fatal("no pg_dump found: apt-get install -y postgresql-client")
	}
	if newest := tools[0].Major; newest < max(src.Major, dst.Major) {
		t.Logf("schema comparison skipped: pg_dump %d cannot dump PostgreSQL %d", newest, max(src.Major, dst.Major))
		return "", "", false
	}
	return schemaDump(t, tools[0].Path, src, db), schemaDump(t, tools[0].Path, dst, db), true
}

var (
	restrictLine = regexp.MustCompile(`(?m)^\\(un)?restrict .*$`)
	versionLine  = regexp.MustCompile(`(?m)^-- Dumped from database version .*$`)
)

// schemaDump is pg_dump --schema-only of db, with the random \restrict
// lines of pg_dump 15.14+ masked.
func schemaDump(t *testing.T, pgDump string, c *cluster.Cluster, db string) string {
	t.Helper()
	cmd := exec.Command(pgDump, "--schema-only", "--dbname="+c.URI(db))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump %s: %v\n%s", db, err, out)
	}
	// Mask what differs between equal schemas: the random \restrict keys
	// and, across versions, the server version.
	return versionLine.ReplaceAllString(restrictLine.ReplaceAllString(string(out), `\restrict`), "-- Dumped from database version")
}

// assertMigrated compares everything the dump method must carry.
func assertMigrated(t *testing.T, src, dst *cluster.Cluster) {
	t.Helper()
	for _, db := range []string{"shop", "Odd DB"} {
		want, got := tableDigests(t, src, db), tableDigests(t, dst, db)
		for table, w := range want {
			g := got[table]
			if table == "sales.audit" {
				w = "0:" // skipped: present on the target, and empty
			}
			if table == "public.cache" && g != w {
				t.Errorf("%s %s (unlogged) = %s, want %s", db, table, g, w)
			}
			if g != w {
				t.Errorf("%s %s = %s on the target, want %s", db, table, g, w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d tables on the target, %d on the source", db, len(got), len(want))
		}
		if s, d := sequences(t, src, db), sequences(t, dst, db); s != d {
			t.Errorf("%s sequences = %s, want %s", db, d, s)
		}
		if s, d, ok := schemaDumps(t, src, dst, db); ok && s != d {
			t.Errorf("%s: pg_dump --schema-only differs between source and target:\n%s", db, firstDiff(s, d))
		}
		if s, d := databaseFacts(t, src, db), databaseFacts(t, dst, db); s != d {
			t.Errorf("database %s = %s, want %s", db, d, s)
		}
	}
	if s, d := largeObjects(t, src, "shop"), largeObjects(t, dst, "shop"); s != d {
		t.Errorf("large objects = %s, want %s", d, s)
	}
	if s, d := roleFacts(t, src), roleFacts(t, dst); s != d {
		t.Errorf("roles =\n%s\nwant\n%s", d, s)
	}
	if n := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM pg_database WHERE datname = 'skipme'"); n != "0" {
		t.Error("the excluded database skipme exists on the target")
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}

// TestApplyDumpEndToEnd migrates the rich source with the built binary
// and compares both sides; a second apply is a no-op.
func TestApplyDumpEndToEnd(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	loadRich(t, src)
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), richConfig)
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"| app ", "created", "| shop ", "done"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("result does not show %q:\n%s", want, r.stdout)
		}
	}
	assertMigrated(t, src, dst)
	// Built while other tables copied: the primary key, the partial and the
	// INCLUDE index of orders (not the one with a statistics target), the
	// exclusion constraint of bookings, the primary key, unique constraint
	// and trigram index of items (not the index marked for CLUSTER).
	for _, want := range []string{`msg="indexes built" database=shop table=sales.orders indexes=3`, `msg="indexes built" database=shop table=sales.bookings indexes=1`, `msg="indexes built" database=shop table=sales.items indexes=3`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log does not show %s:\n%s", want, r.stderr)
		}
	}
	// Binary COPY for tables of built-in types only (assertMigrated compared
	// the rows); text for jsonb, arrays, money and user types.
	for _, want := range []string{`table=sales.kinds rows=1002 .* format=binary`, `table="Mixed Schema\.Odd Table" .* format=binary`, `table=sales.orders .* format=text`, `table=sales.bookings .* format=text`} {
		if !regexp.MustCompile(want).MatchString(r.stderr) {
			t.Errorf("log does not match %s:\n%s", want, r.stderr)
		}
	}
	again := runBin(t, nil, "apply", "-c", cfg)
	if again.code != 0 || !strings.Contains(again.stdout, "nothing to do: the migration is complete") {
		t.Errorf("second apply: exit %d\n%s\n%s", again.code, again.stdout, again.stderr)
	}
	v := runBin(t, nil, "verify", "-c", cfg)
	if v.code != 0 || !strings.Contains(v.stdout, "11 of 11 tables equal") {
		t.Errorf("verify: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	pgtest.Exec(t, dst, "shop", "UPDATE sales.items SET sku = 'changed' WHERE id = 7")
	v = runBin(t, nil, "verify", "-c", cfg)
	if v.code != 1 || !strings.Contains(v.stdout, "DIFFERENT") || !strings.Contains(v.stderr, "pghaul: 1 of 11 tables differ") {
		t.Errorf("verify after a change on the target: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	if v = runBin(t, nil, "verify", "-c", cfg, "--counts-only"); v.code != 0 {
		t.Errorf("verify --counts-only sees only counts, which are equal: exit %d\n%s", v.code, v.stdout)
	}
	// A state that lists no copied table does not make "0 of 0 tables
	// equal": the tables the filters select on the source are compared.
	state, _ := os.ReadFile(cfg + ".state/state.json")
	unlistTables(t, cfg+".state/state.json", "copy_data")
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 1 || !strings.Contains(v.stderr, "pghaul: 1 of 11 tables differ") {
		t.Errorf("verify with a state that lists no copied table: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	if err := os.WriteFile(cfg+".state/state.json", state, 0o600); err != nil {
		t.Fatal(err)
	}
	// Large objects are compared with their comments.
	pgtest.Exec(t, dst, "shop", "UPDATE sales.items SET sku = 'sku-7' WHERE id = 7",
		"DO $$ BEGIN EXECUTE format('COMMENT ON LARGE OBJECT %s IS NULL', (SELECT min(oid) FROM pg_largeobject_metadata)); END $$")
	v = runBin(t, nil, "verify", "-c", cfg, "--format", "json")
	if v.code != 1 || !strings.Contains(v.stdout, `"kind": "large objects"`) || !strings.Contains(v.stdout, `"different": 1`) {
		t.Errorf("verify with a large object's comment dropped on the target: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	// Sequences are compared too, and --format json says the same.
	pgtest.Exec(t, dst, "shop", "DO $$ BEGIN EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT min(oid) FROM pg_largeobject_metadata), 'the first object'); END $$",
		"SELECT setval(pg_get_serial_sequence('sales.orders', 'id'), 999999)")
	v = runBin(t, nil, "verify", "-c", cfg, "--format", "json")
	if v.code != 1 || !strings.Contains(v.stdout, `"kind": "sequences"`) || !strings.Contains(v.stdout, `"different": 1`) {
		t.Errorf("verify --format json: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	for _, s := range []string{"app-pw", "placeholder_"} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output holds a password (%q)", s)
		}
	}
}

// crashThenRerun runs apply with the crash point at, failing the test
// unless it was killed there, then runs it again (with flags) and fails
// the test unless that run succeeded; it returns the rerun.
func crashThenRerun(t *testing.T, cfg, at string, flags ...string) result {
	t.Helper()
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=" + at}, "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash at %s: exit %d\n%s", at, r.code, r.stderr)
	}
	r := runBin(t, nil, append([]string{"apply", "-c", cfg}, flags...)...)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// TestApplyResumesAfterCrashes kills apply at deterministic points and
// reruns it: the data ends equal, nothing doubled, and the run after
// completion is a no-op.
func TestApplyResumesAfterCrashes(t *testing.T) {
	t.Parallel()
	points := []string{
		"role:app",                // during roles: one created, the rest not
		"after:restore_pre_data",  // pre-data committed but not recorded
		"copy:shop/sales.orders",  // mid-table: the stream started, nothing committed
		"table:shop/sales.items",  // a table committed but not recorded
		"lo:shop",                 // a first batch of large objects copied
		"after:restore_post_data", // indexes and constraints there, not recorded
	}
	// With --resume-tables, the rerun keeps the tables the state records as
	// finished; the one committed but not recorded is copied again, once.
	const resumeTables = "table:shop/sales.items --resume-tables"
	for _, point := range append(points, resumeTables) {
		t.Run(point, func(t *testing.T) {
			src, dst := pgtest.Pair(t)
			loadRich(t, src)
			cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), richConfig+"parallel: {tables: 2, databases: 1}\n")
			at, flag, _ := strings.Cut(point, " ")
			var flags []string
			if flag != "" {
				flags = append(flags, flag)
			}
			r := crashThenRerun(t, cfg, at, flags...)
			if !strings.Contains(r.stderr, "resuming:") {
				t.Fatalf("rerun does not say it resumes:\n%s\n%s", r.stdout, r.stderr)
			}
			if flag != "" && !strings.Contains(r.stderr, "finished tables") {
				t.Errorf("rerun with %s does not say it keeps finished tables:\n%s", flag, r.stderr)
			}
			assertMigrated(t, src, dst)
			if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM parent"); got != "2" {
				t.Errorf("parent counts %s rows with its inheritance child, want 2", got)
			}
			again := runBin(t, nil, "apply", "-c", cfg)
			if again.code != 0 || !strings.Contains(again.stdout, "nothing to do") {
				t.Errorf("apply after completion: exit %d\n%s", again.code, again.stdout)
			}
		})
	}
}

// TestApplyInterruptAndLock pauses an apply mid-copy: a second apply is
// refused naming the holder; SIGINT makes the first exit 130 saying to
// rerun; a SIGKILLed holder does not block the next run.
func TestApplyInterruptAndLock(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	loadRich(t, src)
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), richConfig)
	first, out := startBin(t, "copy:shop/sales.orders", "apply", "-c", cfg)
	second := runBin(t, nil, "apply", "-c", cfg)
	if second.code != 1 || !strings.Contains(second.stderr, "another pghaul apply of this migration is running") ||
		!strings.Contains(second.stderr, fmt.Sprintf("pid %d", first.Process.Pid)) || len(lines(second.stderr)) != 1 {
		t.Errorf("second apply: exit %d, stderr %q", second.code, second.stderr)
	}
	first.Process.Signal(os.Interrupt)
	if code := exitCode(first); code != 130 || !strings.Contains(out.String(), "rerun apply to resume") {
		t.Fatalf("interrupted apply: exit %d\n%s", code, out.String())
	}
	// plan shows the migration's progress, not its own tables as findings.
	p := runBin(t, nil, "plan", "-c", cfg)
	if p.code != 0 || !strings.Contains(p.stdout, "STATUS") || !strings.Contains(p.stdout, "| done") || !strings.Contains(p.stdout, "| pending") ||
		strings.Contains(p.stdout, "target-schema-not-empty") || !strings.Contains(p.stderr, "migration under way") {
		t.Errorf("plan during the migration: exit %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}

	killed, _ := startBin(t, "copy:shop/sales.orders", "apply", "-c", cfg)
	killed.Process.Kill()
	exitCode(killed)
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply after a SIGKILLed one: exit %d\n%s", r.code, r.stderr)
	}
	assertMigrated(t, src, dst)
}

// TestApplyBadInput: each bad input is one line and a non-zero exit, and
// leaves nothing a rerun cannot finish.
func TestApplyBadInput(t *testing.T) {
	t.Parallel()
	const pw = "Corr3ct-horse"
	src, dst := pgtest.Pair(t, pgtest.WithPassword(pw))
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE weak LOGIN PASSWORD 'weak-pw'")
	good := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\n")

	tests := []struct {
		name   string
		config string
		code   int
		want   string
	}{
		{"unreachable target", writeConfig(t, src.URI("postgres"), strings.Replace(dst.URI("postgres"), fmt.Sprint(dst.Port), "1", 1), "method: dump\n"),
			1, "pghaul: connect to target postgres://postgres:***@127.0.0.1:1/postgres"},
		{"wrong password", writeConfig(t, src.URI("postgres"), dst.URIAs("postgres", "Wr0ng-pw", "postgres"), "method: dump\n"),
			1, "password authentication failed"},
		{"pg_dump missing", writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\npg_bin: /nonexistent\n"),
			2, "blocker"},
		{"no CREATEDB", writeConfig(t, src.URI("postgres"), dst.URIAs("weak", "weak-pw", "postgres"), "method: dump\ndatabases: {include: [shop]}\n"),
			2, "blocker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBin(t, nil, "apply", "-c", tt.config)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
			if strings.Contains(r.stdout+r.stderr, pw) || strings.Contains(r.stdout+r.stderr, "Wr0ng") {
				t.Error("output holds a password")
			}
			last := lines(r.stderr)
			if !strings.HasPrefix(last[len(last)-1], "pghaul: ") {
				t.Errorf("last stderr line %q is not a pghaul error", last[len(last)-1])
			}
		})
	}
	if r := runBin(t, nil, "plan", "-c", writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\npg_bin: /nonexistent\n"), "--format", "json"); !strings.Contains(r.stdout, `"pg-dump-missing"`) {
		t.Errorf("plan with pg_bin /nonexistent does not report pg-dump-missing: %s", r.stderr)
	}
	if r := runBin(t, nil, "apply", "-c", good); r.code != 0 {
		t.Fatalf("apply after the bad runs: exit %d\n%s", r.code, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM t"); got != "1" {
		t.Errorf("target rows = %s, want 1", got)
	}
	if !slices.Contains(lines(pgtest.QueryString(t, dst, "postgres", "SELECT string_agg(rolname, E'\\n') FROM pg_roles")), "weak") {
		t.Error("the target's own role is gone")
	}
}

// TestApplyPasswordFromEnvironment: a password pghaul's sessions take from
// PGPASSWORD or a passfile, not from the URIs, reaches pg_dump, pg_restore
// and the target's subscription too.
func TestApplyPasswordFromEnvironment(t *testing.T) {
	t.Parallel()
	const pw = "Env-pass 7"
	src, dst := pgtest.Pair(t, pgtest.WithPassword(pw))
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	passfile := filepath.Join(t.TempDir(), "pgpass")
	entries := fmt.Sprintf("127.0.0.1:%d:*:postgres:%s\n127.0.0.1:%d:*:postgres:%s\n", src.Port, pw, dst.Port, pw)
	if err := os.WriteFile(passfile, []byte(entries), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, extra string
		env         []string
	}{
		{"PGPASSWORD, dump", "method: dump\n", []string{"PGPASSWORD=" + pw}},
		{"passfile, replication", "method: replication\nreplication: {max_lag_bytes: 0, stop: true}\n", []string{"PGPASSFILE=" + passfile}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pgtest.Exec(t, dst, "postgres", "DROP DATABASE IF EXISTS shop WITH (FORCE)")
			cfg := writeConfig(t, src.URIAs("postgres", "", "postgres"), dst.URIAs("postgres", "", "postgres"), tt.extra+"databases: {include: [shop]}\n")
			if r := runBin(t, nil, "plan", "-c", cfg); r.code != 1 || !strings.Contains(r.stderr, "password") {
				t.Fatalf("plan with no password anywhere: exit %d, stderr %q; want a connection error", r.code, r.stderr)
			}
			r := runBin(t, tt.env, "apply", "-c", cfg)
			if r.code != 0 {
				t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Error("output holds the password")
			}
			if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM t"); got != "1000" {
				t.Errorf("target rows = %s, want 1000", got)
			}
		})
	}
}

// TestApplyEarlierStateKey: a state whose key an earlier pghaul computed
// (source.uri_from_target still in it) is this migration's: apply takes it
// and stores the key it computes now.
func TestApplyEarlierStateKey(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)")
	path := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\n")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc = []byte(strings.Replace(string(doc), "}\ntarget:", fmt.Sprintf(", uri_from_target: %q}\ntarget:", src.URI("postgres")), 1))
	writeTo(t, path, string(doc))
	if r := runBin(t, nil, "apply", "-c", path); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	cfg, err := config.Parse(doc, path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const systemIDSQL = `SELECT system_identifier::text FROM pg_control_system()`
	srcID, dstID := pgtest.QueryString(t, src, "postgres", systemIDSQL), pgtest.QueryString(t, dst, "postgres", systemIDSQL)
	earlier, current := cfg.EarlierStateKey(srcID, dstID), cfg.StateKey(srcID, dstID)
	if earlier == current {
		t.Fatal("the earlier key is the current one: the test proves nothing")
	}
	statePath := path + ".state/state.json"
	b, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	writeTo(t, statePath, strings.Replace(string(b), current, earlier, 1))
	r := runBin(t, nil, "apply", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
		t.Fatalf("apply with an earlier pghaul's state key: exit %d, want 0 and nothing to do\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(statePath); !strings.Contains(string(b), current) {
		t.Error("the state still holds the earlier key")
	}
}

// TestApplyPlaceholderPasswords: placeholders are shown only with
// --show-passwords and kept 0600 in the state directory.
func TestApplyPlaceholderPasswords(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app LOGIN PASSWORD 'source-pw'", "CREATE ROLE grp NOLOGIN")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\nroles: {passwords: placeholder}\ndatabases: {exclude: [\"*\"]}\n")
	r := runBin(t, nil, "apply", "-c", cfg, "--show-passwords")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`placeholder_[A-Za-z]{16}`).FindString(r.stdout)
	if m == "" || strings.Count(r.stdout, "placeholder_") != 1 {
		t.Fatalf("--show-passwords shows %d placeholders, want app's only:\n%s", strings.Count(r.stdout, "placeholder_"), r.stdout)
	}
	info, err := os.Stat(cfg + ".state/passwords.json")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("passwords.json: %v, mode %v, want 0600", err, info.Mode().Perm())
	}
	if b, _ := os.ReadFile(cfg + ".state/passwords.json"); !strings.Contains(string(b), m) {
		t.Error("the placeholder is not kept in the state directory")
	}
	if dir, _ := os.Stat(cfg + ".state"); dir.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700", dir.Mode().Perm())
	}
	if got := pgtest.QueryString(t, dst, "postgres", "SELECT (rolpassword LIKE 'SCRAM-SHA-256$%')::text FROM pg_authid WHERE rolname = 'app'"); got != "true" {
		t.Errorf("app has no SCRAM password on the target")
	}
	if r := runBin(t, nil, "apply", "-c", cfg); strings.Contains(r.stdout, m) {
		t.Error("the placeholder shows without --show-passwords")
	}
}

// TestApplySavedPlanAndState: a saved plan goes stale when the source
// changes (exit 3 naming the change); another file asks for --reset-state;
// a role the target user cannot create is reported failed and the
// migration goes on.
func TestApplySavedPlanAndState(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop", "CREATE ROLE boss SUPERUSER NOLOGIN")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE mig LOGIN CREATEDB CREATEROLE")
	dstURI := dst.URIAs("mig", "", "postgres")
	cfg := writeConfig(t, src.URI("postgres"), dstURI, "method: dump\ndatabases: {include: [shop]}\n")
	saved := cfg + ".plan.json"
	if r := runBin(t, nil, "plan", "-c", cfg, "-o", saved); r.code != 0 {
		t.Fatalf("plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	pgtest.Exec(t, src, "shop", "CREATE TABLE added_later (id int)")
	r := runBin(t, nil, "apply", "-c", cfg, saved)
	if r.code != 3 || !strings.Contains(r.stderr, "the plan is stale") || !strings.Contains(r.stderr, "table shop.public.added_later added") {
		t.Fatalf("apply of a stale plan: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runBin(t, nil, "plan", "-c", cfg, "-o", saved); r.code != 0 {
		t.Fatalf("plan again: exit %d\n%s", r.code, r.stderr)
	}
	r = runBin(t, nil, "apply", "-c", cfg, saved)
	if r.code != 0 || !strings.Contains(r.stdout, "| boss ") || !strings.Contains(r.stdout, "failed") || !strings.Contains(r.stdout, "must be superuser") {
		t.Fatalf("apply of the fresh plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM t"); got != "1" {
		t.Errorf("rows on the target = %s, want 1", got)
	}
	other := writeConfig(t, src.URI("postgres"), dstURI, "method: dump\ndatabases: {include: [shop]}\ntables: {skip: [t]}\nstate: "+cfg+".state\n")
	r = runBin(t, nil, "apply", "-c", other)
	if r.code != 1 || !strings.Contains(r.stderr, "--reset-state") {
		t.Errorf("apply with another file on the same state: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDemo runs `pghaul demo` as the README's first command does and
// checks that it verifies equal data and removes everything; interrupted,
// it removes everything too.
func TestDemo(t *testing.T) {
	t.Parallel()
	demo := func(env []string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(binary, "demo")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), env...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd, &out
	}
	cmd, out := demo(nil)
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"0 blockers", "warning", "6 of 6 tables equal", "removed the clusters"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if dir := demoDir(out.String()); dir == "" || exists(dir) {
		t.Errorf("demo directory %q still exists", dir)
	}

	flag := filepath.Join(t.TempDir(), "paused")
	cmd, out = demo([]string{"PGHAUL_PAUSE_AT=copy:shop/public.orders", "PGHAUL_PAUSE_FILE=" + flag})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 900 && !exists(flag); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	if code := exitCode(cmd); code != 130 {
		t.Errorf("interrupted demo: exit %d\n%s", code, out)
	}
	if dir := demoDir(out.String()); dir == "" || exists(dir) {
		t.Errorf("interrupted demo left %q", dir)
	}
}

func demoDir(out string) string {
	m := regexp.MustCompile(`clusters in (\S+)`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestApplyPreDataInChunks: a schema too large for the target's lock table
// in one transaction is restored in chunks, each committed and recorded; a
// crash between chunks resumes after the last one.
func TestApplyPreDataInChunks(t *testing.T) {
	t.Parallel()
	src := pgtest.Start(t, pgtest.Source)
	dst := pgtest.Start(t, pgtest.Target, pgtest.WithSettings(map[string]string{"max_locks_per_transaction": "10", "max_connections": "20"}))
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE big")
	pgtest.Exec(t, src, "big", scaleSchema(1200), "INSERT INTO t1 VALUES (1, NULL, 'one')", "INSERT INTO t1199 VALUES (1, NULL, 'x')", "INSERT INTO t1200 VALUES (7, 1, 'seven')")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [big]}\n")
	r := runBin(t, []string{"PGHAUL_CRASH_AT=chunk:big"}, "apply", "-c", cfg)
	if r.code != 128+int(syscall.SIGKILL) || !strings.Contains(r.stderr, "restoring it in chunks") {
		t.Fatalf("apply did not crash after a chunk: exit %d\n%s", r.code, r.stderr)
	}
	r = runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 || !regexp.MustCompile(`restored in [0-9]+ chunks.* \(lock limits\)`).MatchString(r.stderr) {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := pgtest.QueryString(t, dst, "big", "SELECT count(*)::text FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"); n != "1200" {
		t.Errorf("%s tables on the target, want 1200", n)
	}
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || !strings.Contains(v.stdout, "1200 of 1200 tables equal") {
		t.Errorf("verify: exit %d\n%s", v.code, lastLines(v.stdout, 3))
	}
}

// TestApplyPreDataInParallelChunks restores a schema too large for one
// transaction in chunks on several sessions: types, tables of those types,
// tables inheriting others, sequences owned by tables and views on them,
// each chunk started only once what it depends on has committed (none
// fails and runs again), then a crash after the fifth chunk and a rerun
// that restores only the rest.
func TestApplyPreDataInParallelChunks(t *testing.T) {
	t.Parallel()
	src := pgtest.Start(t, pgtest.Source)
	dst := pgtest.Start(t, pgtest.Target, pgtest.WithSettings(map[string]string{"max_locks_per_transaction": "64", "max_connections": "20"}))
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE layered")
	pgtest.Exec(t, src, "layered", `DO $$
BEGIN
  FOR i IN 1..20 LOOP
    EXECUTE format('CREATE TYPE mood%s AS ENUM (''low'', ''high%s'')', i, i);
    EXECUTE format('CREATE DOMAIN score%s AS int CHECK (VALUE > %s)', i, -i);
  END LOOP;
  FOR i IN 1..400 LOOP
    EXECUTE format('CREATE TABLE base%s (id serial PRIMARY KEY, m mood%s, s score%s)', i, i % 20 + 1, i % 7 + 1);
    EXECUTE format('CREATE TABLE kid%s (extra text) INHERITS (base%s)', i, i);
    EXECUTE format('CREATE VIEW v%s AS SELECT b.id, b.m, k.extra FROM base%s b JOIN kid%s k USING (id)', i, i, i);
    EXECUTE format('INSERT INTO base%s (m, s) VALUES (''high%s'', 3)', i, i % 20 + 1);
  END LOOP;
END $$`)
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [layered]}\nparallel: {tables: 3}\n")
	r := runBin(t, []string{"PGHAUL_CRASH_AT=chunk:layered/5"}, "apply", "-c", cfg)
	if r.code != 128+int(syscall.SIGKILL) || !strings.Contains(r.stderr, "restoring it in chunks") {
		t.Fatalf("apply did not crash after the fifth chunk: exit %d\n%s", r.code, r.stderr)
	}
	r = runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`restored in [0-9]+ chunks( on ([0-9]) sessions)?(, [0-9]+ chunks? run again alone)? \(lock limits\)`).FindStringSubmatch(r.stderr)
	switch {
	case m == nil:
		t.Fatalf("the rerun did not report its chunks:\n%s", r.stderr)
	case m[2] == "":
		t.Errorf("the chunks ran on one session, want up to 3: %s", m[0])
	case m[3] != "":
		t.Errorf("a chunk ran before what it depends on: %s", m[0])
	}
	// The catalog as the schema defines it: relations, columns with their
	// types, defaults, inheritance, view definitions, enum labels, domain
	// checks and sequences' owners.
	for _, q := range []string{
		`SELECT string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace`,
		`SELECT string_agg(format('%s.%s %s %s', a.attrelid::regclass, a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)), ',' ORDER BY a.attrelid::regclass::text, a.attnum)
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND c.relkind IN ('r', 'v')`,
		`SELECT string_agg(format('%s<%s', inhrelid::regclass, inhparent::regclass), ',' ORDER BY inhrelid::regclass::text) FROM pg_inherits`,
		`SELECT string_agg(format('%s %s', c.relname, pg_get_viewdef(c.oid)), ',' ORDER BY c.relname) FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace`,
		`SELECT string_agg(format('%s %s', enumtypid::regtype, enumlabel), ',' ORDER BY enumtypid::regtype::text, enumsortorder) FROM pg_enum`,
		`SELECT string_agg(format('%s %s', t.typname, pg_get_constraintdef(k.oid)), ',' ORDER BY t.typname) FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid`,
		`SELECT string_agg(format('%s %s', d.objid::regclass, d.refobjid::regclass), ',' ORDER BY d.objid::regclass::text) FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'a' AND d.objid IN (SELECT oid FROM pg_class WHERE relkind = 'S')`,
	} {
		want := pgtest.QueryString(t, src, "layered", q)
		if want == "" {
			t.Fatalf("%s: nothing on the source", q)
		}
		if got := pgtest.QueryString(t, dst, "layered", q); got != want {
			t.Errorf("%s\non the target differs from the source (%d against %d characters)", q, len(got), len(want))
		}
	}
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || !strings.Contains(v.stdout, "800 of 800 tables equal") {
		t.Errorf("verify: exit %d\n%s", v.code, lastLines(v.stdout, 3))
	}
}

// TestApplyEarlyIndexRefused: a table's early indexes go to the target in
// one statement; when the target refuses one, the others are built one by
// one and the refused one is left to post-data, which reports it. The
// index's function refuses on the target while a role setting says so.
func TestApplyEarlyIndexRefused(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", `CREATE FUNCTION checked(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('shop.refuse', true) = 'on' THEN RAISE EXCEPTION 'refused by shop.refuse'; END IF;
  RETURN $1;
END $$`,
		"CREATE TABLE t (id int PRIMARY KEY, v text)", "CREATE INDEX t_checked ON t (checked(id))",
		"INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")
	pgtest.Exec(t, dst, "postgres", "ALTER ROLE postgres SET shop.refuse = 'on'")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\n")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "index t_checked of public.t left to post-data") || !strings.Contains(r.stderr, "refused by shop.refuse") {
		t.Fatalf("apply: exit %d, want the index left to post-data and post-data failing on it\n%s", r.code, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 't'::regclass"); got != "t_pkey" {
		t.Errorf("indexes of t on the target = %q, want the primary key built early without the refused index", got)
	}
	pgtest.Exec(t, dst, "postgres", "ALTER ROLE postgres RESET shop.refuse")
	if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 't'::regclass"); got != "t_checked,t_pkey" {
		t.Errorf("indexes of t after the rerun = %q, want t_checked,t_pkey", got)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestApplyLargeObjectGrantToExcludedRole: a large object's grant to a
// role left on the source is skipped and counted; the object, its owner,
// its other grants and its comment arrive.
func TestApplyLargeObjectGrantToExcludedRole(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE viewer NOLOGIN", "CREATE ROLE keeper NOLOGIN", "CREATE ROLE auditor NOLOGIN", "CREATE DATABASE files")
	pgtest.Exec(t, src, "files", "SELECT lo_from_bytea(4242, 'granted twice')", "GRANT SELECT ON LARGE OBJECT 4242 TO viewer", "GRANT SELECT ON LARGE OBJECT 4242 TO auditor",
		"ALTER LARGE OBJECT 4242 OWNER TO keeper", "COMMENT ON LARGE OBJECT 4242 IS 'the keeper''s file'")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [files]}\nroles: {exclude: [viewer]}\n")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "1 large object, 13 B; 1 grant to roles missing on the target skipped") {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	const facts = "SELECT format('%s %s %s %s', pg_get_userbyid(lomowner), lomacl, convert_from(lo_get(oid), 'UTF8'), obj_description(oid, 'pg_largeobject')) FROM pg_largeobject_metadata"
	want := pgtest.QueryString(t, src, "files", facts)
	if !strings.Contains(want, "viewer=r/") || !strings.Contains(want, "auditor=r/") || !strings.Contains(want, "the keeper's file") {
		t.Fatalf("source ACL %q lacks the grant to viewer", want)
	}
	want = regexp.MustCompile(`,?viewer=r/keeper`).ReplaceAllString(want, "")
	if got := pgtest.QueryString(t, dst, "files", facts); got != want {
		t.Errorf("large object on the target = %q, want %q (the source's without viewer)", got, want)
	}
}

// TestApplyExtensionConfigTable migrates PostGIS, whose spatial_ref_sys is
// an extension configuration table: the target's CREATE EXTENSION brings
// the standard rows, the copy replaces only the rows the user added
// (extcondition) — after a crash too, without doubling them.
func TestApplyExtensionConfigTable(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	if pgtest.QueryString(t, src, "postgres", "SELECT count(*)::text FROM pg_available_extensions WHERE name = 'postgis'") != "1" {
		t.Skip("PostGIS is not installed: apt-get install -y postgresql-<major>-postgis-3 (.ci/run does)")
	}
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE geo")
	pgtest.Exec(t, src, "geo", "CREATE EXTENSION postgis",
		"INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text) VALUES (910001, 'pghaul', 1, '', '+proj=longlat +datum=WGS84'), (910002, 'pghaul', 2, '', '+proj=longlat +ellps=GRS80')",
		"CREATE TABLE places (id int PRIMARY KEY, name text, geom geometry(Point, 4326))",
		"INSERT INTO places SELECT g, 'place ' || g, ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326) FROM generate_series(1, 2000) g")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [geo]}\nparallel: {tables: 1}\n")
	r := crashThenRerun(t, cfg, "table:geo/public.spatial_ref_sys")
	if !strings.Contains(r.stderr, "emptied and copied again") {
		t.Errorf("the rerun did not restart the copy:\n%s", r.stderr)
	}
	// All of the columns are built-in types: binary, through the condition's query.
	if !regexp.MustCompile(`table=public.spatial_ref_sys rows=2 .* format=binary`).MatchString(r.stderr) {
		t.Errorf("the rerun did not copy the 2 added spatial_ref_sys rows in binary:\n%s", r.stderr)
	}
	// A column of an extension's type keeps the table in text.
	if !regexp.MustCompile(`table=public.places rows=2000 .* format=text`).MatchString(r.stderr) {
		t.Errorf("places was not copied in text:\n%s", r.stderr)
	}
	for _, q := range []string{
		"SELECT count(*) || ' ' || md5(string_agg(r::text, ',' ORDER BY srid)) FROM spatial_ref_sys r",
		"SELECT count(*) || ' ' || md5(string_agg(r::text, ',' ORDER BY id)) FROM places r",
	} {
		if s, d := pgtest.QueryString(t, src, "geo", q), pgtest.QueryString(t, dst, "geo", q); s != d {
			t.Errorf("%s: %s on the target, %s on the source", q, d, s)
		}
	}
}

// TestApplyFreezesLargeTables: a table from 1 MiB arrives frozen (TRUNCATE
// and COPY FREEZE in one transaction), a small one into its empty table
// by a plain COPY; after a crash between the small table's commit and its
// record, the rerun empties both first and the rows are there once.
func TestApplyFreezesLargeTables(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	for _, run := range []struct{ db, crash string }{{"frz", ""}, {"frz2", "table:frz2/public.small"}} {
		pgtest.Exec(t, src, "postgres", "CREATE DATABASE "+run.db)
		pgtest.Exec(t, src, run.db,
			"CREATE TABLE big (id int PRIMARY KEY, pad text)",
			"INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
			"CREATE TABLE small (id int PRIMARY KEY, pad text)",
			"INSERT INTO small SELECT g, 'y' FROM generate_series(1, 50) g")
		cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: ["+run.db+"]}\n")
		if run.crash != "" {
			if r := runBin(t, []string{"PGHAUL_CRASH_AT=" + run.crash}, "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
				t.Fatalf("apply did not crash at %s: exit %d\n%s", run.crash, r.code, r.stderr)
			}
		}
		if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 {
			t.Fatalf("apply of %s: exit %d\n%s", run.db, r.code, r.stderr)
		}
		// frozen counts the rows of a table's first page whose xmin is
		// marked frozen (HEAP_XMIN_FROZEN, 0x0300), and all of them.
		pgtest.Exec(t, dst, run.db, "CREATE EXTENSION pageinspect")
		frozen := func(table string) string {
			return pgtest.QueryString(t, dst, run.db, fmt.Sprintf(
				"SELECT count(*) FILTER (WHERE t_infomask & 768 = 768) || '/' || count(*) FROM heap_page_items(get_raw_page('%s', 0))", table))
		}
		if big := frozen("big"); !regexp.MustCompile(`^([1-9][0-9]*)/([0-9]+)$`).MatchString(big) || strings.Split(big, "/")[0] != strings.Split(big, "/")[1] {
			t.Errorf("%s: big's first page has %s rows frozen, want all", run.db, big)
		}
		if small := frozen("small"); small != "0/50" {
			t.Errorf("%s: small's first page has %s rows frozen, want 0/50", run.db, small)
		}
		for table, want := range map[string]string{"big": "20000", "small": "50"} {
			if got := pgtest.QueryString(t, dst, run.db, "SELECT count(*)::text FROM "+table); got != want {
				t.Errorf("%s: %s has %s rows, want %s", run.db, table, got, want)
			}
		}
	}
}

// TestApplyLatin1Database migrates a LATIN1 database whose names, comments,
// defaults and rows are not ASCII: the plan reads the names as UTF-8, the
// COPY statements name the tables in LATIN1, the early index builds and
// the rerun after a crash match the archive's entries (listed in LATIN1)
// with the catalog's names.
func TestApplyLatin1Database(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE lat TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
	pgtest.Exec(t, src, "lat", `CREATE SCHEMA "ñ"`,
		`CREATE TABLE "ñ"."café" (id int PRIMARY KEY, "naïve" text DEFAULT 'été', tags text[])`,
		`CREATE INDEX "idx_é" ON "ñ"."café" ("naïve")`,
		`COMMENT ON TABLE "ñ"."café" IS 'naïve £'`,
		`INSERT INTO "ñ"."café" SELECT g, 'crème ' || g, ARRAY['à', 'ü' || g] FROM generate_series(1, 1000) g`,
		`CREATE TABLE "crème" (id int PRIMARY KEY, "café_id" int REFERENCES "ñ"."café" (id), note text)`,
		`INSERT INTO "crème" SELECT g, g, 'déjà vu ' || g FROM generate_series(1, 500) g`,
		`CREATE VIEW "vé" AS SELECT "naïve" AS "ç" FROM "ñ"."café"`,
		`CREATE FUNCTION "ñ"."prix"() RETURNS text LANGUAGE sql AS $$ SELECT 'coût: 5 ¤'::text $$`)
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [lat]}\n")
	p := runBin(t, nil, "plan", "-c", cfg, "--format", "markdown")
	if p.code != 0 || !strings.Contains(p.stdout, "copy 2 tables") {
		t.Fatalf("plan: exit %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	r := crashThenRerun(t, cfg, "after:restore_pre_data")
	for _, want := range []string{"already restored (every table exists)", `table=ñ.café rows=1000`, `table=public.crème rows=500`,
		`msg="indexes built" database=lat table=ñ.café indexes=2`, `msg="indexes built" database=lat table=public.crème indexes=1`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("rerun log does not show %s:\n%s", want, r.stderr)
		}
	}
	want, got := tableDigests(t, src, "lat"), tableDigests(t, dst, "lat")
	if len(want) != 2 || !maps.Equal(want, got) {
		t.Errorf("rows on the target = %v, want %v", got, want)
	}
	if s, d, ok := schemaDumps(t, src, dst, "lat"); ok && s != d {
		t.Errorf("pg_dump --schema-only differs between source and target:\n%s", firstDiff(s, d))
	}
	const facts = `SELECT concat_ws(' | ', obj_description('"ñ"."café"'::regclass), pg_get_expr(d.adbin, d.adrelid), "ñ"."prix"(), pg_encoding_to_char(db.encoding))
		FROM pg_attrdef d, pg_database db WHERE d.adrelid = '"ñ"."café"'::regclass AND db.datname = current_database()`
	if got, want := pgtest.QueryString(t, dst, "lat", facts), "naïve £ | 'été'::text | coût: 5 ¤ | LATIN1"; got != want {
		t.Errorf("target facts = %q, want %q", got, want)
	}
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || !strings.Contains(v.stdout, "2 of 2 tables equal") {
		t.Errorf("verify: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
}

// TestApplyRestoreFallsBack: pre-data and post-data run as scripts on
// pghaul's own session, except when a script holds a line only psql
// reads (a function body's line starting with a backslash) or the server
// refuses it; then pg_restore restores the section and reports the
// failing entry.
func TestApplyRestoreFallsBack(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE plain", "CREATE DATABASE slash", "CREATE DATABASE clash")
	schema := []string{"CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g",
		"CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t (id))", "INSERT INTO u SELECT g, g FROM generate_series(1, 50) g"}
	pgtest.Exec(t, src, "plain", schema...)
	pgtest.Exec(t, src, "slash", append(schema, "CREATE FUNCTION slashed() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'a\n\\b'; END $$")...)
	pgtest.Exec(t, src, "clash", append(schema, "CREATE FUNCTION clashing() RETURNS int LANGUAGE sql AS 'SELECT 1'")...)
	// The plan does not look at functions: the restore meets this one.
	pgtest.Exec(t, dst, "postgres", "CREATE DATABASE clash")
	pgtest.Exec(t, dst, "clash", "CREATE FUNCTION clashing() RETURNS int LANGUAGE sql AS 'SELECT 2'")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [plain, slash, clash]}\nparallel: {databases: 1}\n")
	r := runBin(t, nil, "apply", "-c", cfg, "-d")
	if r.code == 0 {
		t.Fatalf("apply succeeded though the target's clash has a function of the schema:\n%s", r.stderr)
	}
	for _, want := range []string{
		`msg="the restore script holds a line only psql reads; pg_restore runs instead" database=slash`,
		`msg="restoring on the session failed; pg_restore runs instead" database=clash`,
		`db:clash/pre-data: pg_restore exit status 1: pg_restore: error: could not execute query: ERROR:  function "clashing" already exists`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log does not show %s:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "runs instead\" database=plain") {
		t.Errorf("plain's restores went to pg_restore:\n%s", r.stderr)
	}
	for _, db := range []string{"plain", "slash"} {
		if s, d, ok := schemaDumps(t, src, dst, db); ok && s != d {
			t.Errorf("%s: pg_dump --schema-only differs between source and target:\n%s", db, firstDiff(s, d))
		}
		if want, got := tableDigests(t, src, db), tableDigests(t, dst, db); !maps.Equal(want, got) {
			t.Errorf("%s: rows on the target = %v, want %v", db, got, want)
		}
	}
	if got := pgtest.QueryString(t, dst, "slash", "SELECT slashed()"); got != "a\n\\b" {
		t.Errorf("slashed() = %q on the target", got)
	}
	// Pre-data is one transaction, on either path: nothing of it is left.
	if n := pgtest.QueryString(t, dst, "clash", "SELECT count(*)::text FROM pg_class WHERE relnamespace = 'public'::regnamespace"); n != "0" {
		t.Errorf("%s relations in clash after the failed pre-data, want 0", n)
	}
}

// TestApplySQLASCIIDatabase: a SQL_ASCII database's rows cross as stored,
// bytes that are not UTF-8 included; one whose names are not UTF-8 is a
// blocker that names them.
func TestApplySQLASCIIDatabase(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE legacy TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
		"CREATE DATABASE odd TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'")
	// Bytes that are not UTF-8 go in on a session speaking SQL_ASCII.
	raw := func(db string, sqls ...string) {
		t.Helper()
		conn, err := pgconn.Connect(context.Background(), src.URI(db)+"&client_encoding=SQL_ASCII")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, sql := range sqls {
			if _, err := conn.Exec(context.Background(), sql).ReadAll(); err != nil {
				t.Fatalf("%q: %v", sql, err)
			}
		}
	}
	raw("legacy", "CREATE TABLE t (id int PRIMARY KEY, v text, tags text[])",
		"INSERT INTO t SELECT g, 'caf\xe9 \xff' || g, ARRAY['cr\xe8me'] FROM generate_series(1, 300) g")
	raw("odd", "CREATE TABLE \"caf\xe9\" (id int)")
	const bytes = "SELECT md5(string_agg(convert_to(v || array_to_string(tags, ','), 'SQL_ASCII')::text, ',' ORDER BY id)) FROM t"
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [legacy]}\n")
	if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if s, d := pgtest.QueryString(t, src, "legacy", bytes), pgtest.QueryString(t, dst, "legacy", bytes); s != d {
		t.Errorf("rows' bytes differ: %s on the target, %s on the source", d, s)
	}
	p, r := planJSON(t, writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [odd]}\n"))
	if r.code != 2 || !has(p, plan.Blocker, "connection-failed") || !strings.Contains(r.stdout, `relation public.caf\\xe9`) {
		t.Errorf("plan of a database with a name that is not UTF-8: exit %d\n%s", r.code, r.stdout)
	}
}

// TestTwoMigrationsOneTarget: a second migration (another file, another
// state) into a target database the first is migrating into is refused
// while the first runs, naming it; once the first is done, the second's
// rerun refuses the database it did not create instead of colliding with
// its rows, and planned afresh it meets them as blockers.
func TestTwoMigrationsOneTarget(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 1000)")
	first := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\n")
	second := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\nroles: {passwords: none}\n")
	// The second plans (shop is not on the target yet) and stops early.
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:create_database"}, "apply", "-c", second); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("the second migration did not stop at create_database: exit %d\n%s", r.code, r.stderr)
	}
	r, out := runWhilePaused(t, "before:copy_data", []string{"apply", "-c", first}, "apply", "-c", second)
	if r.code != 1 || !strings.Contains(r.stderr, "database shop on the target is being migrated into by another pghaul") {
		t.Fatalf("a second migration while the first runs: exit %d\n%s\n%s\nfirst:\n%s", r.code, r.stdout, r.stderr, out)
	}
	if r := runBin(t, nil, "apply", "-c", first); r.code != 0 {
		t.Fatalf("the first migration's rerun: exit %d\n%s", r.code, r.stderr)
	}
	r = runBin(t, nil, "apply", "-c", second)
	if r.code != 1 || !strings.Contains(r.stderr, "appeared on the target after this migration planned to create it") {
		t.Errorf("the second migration resumed after the first: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, nil, "apply", "-c", second, "--reset-state")
	if r.code != 2 || !strings.Contains(r.stderr, "target-table-not-empty") {
		t.Errorf("the second migration planned afresh: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM t"); got != "1000" {
		t.Errorf("target rows = %s, want the first migration's 1000", got)
	}
}

// TestCopyRateLimit: with parallel.max_rate 5MiB a 20 MiB table is copied
// at 5 MiB/s on average (within 10 %), and its rows are equal.
func TestCopyRateLimit(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE big (id bigint PRIMARY KEY, pad text)",
		"INSERT INTO big SELECT g, repeat('x', 120) FROM generate_series(1, 155000) g")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\nparallel: {max_rate: 5MiB}\n")
	if p := runBin(t, nil, "plan", "-c", cfg, "--format", "json"); !strings.Contains(p.stdout, "with up to 4 streams, at most 5.0 MiB/s in all") {
		t.Errorf("the plan does not show the limit:\n%s", p.stdout)
	}
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`msg="table copied" database=shop table=public.big rows=155000 bytes="([0-9.]+) MiB" took=([0-9.a-zµ]+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no table copied line for public.big:\n%s", r.stderr)
	}
	mib, _ := strconv.ParseFloat(m[1], 64)
	took, err := time.ParseDuration(m[2])
	if err != nil || mib < 18 {
		t.Fatalf("copied %s MiB in %s", m[1], m[2])
	}
	t.Logf("copied %.1f MiB in %s (%.2f MiB/s)", mib, took, mib/took.Seconds())
	if rate := mib / took.Seconds(); rate < 4.5 || rate > 5.5 {
		t.Errorf("copied %.1f MiB in %s: %.2f MiB/s, want 5 MiB/s within 10 %%", mib, took, rate)
	}
	assertSameRows(t, src, dst, "shop")
}

// TestTablesCreatedAfterThePlan: a table created on the source between
// the plan and its database's snapshot is in the schema dump, so the
// target gets it; the copy finds it under the snapshot and copies its
// rows when the filters select it, as the plan would have (before, it was
// left empty while apply said done). verify compares the tables the source
// holds that the stored plan does not list. Under a publication that lists
// the planned tables, whose changes would not carry a new one, the copy
// stops instead and names it.
func TestTablesCreatedAfterThePlan(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop", "CREATE DATABASE live")
	for _, db := range []string{"shop", "live"} {
		pgtest.Exec(t, src, db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 100)")
	}
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\ntables: {skip: [shop.public.skipped_*]}\n")
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:export_snapshot"}, "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the snapshot: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "shop",
		"CREATE TABLE added (id int PRIMARY KEY, v text)", "INSERT INTO added SELECT g, md5(g::text) FROM generate_series(1, 500) g",
		"CREATE TABLE part (id int) PARTITION BY RANGE (id)", "CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM (0) TO (1000)",
		"INSERT INTO part SELECT generate_series(1, 300)",
		"CREATE TABLE skipped_new (id int)", "INSERT INTO skipped_new VALUES (1)")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "shop: 2 tables created on the source after the plan are copied too: public.added, public.part_1") {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	want, got := tableDigests(t, src, "shop"), tableDigests(t, dst, "shop")
	for _, table := range []string{"public.t", "public.added", "public.part_1"} {
		if got[table] != want[table] || !strings.HasPrefix(want[table], map[string]string{"public.t": "100:", "public.added": "500:", "public.part_1": "300:"}[table]) {
			t.Errorf("%s = %q on the target, %q on the source", table, got[table], want[table])
		}
	}
	if got["public.skipped_new"] != "0:" {
		t.Errorf("public.skipped_new, which the filter skips, = %q on the target, want it empty", got["public.skipped_new"])
	}
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || !strings.Contains(v.stdout, "public.added") {
		t.Errorf("verify after the copy: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	// A table created after the migration holds rows only on the source.
	pgtest.Exec(t, src, "shop", "CREATE TABLE later (id int)", "INSERT INTO later VALUES (1)")
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 1 || !strings.Contains(v.stdout, "public.later") || !strings.Contains(v.stderr, "differ") {
		t.Errorf("verify with a table created after the migration: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}

	// A rerun's snapshot is later than the schema dump it keeps: a table
	// created in between is not on the target, and the database ends with
	// a warning naming it; verify reports it.
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE late")
	pgtest.Exec(t, src, "late", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 100)")
	late := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [late]}\n")
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:copy_data"}, "apply", "-c", late); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the copy: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "late", "CREATE TABLE after_dump (id int)", "INSERT INTO after_dump VALUES (1)")
	r = runBin(t, nil, "apply", "-c", late)
	saved, _ := os.ReadFile(late + ".state/state.json")
	if r.code != 0 || !strings.Contains(r.stdout, "done with warnings") ||
		!strings.Contains(string(saved), "1 table created on the source after the schema dump was not migrated: public.after_dump") {
		t.Errorf("rerun after a table created after the dump: exit %d\n%s\n%s\nstate: %s", r.code, r.stdout, r.stderr, saved)
	}
	if got := pgtest.QueryString(t, dst, "late", "SELECT count(*)::text FROM t"); got != "100" {
		t.Errorf("late: public.t has %s rows on the target, want 100", got)
	}
	if v := runBin(t, nil, "verify", "-c", late); v.code != 1 || !strings.Contains(v.stdout, "public.after_dump") {
		t.Errorf("verify with a table created after the dump: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}

	// A replication whose publication lists the planned tables (a filter
	// leaves one out) has the new table added to it before the slot is
	// made: it is copied under the slot's snapshot, and its changes
	// replicate.
	pgtest.Exec(t, src, "live", "CREATE TABLE left_out (id int PRIMARY KEY)")
	live := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: replication\ndatabases: {include: [live]}\ntables: {skip: [live.public.left_out]}\n")
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:create_publication"}, "apply", "-c", live); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the publication: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "live", "CREATE TABLE added (id int PRIMARY KEY)", "INSERT INTO added SELECT generate_series(1, 10)")
	r = runBin(t, nil, "apply", "-c", live)
	if r.code != 0 || !strings.Contains(r.stderr, "now carries 1 table created on the source after the plan: public.added") ||
		!strings.Contains(r.stderr, "live: 1 table created on the source after the plan is copied too: public.added") {
		t.Fatalf("replication with a table created after the plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	pgtest.Exec(t, src, "live", "INSERT INTO added SELECT generate_series(11, 15)")
	waitFor(t, "live: public.added to hold the 10 rows copied and the 5 replicated on the target", func() bool {
		return pgtest.QueryString(t, dst, "live", "SELECT count(*)::text FROM added") == "15"
	})
	if got := pgtest.QueryString(t, dst, "live", "SELECT count(*)::text FROM left_out"); got != "0" {
		t.Errorf("live: public.left_out, which the filter skips, has %s rows on the target", got)
	}
	runBin(t, nil, "cleanup", "-c", live, "--yes")
}

// TestVerifyDatabaseCreatedSince: a database the filters select that was
// created on the source after the migration is not on the target; verify
// reports each of its objects as different, where it compared the stored
// plan's databases alone and said equal.
func TestVerifyDatabaseCreatedSince(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE app1")
	pgtest.Exec(t, src, "app1", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 10)")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [\"app*\"]}\n")
	if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 {
		t.Fatalf("verify after apply: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE app2")
	pgtest.Exec(t, src, "app2", "CREATE TABLE u (id int)", "INSERT INTO u SELECT generate_series(1, 5)")
	// A rerun of apply says it does not move it.
	if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 || !strings.Contains(r.stderr, "database app2 was created on the source after the plan: this migration does not move it") {
		t.Errorf("apply after a database was created: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := runBin(t, nil, "verify", "-c", cfg, "--format", "json")
	if v.code != 1 || !strings.Contains(v.stdout, `"error": "the target has no database app2"`) || !strings.Contains(v.stdout, `"name": "u"`) {
		t.Errorf("verify with a database created since: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
}

// TestApplyCommentsWhereAny: a database with no comments is dumped with
// --no-comments, read under the snapshot; one whose only comment is on
// the public schema, or on a column added after the plan, keeps it.
func TestApplyCommentsWhereAny(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE plain", "CREATE DATABASE pubc", "CREATE DATABASE colc")
	for _, db := range []string{"plain", "pubc", "colc"} {
		pgtest.Exec(t, src, db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 10)")
	}
	pgtest.Exec(t, src, "pubc", "COMMENT ON SCHEMA public IS 'ours'")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [plain, pubc, colc]}\n")
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:export_snapshot"}, "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the snapshot: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "colc", "COMMENT ON COLUMN t.id IS 'the id'")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for db, want := range map[string]string{"plain": "standard public schema|", "pubc": "ours|", "colc": "standard public schema|the id"} {
		got := pgtest.QueryString(t, dst, db, "SELECT concat(obj_description('public'::regnamespace, 'pg_namespace'), '|', col_description('t'::regclass, 1))")
		if got != want {
			t.Errorf("%s: comments on the target %q, want %q", db, got, want)
		}
		if rows := pgtest.QueryString(t, dst, db, "SELECT count(*)::text FROM t"); rows != "10" {
			t.Errorf("%s: %s rows on the target, want 10", db, rows)
		}
		skipped := regexp.MustCompile(`db:` + db + `/dump-schema .*--no-comments`).MatchString(r.stderr)
		if skipped != (db == "plain") {
			t.Errorf("%s: dumped with --no-comments %v, want %v\n%s", db, skipped, db == "plain", r.stderr)
		}
	}
}

// assertCopied checks that each of tables holds rows on the source and
// the same on the target (tableDigests).
func assertCopied(t *testing.T, src, dst *cluster.Cluster, db string, tables ...string) {
	t.Helper()
	want, got := tableDigests(t, src, db), tableDigests(t, dst, db)
	for _, table := range tables {
		if got[table] != want[table] || want[table] == "" || strings.HasPrefix(want[table], "0:") {
			t.Errorf("%s = %q on the target, %q on the source", table, got[table], want[table])
		}
	}
}

// TestTablesDroppedAfterThePlan: a planned table dropped on the source
// before the database's snapshot (a partition a retention job dropped)
// is not migrated and the copy goes on, where it stopped and asked to
// start over; verify leaves it out. A rerun whose schema dump was made
// before the drop leaves the table on the target and warns.
func TestTablesDroppedAfterThePlan(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop", "CREATE DATABASE late")
	pgtest.Exec(t, src, "shop", "CREATE TABLE kept (id int PRIMARY KEY)", "INSERT INTO kept SELECT generate_series(1, 100)",
		"CREATE TABLE doomed (id int PRIMARY KEY)", "INSERT INTO doomed SELECT generate_series(1, 50)",
		"CREATE TABLE ev (id int, day date) PARTITION BY RANGE (day)",
		"CREATE TABLE ev_old PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"CREATE TABLE ev_new PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
		"INSERT INTO ev SELECT g, date '2025-06-01' + g FROM generate_series(1, 400) g")
	pgtest.Exec(t, src, "late", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 100)",
		"CREATE TABLE t2 (id int)", "INSERT INTO t2 VALUES (1)")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\n")
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:export_snapshot"}, "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the snapshot: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "shop", "DROP TABLE doomed", "DROP TABLE ev_old")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "shop: 2 tables of the plan were dropped on the source since, and are not migrated: public.doomed, public.ev_old") ||
		strings.Contains(r.stdout, "warnings") {
		t.Fatalf("rerun after tables were dropped: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT concat_ws(',', to_regclass('public.doomed'), to_regclass('public.ev_old'))"); got != "" {
		t.Errorf("the target has the dropped tables: %s", got)
	}
	assertCopied(t, src, dst, "shop", "public.kept", "public.ev_new")
	if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || strings.Contains(v.stdout, "doomed") || !strings.Contains(v.stdout, "public.kept") {
		t.Errorf("verify after tables were dropped: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}

	// The rerun's schema dump is from before the drop: the table stays on
	// the target, and the database ends with a warning naming it.
	late := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [late]}\n")
	if r := runBin(t, []string{"PGHAUL_CRASH_AT=before:copy_data"}, "apply", "-c", late); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the copy: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "late", "DROP TABLE t2")
	r = runBin(t, nil, "apply", "-c", late)
	saved, _ := os.ReadFile(late + ".state/state.json")
	if r.code != 0 || !strings.Contains(r.stdout, "done with warnings") ||
		!strings.Contains(string(saved), "1 table dropped on the source after the schema dump is still on the target: public.t2") {
		t.Errorf("rerun after a table was dropped after the dump: exit %d\n%s\n%s\nstate: %s", r.code, r.stdout, r.stderr, saved)
	}
	if got := pgtest.QueryString(t, dst, "late", "SELECT count(*)::text FROM t"); got != "100" {
		t.Errorf("late: public.t has %s rows on the target, want 100", got)
	}
}
