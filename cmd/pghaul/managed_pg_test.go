package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestNonSuperuserTargetKeepsOwners migrates as a managed service's
// migration user would: CREATEDB and CREATEROLE on the target, no
// superuser. On 16+ such a user gets only ADMIN on the roles it creates
// (no SET, no INHERIT), so handing them objects failed. Every object's
// owner on the target is the source's, and once the migration completes
// the user is no longer a member of the owner roles it joined. (Run with
// a 16+ target by scripts/cross-version.)
func TestNonSuperuserTargetKeepsOwners(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app_owner", "CREATE DATABASE shop OWNER app_owner",
		"CREATE ROLE analyst LOGIN", "GRANT pg_monitor TO analyst")
	pgtest.Exec(t, src, "shop", "SET ROLE app_owner", "CREATE SCHEMA sales",
		"CREATE TABLE sales.orders (id serial PRIMARY KEY, note text)", "INSERT INTO sales.orders (note) SELECT 'n' || g FROM generate_series(1, 100) g",
		"CREATE VIEW sales.recent AS SELECT * FROM sales.orders WHERE id > 90")
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE")
	owners := `SELECT string_agg(format('%s %s %s', c.relkind, c.oid::regclass, pg_get_userbyid(c.relowner)), ', ' ORDER BY c.oid::regclass::text)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sales'`
	dbOwner := `SELECT pg_get_userbyid(datdba) || ' ' || (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'sales') FROM pg_database WHERE datname = current_database()`
	cfg := writeConfig(t, src.URI("postgres"), dst.URIAs("migrator", "", "postgres"), "method: dump\ndatabases: {include: [shop]}\n")
	// A membership in a predefined role needs ADMIN OPTION on it from 16:
	// a warning in the plan, a failed row in the result, not a stop.
	v16 := dst.Major >= 16
	if p := runBin(t, nil, "plan", "-c", cfg, "--format", "json"); p.code != 0 || strings.Contains(p.stdout, `"membership-not-grantable"`) != v16 {
		t.Errorf("plan (target %d): exit %d, membership-not-grantable reported = %v, want %v\n%s", dst.Major, p.code, !v16, v16, p.stderr)
	}
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply as a CREATEDB CREATEROLE target user (target %d): exit %d\n%s\n%s", dst.Major, r.code, r.stdout, r.stderr)
	}
	if got := strings.Contains(r.stdout, "analyst (member of pg_monitor) | failed"); got != v16 {
		t.Errorf("the roles table shows the membership failed = %v, want %v:\n%s", got, v16, r.stdout)
	}
	if !v16 && pgtest.QueryString(t, dst, "postgres", "SELECT pg_has_role('analyst', 'pg_monitor', 'MEMBER')::text") != "true" {
		t.Errorf("analyst is not a member of pg_monitor on the target")
	}
	// (Before 15 the public schema belongs to the superuser postgres, whom
	// no CREATEROLE user may join: it alone stays the migration user's.)
	if strings.Contains(r.stderr, "--no-owner") || strings.Contains(r.stderr, "role app_owner") && strings.Contains(r.stderr, "owns it instead") {
		t.Errorf("app_owner's objects lost their owner:\n%s", r.stderr)
	}
	for _, q := range []string{owners, dbOwner} {
		if s, d := pgtest.QueryString(t, src, "shop", q), pgtest.QueryString(t, dst, "shop", q); s != d {
			t.Errorf("owners on the target = %s, want the source's %s", d, s)
		}
	}
	assertSameRows(t, src, dst, "shop")
	member := fmt.Sprintf("SELECT pg_has_role('migrator', 'app_owner', '%s')::text", map[bool]string{true: "SET", false: "MEMBER"}[dst.Major >= 16])
	if got := pgtest.QueryString(t, dst, "postgres", member); got != "false" {
		t.Errorf("the migration user still holds the membership it granted itself in app_owner (%s = %s)", member, got)
	}
}

// TestSourceRoleThatCannotRead: a managed service's read-only migration
// user (REPLICATION and pg_read_all_data) cannot read large objects, and
// an application owner with REPLICATION cannot read another owner's
// tables: plan blocks with the grant that fixes it, before apply creates
// anything.
func TestSourceRoleThatCannotRead(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE reader LOGIN REPLICATION", "GRANT pg_read_all_data TO reader",
		"CREATE ROLE app LOGIN REPLICATION", "CREATE DATABASE shop OWNER app")
	pgtest.Exec(t, src, "shop", "CREATE TABLE mine (id int PRIMARY KEY)", "ALTER TABLE mine OWNER TO app",
		"CREATE TABLE history (id int PRIMARY KEY)", "SELECT lo_from_bytea(424242, 'secret')")
	for _, tc := range []struct{ user, want string }{
		{"reader", "the source role reader cannot read 1 large object"},
		{"app", "the source role app cannot read 1 table: public.history"},
	} {
		cfg := writeConfig(t, src.URIAs(tc.user, "", "postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\nroles: {exclude: [reader, app]}\n")
		p := runBin(t, nil, "plan", "-c", cfg, "--format", "json")
		if p.code != 2 || !strings.Contains(p.stdout, tc.want) || !strings.Contains(p.stdout, `"source-not-readable"`) {
			t.Errorf("plan as %s: exit %d, want 2 and %q\n%s\n%s", tc.user, p.code, tc.want, p.stdout, p.stderr)
		}
		if r := runBin(t, nil, "apply", "-c", cfg); r.code != 2 {
			t.Errorf("apply as %s: exit %d, want 2 (blockers)\n%s", tc.user, r.code, r.stderr)
		}
	}
	if got := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM pg_database WHERE datname = 'shop'"); got != "0" {
		t.Errorf("apply created the database despite the blockers")
	}
}

// TestOwnersKeptPerObject: one owner the migration leaves out
// (roles.exclude, missing on the target) costs only its own objects their
// owner: they keep the migration user, each named (plan warns, the result
// says so, the database is "done with warnings"); the database and every
// other object keep theirs. Before, one such owner moved the whole
// database to the migration user.
func TestOwnersKeptPerObject(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app_owner", "CREATE ROLE auditor", "CREATE DATABASE shop OWNER app_owner")
	pgtest.Exec(t, src, "shop", "SET ROLE app_owner", "CREATE SCHEMA sales", "CREATE TABLE sales.orders (id int PRIMARY KEY)",
		"RESET ROLE", "CREATE TABLE sales.audit (id int PRIMARY KEY)", "ALTER TABLE sales.audit OWNER TO auditor")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\nroles: {exclude: [auditor]}\n")
	if p := runBin(t, nil, "plan", "-c", cfg, "--format", "json"); p.code != 0 || !strings.Contains(p.stdout, `"owner-not-kept"`) || !strings.Contains(p.stdout, "table shop.sales.audit") {
		t.Errorf("plan does not warn of auditor's table: exit %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "done with warnings") || !strings.Contains(r.stdout, "TABLE sales audit") {
		t.Fatalf("apply: exit %d, want 0, the database done with warnings and the table named\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	owners := `SELECT concat_ws(' ', (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'),
		(SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'sales'),
		(SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'sales.orders'::regclass),
		(SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'sales.audit'::regclass))`
	if got := pgtest.QueryString(t, dst, "shop", owners); got != "app_owner app_owner app_owner postgres" {
		t.Errorf("owners of the database, schema, orders and audit on the target = %q, want \"app_owner app_owner app_owner postgres\"", got)
	}
}

// TestNonSuperuserLiveMigration is a live migration with no superuser on
// either side, as between managed services: the source user owns the
// database and its tables and has REPLICATION and pg_signal_backend; the
// target user has CREATEDB, CREATEROLE, REPLICATION (to create the source
// role, which has it) and pg_create_subscription (which
// exists from 16: before it only superusers subscribe). It replicates,
// freezes, cuts over, and every row and owner is the source's.
func TestNonSuperuserLiveMigration(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t, pgtest.WithPassword("Sup3r-pw"))
	if dst.Major < 16 {
		t.Skipf("target PostgreSQL %d: before 16 only superusers create subscriptions (scripts/cross-version runs this against 16, 17 and 18)", dst.Major)
	}
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app LOGIN REPLICATION PASSWORD 'App-pw 1'", "GRANT pg_signal_backend TO app", "CREATE DATABASE shop OWNER app")
	pgtest.Exec(t, src, "shop", append([]string{"SET ROLE app"}, liveSource...)...)
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE REPLICATION PASSWORD 'Mig-pw 2'", "GRANT pg_create_subscription TO migrator")
	source, target := src.URIAs("app", "App-pw 1", "postgres"), dst.URIAs("migrator", "Mig-pw 2", "postgres")
	doc := func(policy string) string {
		return fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\nmethod: replication\ndatabases: {include: [shop]}\n%s", source, target, policy)
	}
	cfg := writeConfig(t, source, target, "")
	writeTo(t, cfg, doc(""))
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 || !strings.Contains(r.stdout, "running") {
		t.Fatalf("apply as non-superusers (target %d): exit %d\n%s\n%s", dst.Major, r.code, r.stdout, r.stderr)
	}
	pgtest.Exec(t, src, "shop", append([]string{"SET ROLE app"}, changesAfterCopy...)...)
	writeTo(t, cfg, doc(cutoverPolicy))
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 || !strings.Contains(r.stderr, "writes frozen for") {
		t.Fatalf("cut-over as non-superusers: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
	owners := `SELECT string_agg(format('%s %s', c.oid::regclass, pg_get_userbyid(c.relowner)), ', ' ORDER BY c.oid::regclass::text)
		FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S')`
	if s, d := pgtest.QueryString(t, src, "shop", owners), pgtest.QueryString(t, dst, "shop", owners); s != d {
		t.Errorf("owners on the target = %s, want %s", d, s)
	}
}

// TestExistingOwnerNotJoinable: an owner role that already exists on the
// target but that the non-superuser migration user cannot join (here a
// superuser role; on 16+ any role it holds no ADMIN on) is predicted by
// plan, with the grant that fixes it, and costs only its own objects
// their owner.
func TestExistingOwnerNotJoinable(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app_owner", "CREATE ROLE clerk", "CREATE DATABASE shop OWNER clerk")
	pgtest.Exec(t, src, "shop", "CREATE TABLE orders (id int PRIMARY KEY)", "ALTER TABLE orders OWNER TO app_owner",
		"CREATE TABLE notes (id int PRIMARY KEY)", "ALTER TABLE notes OWNER TO clerk")
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE app_owner SUPERUSER", "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE")
	cfg := writeConfig(t, src.URI("postgres"), dst.URIAs("migrator", "", "postgres"), "method: dump\ndatabases: {include: [shop]}\n")
	p := runBin(t, nil, "plan", "-c", cfg, "--format", "json")
	if p.code != 0 || !strings.Contains(p.stdout, `"owner-not-kept"`) || !strings.Contains(p.stdout, "role app_owner exists on the target") ||
		!strings.Contains(p.stdout, "table shop.public.orders") || strings.Contains(p.stdout, "role clerk exists") {
		t.Errorf("plan does not predict that app_owner (and only it) cannot be joined: exit %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "done with warnings") {
		t.Fatalf("apply: exit %d, want 0 and the database done with warnings\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	owners := `SELECT string_agg(format('%s %s', c.relname, pg_get_userbyid(c.relowner)), ', ' ORDER BY c.relname)
		FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`
	if got := pgtest.QueryString(t, dst, "shop", owners); got != "notes clerk, orders migrator" {
		t.Errorf("owners on the target = %q, want \"notes clerk, orders migrator\"\n%s", got, r.stdout)
	}
}

// TestOwnerWithoutCreateOnSchema: a non-superuser may make a role an
// object's owner only when the role has CREATE on the object's schema.
// When one owner cannot be joined, the restore runs without it rather than
// with --no-owner for every object, and an owner lacking CREATE stops it
// with the grant to make, instead of the whole schema silently going to
// the migration user.
func TestOwnerWithoutCreateOnSchema(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app_owner", "CREATE ROLE clerk", "CREATE DATABASE ledger")
	pgtest.Exec(t, src, "ledger", "CREATE TABLE orders (id int PRIMARY KEY)", "ALTER TABLE orders OWNER TO app_owner",
		"CREATE TABLE notes (id int PRIMARY KEY)", "ALTER TABLE notes OWNER TO clerk")
	pgtest.Exec(t, dst, "postgres", "CREATE ROLE app_owner SUPERUSER", "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE")
	cfg := writeConfig(t, src.URI("postgres"), dst.URIAs("migrator", "", "postgres"), "method: dump\ndatabases: {include: [ledger]}\n")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "GRANT CREATE ON SCHEMA") {
		t.Fatalf("apply: exit %d, want a failure naming the grant\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := pgtest.QueryString(t, dst, "ledger", "SELECT count(*)::text FROM pg_class WHERE relname IN ('orders', 'notes')"); n != "0" {
		t.Errorf("%s tables restored without their owners", n)
	}
}
