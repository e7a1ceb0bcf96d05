package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
)

var liveSource = []string{
	"CREATE TABLE orders (id bigserial PRIMARY KEY, note text, amount numeric)",
	"INSERT INTO orders (note, amount) SELECT 'n' || g, g FROM generate_series(1, 20000) g",
	"CREATE TABLE events (at int, what text)",
	"ALTER TABLE events REPLICA IDENTITY FULL",
	"INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 500) g",
	"CREATE TABLE metrics (id int, day date, v int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)",
	"CREATE TABLE metrics_a PARTITION OF metrics FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
	"CREATE TABLE metrics_b PARTITION OF metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
	"INSERT INTO metrics SELECT g, date '2025-07-01' + g % 300, g FROM generate_series(1, 1000) g",
	"CREATE TABLE scratch (id int PRIMARY KEY)",
	"INSERT INTO scratch SELECT generate_series(1, 100)",
}

// changesAfterCopy exercise every kind of change replication must carry.
var changesAfterCopy = []string{
	"INSERT INTO orders (note, amount) VALUES ('late', 1)",
	"UPDATE orders SET amount = amount + 1 WHERE id % 97 = 0",
	"DELETE FROM orders WHERE id % 101 = 0",
	"UPDATE events SET what = 'changed' WHERE at < 10",
	"DELETE FROM events WHERE at BETWEEN 20 AND 30",
	"INSERT INTO metrics VALUES (5000, '2026-03-01', 1)",
	"UPDATE metrics SET v = -v WHERE id % 50 = 0",
	"DELETE FROM metrics WHERE id % 77 = 0",
	"TRUNCATE scratch",
}

func liveConfig(src, dst *cluster.Cluster, policy string) string {
	return fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\nmethod: replication\ndatabases: {include: [shop]}\n%s",
		src.URI("postgres"), dst.URI("postgres"), policy)
}

// writer inserts into orders until stopped, returning how many rows.
func writer(t *testing.T, c *cluster.Cluster) (stop func() int64) {
	return writerAt(t, c.URI("shop"))
}

// writerAt is writer connected to uri.
func writerAt(t *testing.T, uri string) (stop func() int64) {
	conn := pgtest.ConnectURI(t, uri)
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := conn.Exec(ctx, "INSERT INTO orders (note, amount) VALUES ('live', 1)"); err == nil {
				n.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	return func() int64 { cancel(); wg.Wait(); return n.Load() }
}

// assertReplicated checks a finished cut-over: the source database shop
// refuses new connections (the freeze), cleanup --unfreeze lifts it, and
// then both sides hold the same rows and sequences, with no replication
// object left.
func assertReplicated(t *testing.T, src, dst *cluster.Cluster, cfg string) {
	t.Helper()
	assertFrozen(t, src, "shop")
	if r := runBin(t, nil, "cleanup", "-c", cfg, "--unfreeze"); r.code != 0 || !strings.Contains(r.stdout, "lifted the write freeze of source database shop") {
		t.Fatalf("cleanup --unfreeze: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertSameRows(t, src, dst, "shop")
	if s, d := sequences(t, src, "shop"), sequences(t, dst, "shop"); s != d {
		t.Errorf("sequences = %s, want %s", d, s)
	}
	for _, c := range []*cluster.Cluster{src, dst} {
		left := pgtest.QueryString(t, c, "postgres", `SELECT concat_ws(',',
			(SELECT string_agg(slot_name, ',') FROM pg_replication_slots),
			(SELECT string_agg(subname, ',') FROM pg_subscription))`)
		if left != "" {
			t.Errorf("replication objects left: %s", left)
		}
	}
	if pubs := pgtest.QueryString(t, src, "shop", "SELECT count(*)::text FROM pg_publication"); pubs != "0" {
		t.Errorf("%s publications left on the source", pubs)
	}
}

// assertSameRows compares every table of db on both sides (ordered md5).
func assertSameRows(t *testing.T, src, dst *cluster.Cluster, db string) {
	t.Helper()
	want, got := tableDigests(t, src, db), tableDigests(t, dst, db)
	for table, w := range want {
		if got[table] != w {
			t.Errorf("%s.%s = %s on the target, want %s", db, table, got[table], w)
		}
	}
}

// assertFrozen checks that a new session of the superuser cannot enter db.
func assertFrozen(t *testing.T, c *cluster.Cluster, db string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.URI(db))
	if err == nil {
		conn.Close(context.Background())
		t.Fatalf("a new connection to the source database %s succeeded after the cut-over; want it refused (frozen)", db)
	}
	if !strings.Contains(err.Error(), "not currently accepting connections") {
		t.Fatalf("connect to the frozen source database %s: %v; want it refused as not accepting connections", db, err)
	}
}

// TestReplicationLiveCutover copies while a writer runs, replicates
// inserts, updates, deletes and a TRUNCATE, then cuts over declaratively:
// the same file with stop: true plans only the cut-over. With lostState
// the state directory is deleted first and the servers alone tell.
func TestReplicationLiveCutover(t *testing.T) {
	t.Parallel()
	for _, lostState := range []bool{false, true} {
		t.Run(fmt.Sprintf("lost state %v", lostState), func(t *testing.T) {
			src, dst, cfg := liveShop(t, "")
			env := []string{"PGHAUL_LAG_POLL=200ms"}
			stop := writer(t, src)
			r := runBin(t, env, "apply", "-c", cfg)
			written := stop()
			if r.code != 0 || !strings.Contains(r.stdout, "running") {
				t.Fatalf("apply (stop: false): exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if written == 0 {
				t.Fatal("the writer wrote nothing during apply")
			}
			pgtest.Exec(t, src, "shop", changesAfterCopy...)
			if lostState {
				os.RemoveAll(cfg + ".state")
			}
			writeTo(t, cfg, liveConfig(src, dst, "replication: {max_lag_bytes: 0, stop: true}\n"))
			p := runBin(t, env, "plan", "-c", cfg, "--format", "json")
			var kinds []string
			for _, k := range []string{"copy_data", "create_publication", "wait_for_lag", "freeze_writes", "fence", "sync_sequences", "sync_large_objects", "verify_cutover", "stop_replication"} {
				if strings.Contains(p.stdout, `"kind": "`+k+`"`) {
					kinds = append(kinds, k)
				}
			}
			want := "copy_data,create_publication,wait_for_lag,freeze_writes,fence,sync_sequences,sync_large_objects,verify_cutover,stop_replication"
			if lostState {
				want = "wait_for_lag,freeze_writes,fence,sync_sequences,sync_large_objects,verify_cutover,stop_replication"
			}
			if p.code != 0 || strings.Contains(p.stdout, `"no-write-freeze"`) || strings.Join(kinds, ",") != want {
				t.Errorf("plan of the cut-over: exit %d, step kinds %v, want %s\n%s\n%s", p.code, kinds, want, p.stdout, p.stderr)
			}
			r = runBin(t, env, "apply", "-c", cfg)
			if r.code != 0 || !strings.Contains(r.stdout, "done") {
				t.Fatalf("apply (stop: true): exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			assertReplicated(t, src, dst, cfg)
			// Some of the writer's rows were deleted after the copy; the rest
			// arrived exactly once.
			live := "SELECT count(*)::text FROM orders WHERE note = 'live'"
			if got, want := pgtest.QueryString(t, dst, "shop", live), pgtest.QueryString(t, src, "shop", live); got != want || got == "0" {
				t.Errorf("target has %s rows of the writer, source %s (written %d)", got, want, written)
			}
		})
	}
}

// TestReplicationResumesAfterCrashes crashes apply during the copy (the
// rerun keeps what finished under the slot's snapshot, or starts over
// under a new slot when nothing did), after the tables and during the
// large objects, and during the lag wait, then changes the source and
// reruns to the cut-over. Before the large objects' step resumed under the
// old slot, the rerun made a new slot and kept the tables: the changes
// made between the two slots were lost.
func TestReplicationResumesAfterCrashes(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"copy:shop/public.orders", "lo:shop", "lag:shop"} {
		t.Run(point, func(t *testing.T) {
			src, dst, cfg := liveShop(t, cutoverPolicy, "SELECT lo_from_bytea(0, convert_to('object ' || g, 'UTF8')) FROM generate_series(1, 20) g")
			env := []string{"PGHAUL_LAG_POLL=200ms"}
			r := runBin(t, append(env, "PGHAUL_CRASH_AT="+point), "apply", "-c", cfg)
			if r.code != 128+int(syscall.SIGKILL) {
				t.Fatalf("apply did not crash at %s: exit %d\n%s", point, r.code, r.stderr)
			}
			pgtest.Exec(t, src, "shop", changesAfterCopy...)
			r = runBin(t, env, "apply", "-c", cfg)
			if r.code != 0 {
				t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if point == "copy:shop/public.orders" && !strings.Contains(r.stderr, "a snapshot cannot be resumed") && !strings.Contains(r.stderr, "resuming the copy under slot") {
				t.Errorf("the rerun does not say how the copy goes on:\n%s", r.stderr)
			}
			if point == "lo:shop" && strings.Contains(r.stderr, "cannot be resumed") {
				t.Errorf("the rerun made a new slot after the tables were copied:\n%s", r.stderr)
			}
			assertReplicated(t, src, dst, cfg)
		})
	}
}

// liveShop starts a pair whose source has the live shop database
// (liveSource, then sourceSQL) and writes the file that migrates it by
// replication under policy.
func liveShop(t *testing.T, policy string, sourceSQL ...string) (src, dst *cluster.Cluster, cfg string) {
	t.Helper()
	src, dst = pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", append(slices.Clone(liveSource), sourceSQL...)...)
	cfg = writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "")
	writeTo(t, cfg, liveConfig(src, dst, policy))
	return src, dst, cfg
}

// replicating migrates the live source's shop database with stop: false
// and returns the pair, the file and the environment of the runs.
func replicating(t *testing.T, sourceSQL ...string) (src, dst *cluster.Cluster, cfg string, env []string) {
	t.Helper()
	src, dst, cfg = liveShop(t, "", sourceSQL...)
	env = []string{"PGHAUL_LAG_POLL=100ms"}
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	return src, dst, cfg, env
}

// TestReplicationDrift: a column added on the source while replicating is
// reported by name; replication is left running.
func TestReplicationDrift(t *testing.T) {
	t.Parallel()
	src, dst, cfg, env := replicating(t)
	pgtest.Exec(t, src, "shop", "ALTER TABLE events ADD COLUMN extra int")
	writeTo(t, cfg, liveConfig(src, dst, "replication: {max_lag_bytes: 0, stop: true}\n"))
	r := runBin(t, env, "apply", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "table public.events has columns") || !strings.Contains(r.stderr, "replication is left running") {
		t.Errorf("apply after a column was added: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if subs := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM pg_subscription WHERE subenabled"); subs != "1" {
		t.Errorf("%s enabled subscriptions on the target, want 1 (left running)", subs)
	}
	// Fixing the target resolves it.
	pgtest.Exec(t, dst, "shop", "ALTER TABLE events ADD COLUMN extra int")
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply after fixing the target: exit %d\n%s", r.code, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestStatusAndCleanup: status shows a replicating database with its
// subscription and lag; cleanup drops exactly this migration's objects and
// is safe to run twice.
func TestStatusAndCleanup(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop", "CREATE DATABASE other")
	pgtest.Exec(t, src, "shop", liveSource...)
	pgtest.Exec(t, src, "other", "CREATE TABLE t (id int PRIMARY KEY)", "CREATE PUBLICATION not_ours FOR ALL TABLES",
		"SELECT pg_create_logical_replication_slot('not_ours_slot', 'pgoutput')")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "")
	writeTo(t, cfg, liveConfig(src, dst, ""))
	if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	s := runBin(t, []string{"COLUMNS=200"}, "status", "-c", cfg)
	if s.code != 0 || !strings.Contains(s.stdout, "| shop ") || !strings.Contains(s.stdout, "enabled, worker running") || !strings.Contains(s.stdout, "running") {
		t.Errorf("status: exit %d\n%s\n%s", s.code, s.stdout, s.stderr)
	}
	// Off a terminal without COLUMNS, the table fits 100 columns.
	s = runBin(t, nil, "status", "-c", cfg)
	for _, l := range strings.Split(s.stdout, "\n") {
		if len(l) > 100 && strings.HasPrefix(l, "|") {
			t.Errorf("status: a table line of %d characters:\n%s", len(l), s.stdout)
			break
		}
	}
	s = runBin(t, nil, "status", "-c", cfg, "--format", "json")
	if s.code != 0 || !strings.Contains(s.stdout, `"subscription": "enabled"`) || !strings.Contains(s.stdout, `"lag_bytes"`) || !strings.Contains(s.stdout, `"wal_status": "reserved"`) {
		t.Errorf("status --format json: exit %d\n%s\n%s", s.code, s.stdout, s.stderr)
	}
	dry := runBin(t, nil, "cleanup", "-c", cfg, "--dry-run")
	if dry.code != 0 || strings.Count(dry.stdout, "would drop") != 3 {
		t.Errorf("cleanup --dry-run: exit %d\n%s\n%s", dry.code, dry.stdout, dry.stderr)
	}
	if slots := pgtest.QueryString(t, src, "postgres", "SELECT count(*)::text FROM pg_replication_slots"); slots != "2" {
		t.Errorf("--dry-run dropped something: %s slots", slots)
	}
	c := runBin(t, nil, "cleanup", "-c", cfg)
	if c.code != 0 || strings.Count(c.stdout, "dropped") != 3 || !strings.Contains(c.stdout, "subscription pghaul_shop_") {
		t.Errorf("cleanup: exit %d\n%s\n%s", c.code, c.stdout, c.stderr)
	}
	again := runBin(t, nil, "cleanup", "-c", cfg)
	if again.code != 0 || !strings.Contains(again.stdout, "nothing to clean up") {
		t.Errorf("cleanup twice: exit %d\n%s", again.code, again.stdout)
	}
	if got := pgtest.QueryString(t, src, "postgres", "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"); got != "not_ours_slot" {
		t.Errorf("slots after cleanup = %s, want only not_ours_slot", got)
	}
	if got := pgtest.QueryString(t, src, "other", "SELECT string_agg(pubname, ',') FROM pg_publication"); got != "not_ours" {
		t.Errorf("publications of other = %s, want not_ours untouched", got)
	}
	if got := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM pg_subscription"); got != "0" {
		t.Errorf("%s subscriptions left on the target", got)
	}
}

// TestReplicationWaitTimeout: a lag policy that does not hold within
// wait_timeout ends apply with exit 1 and status waiting, replication left
// running; once it can hold, apply finishes the cut-over.
func TestReplicationWaitTimeout(t *testing.T) {
	t.Parallel()
	src, dst, cfg, env := replicating(t)
	sub := pgtest.QueryString(t, dst, "shop", "SELECT subname FROM pg_subscription")
	pgtest.Exec(t, dst, "shop", "ALTER SUBSCRIPTION "+sub+" DISABLE")
	// The apply worker ends a moment after DISABLE: a row written before
	// that would still arrive.
	waitFor(t, "the apply worker to stop", func() bool {
		return pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM pg_stat_subscription WHERE pid IS NOT NULL") == "0"
	})
	pgtest.Exec(t, src, "shop", "INSERT INTO orders (note) VALUES ('while paused')")
	writeTo(t, cfg, liveConfig(src, dst, "replication: {max_lag_bytes: 0, stop: true, wait_timeout: 2s}\n"))
	r := runBin(t, env, "apply", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "wait_timeout") || !strings.Contains(r.stdout, "waiting") {
		t.Fatalf("apply with a paused subscription: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, src, "postgres", "SELECT count(*)::text FROM pg_replication_slots"); got != "1" {
		t.Errorf("%s slots after the timeout, want the migration's one left running", got)
	}
	if s := runBin(t, nil, "status", "-c", cfg); !strings.Contains(s.stdout, "waiting") || !strings.Contains(s.stdout, "disabled") {
		t.Errorf("status after the timeout:\n%s", s.stdout)
	}
	pgtest.Exec(t, dst, "shop", "ALTER SUBSCRIPTION "+sub+" ENABLE")
	writeTo(t, cfg, liveConfig(src, dst, "replication: {max_lag_bytes: 0, stop: true, wait_timeout: 2m}\n"))
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply once replication runs again: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicationUnreachableSource: a source address the target server
// cannot use is a finding of plan (the target tries it, rolled back); one
// that goes wrong between runs fails at the publication step, before any
// copy; fixing source.uri_from_target resumes the same migration.
func TestReplicationUnreachableSource(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", liveSource...)
	policy := "replication: {max_lag_bytes: 0, stop: true}\n"
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "")
	unreachable := strings.Replace(src.URI("postgres"), fmt.Sprint(src.Port), "1", 1)
	bad := strings.Replace(liveConfig(src, dst, policy), "}\ntarget:", fmt.Sprintf(", uri_from_target: %q}\ntarget:", unreachable), 1)
	writeTo(t, cfg, bad)
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	if p := runBin(t, env, "plan", "-c", cfg, "--format", "json"); p.code != 2 || !strings.Contains(p.stdout, `"subscription-connection-refused"`) {
		t.Errorf("plan with an unreachable uri_from_target: exit %d, want 2 and subscription-connection-refused\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	if got := pgtest.QueryString(t, dst, "postgres", "SELECT count(*)::text FROM pg_subscription"); got != "0" {
		t.Errorf("plan left %s subscriptions on the target", got)
	}
	// Planned with a good address, stopped before the publication step, then
	// resumed with a bad one (a policy key: the state is kept).
	writeTo(t, cfg, liveConfig(src, dst, policy))
	if r := runBin(t, append(env, "PGHAUL_CRASH_AT=before:create_publication"), "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not stop before the publication step: exit %d\n%s", r.code, r.stderr)
	}
	writeTo(t, cfg, bad)
	r := runBin(t, env, "apply", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "step db:shop/publication: the target server cannot connect to the source") ||
		!strings.Contains(r.stderr, "set source.uri_from_target") {
		t.Fatalf("apply with an unreachable uri_from_target: exit %d, want 1 and the publication step's error\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "db:shop/copy-data") {
		t.Errorf("the copy started before the subscription was known to fail:\n%s", r.stderr)
	}
	writeTo(t, cfg, liveConfig(src, dst, policy))
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 || !strings.Contains(r.stderr, "resuming:") {
		t.Fatalf("apply with uri_from_target fixed: exit %d, want 0 and a resumed run\n%s", r.code, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestOrphanSlots: a pghaul slot of another target (one rebuilt since,
// say) is listed by plan with the WAL it retains, plain cleanup leaves it,
// and cleanup --orphans drops it.
func TestOrphanSlots(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", liveSource...)
	pgtest.Exec(t, src, "shop", "SELECT pg_create_logical_replication_slot('pghaul_shop_deadbeef_slot', 'pgoutput')",
		"INSERT INTO orders (note) SELECT 'wal' FROM generate_series(1, 1000)")
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "method: replication\ndatabases: {include: [shop]}\n")
	p := runBin(t, nil, "plan", "-c", cfg, "--format", "json")
	if p.code != 0 || !regexp.MustCompile(`slot pghaul_shop_deadbeef_slot \(shop, inactive, retains [0-9.]+ [KM]iB of WAL, wal_status reserved\)`).MatchString(p.stdout) {
		t.Errorf("plan does not list the orphan slot with its WAL: exit %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	if r := runBin(t, nil, "cleanup", "-c", cfg); strings.Contains(r.stdout, "deadbeef") {
		t.Errorf("cleanup without --orphans touched the orphan:\n%s", r.stdout)
	}
	dry := runBin(t, nil, "cleanup", "-c", cfg, "--orphans", "--dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "would drop orphan slot pghaul_shop_deadbeef_slot") {
		t.Errorf("cleanup --orphans --dry-run: exit %d\n%s\n%s", dry.code, dry.stdout, dry.stderr)
	}
	r := runBin(t, nil, "cleanup", "-c", cfg, "--orphans")
	if r.code != 0 || !strings.Contains(r.stdout, "dropped orphan slot pghaul_shop_deadbeef_slot in source database shop (retained") {
		t.Errorf("cleanup --orphans: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, src, "postgres", "SELECT count(*)::text FROM pg_replication_slots"); got != "0" {
		t.Errorf("%s slots left after cleanup --orphans", got)
	}
}

// TestFailedTargetLeavesNoSlot: when the target's first steps fail, the
// slot and publication the source steps made alongside are removed (the
// slot would hold WAL with nothing to read it), and the rerun makes them
// again and migrates.
func TestFailedTargetLeavesNoSlot(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", liveSource...)
	cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "")
	writeTo(t, cfg, liveConfig(src, dst, cutoverPolicy))
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	r := runBin(t, append(env, "PGHAUL_FAIL_AT=step:db:shop/configure-database"), "apply", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "injected failure") || !strings.Contains(r.stderr, "which nothing would replicate from") {
		t.Fatalf("apply with the target's step failing: exit %d\n%s", r.code, r.stderr)
	}
	if got := pgtest.QueryString(t, src, "shop", "SELECT concat((SELECT count(*) FROM pg_replication_slots), '/', (SELECT count(*) FROM pg_publication))"); got != "0/0" {
		t.Errorf("slots/publications left on the source after the failed run: %s", got)
	}
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestApplyWorkerFailing: a subscription whose apply worker fails on every
// change (here a constraint only the target has) fails the lag wait within
// a few retries, saying so, instead of waiting out wait_timeout; once the
// cause is gone the rerun cuts over.
func TestApplyWorkerFailing(t *testing.T) {
	t.Parallel()
	src, dst, cfg, env := replicating(t)
	pgtest.Exec(t, dst, "shop", "ALTER TABLE orders ADD CONSTRAINT no_bad CHECK (note IS DISTINCT FROM 'bad')")
	pgtest.Exec(t, src, "shop", "INSERT INTO orders (note) VALUES ('bad')")
	waitFor(t, "the apply worker to fail", func() bool {
		return pgtest.QueryString(t, dst, "shop", "SELECT coalesce(max(apply_error_count), 0)::text FROM pg_stat_subscription_stats") != "0"
	})
	writeTo(t, cfg, liveConfig(src, dst, "replication: {max_lag_bytes: 0, stop: true, wait_timeout: 10m}\n"))
	r := runBin(t, env, "apply", "-c", cfg)
	// Between two of the worker's attempts the slot can look caught up for
	// a moment; then the fence finds the stream gone and aborts. Either way
	// apply stops with exit 1 and nothing of the row is lost.
	if r.code != 1 || !strings.Contains(r.stderr, "keeps failing") && !strings.Contains(r.stderr, "stopped while the source refuses connections") {
		t.Fatalf("apply with a failing apply worker: exit %d, want 1 and the worker or its stream named\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*)::text FROM orders WHERE note = 'bad'"); got != "0" {
		t.Fatalf("the target has the row its constraint refuses")
	}
	pgtest.Exec(t, dst, "shop", "ALTER TABLE orders DROP CONSTRAINT no_bad")
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply once the worker can apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestReplicationTableCreatedAfterThePlan: under a FOR ALL TABLES
// publication a table created after the plan, before the slot, is taken
// into the copy under the slot's snapshot and replicated. The copy is
// interrupted before it; the rerun resumes under the slot, keeping the
// planned tables, and the subscription copies it (before, the resumed copy knew the planned
// tables only: the new one stayed empty and the publication that replaced
// FOR ALL TABLES left it out). Rows written to it meanwhile arrive, and the
// cut-over compares it.
func TestReplicationTableCreatedAfterThePlan(t *testing.T) {
	t.Parallel()
	src, dst, cfg := liveShop(t, cutoverPolicy+"parallel: {tables: 1}\n")
	env := []string{"PGHAUL_LAG_POLL=200ms"}
	if r := runBin(t, append(env, "PGHAUL_CRASH_AT=before:create_slot"), "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the slot: exit %d\n%s", r.code, r.stderr)
	}
	if all := pgtest.QueryString(t, src, "shop", "SELECT string_agg(puballtables::text, ',') FROM pg_publication"); all != "true" {
		t.Fatalf("publication FOR ALL TABLES = %q, want true", all)
	}
	pgtest.Exec(t, src, "shop", "CREATE TABLE added (id int PRIMARY KEY, v text)", "INSERT INTO added SELECT g, md5(g::text) FROM generate_series(1, 300) g")
	// An unlogged one is refused: replication would not carry its changes.
	pgtest.Exec(t, src, "shop", "CREATE UNLOGGED TABLE added_unlogged (id int)")
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 1 || !strings.Contains(r.stderr, "(public.added_unlogged) is unlogged: replication does not carry unlogged tables") {
		t.Fatalf("apply with an unlogged table created after the plan: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "shop", "DROP TABLE added_unlogged")
	// The planned tables come first (one stream): the last of them done and
	// recorded, the new one not begun.
	r := runBin(t, append(env, "PGHAUL_CRASH_AT=copied:shop/5"), "apply", "-c", cfg)
	if r.code != 128+int(syscall.SIGKILL) || !strings.Contains(r.stderr, "shop: 1 table created on the source after the plan is copied too: public.added") {
		t.Fatalf("apply did not take the new table, or did not crash before its copy: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "shop", append(slices.Clone(changesAfterCopy), "INSERT INTO added SELECT g, 'later' FROM generate_series(301, 350) g", "UPDATE added SET v = 'changed' WHERE id <= 10")...)
	// A source that cannot decode across a publication change (12, and
	// minor releases before May 2025) starts the copy over instead.
	r = runBin(t, env, "apply", "-c", cfg)
	resumed := strings.Contains(r.stderr, "the subscription copies 1 table") && strings.Contains(r.stderr, "public.added")
	if r.code != 0 || !resumed && !strings.Contains(r.stderr, "cannot resume") {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT count(*) FILTER (WHERE v = 'changed') || '/' || count(*) FROM added"); got != "10/350" {
		t.Errorf("added on the target: %s rows changed/all, want 10/350", got)
	}
	saved, _ := os.ReadFile(cfg + ".state/state.json")
	if !strings.Contains(string(saved), `"added":[{"schema":"public","name":"added"}]`) {
		t.Errorf("the state does not list the added table:\n%s", saved)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestReplicationUnpublishedNewTable: under a publication that lists the
// planned tables (a filter makes it FOR TABLE), a table created on the
// source while replicating is carried by nothing; the wait reports it
// as drift, where before the cut-over switched without it. Dropping it on
// the source resolves it.
func TestReplicationUnpublishedNewTable(t *testing.T) {
	t.Parallel()
	filter := "tables: {skip: [shop.public.scratch]}\n"
	src, dst, cfg := liveShop(t, filter)
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	if all := pgtest.QueryString(t, src, "shop", "SELECT string_agg(puballtables::text, ',') FROM pg_publication"); all != "false" {
		t.Fatalf("publication FOR ALL TABLES = %q, want false", all)
	}
	pgtest.Exec(t, src, "shop", "CREATE TABLE newer (id int PRIMARY KEY)", "INSERT INTO newer VALUES (1)")
	writeTo(t, cfg, liveConfig(src, dst, cutoverPolicy+filter))
	r := runBin(t, env, "apply", "-c", cfg)
	// public.scratch, which the filter skips, is carried by nothing either,
	// and rightly so.
	if r.code != 1 || !strings.Contains(r.stderr, "table public.newer is new on the source and publication") || strings.Contains(r.stderr, "table public.scratch ") {
		t.Fatalf("apply after a table was created: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	pgtest.Exec(t, src, "shop", "DROP TABLE newer")
	if r := runBin(t, env, "apply", "-c", cfg); r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("apply after the table was dropped: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, nil, "cleanup", "-c", cfg, "--unfreeze"); r.code != 0 {
		t.Fatalf("cleanup --unfreeze: exit %d\n%s", r.code, r.stderr)
	}
	want, got := tableDigests(t, src, "shop"), tableDigests(t, dst, "shop")
	for table, w := range want {
		if table != "public.scratch" && got[table] != w {
			t.Errorf("%s = %s on the target, want %s", table, got[table], w)
		}
	}
}

// TestReplicationTableDroppedAfterThePlan: a planned partition dropped on
// the source before the publication (a filter makes it FOR TABLE) is left
// out of it and of the copy, and the cut-over compares the rest, where
// creating the publication (12) or the copy stopped and asked to start
// over.
func TestReplicationTableDroppedAfterThePlan(t *testing.T) {
	t.Parallel()
	filter := "tables: {skip: [shop.public.scratch]}\n"
	src, dst, cfg := liveShop(t, cutoverPolicy+filter)
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	if r := runBin(t, append(env, "PGHAUL_CRASH_AT=before:create_publication"), "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash before the publication: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "shop", "DROP TABLE metrics_a", "DROP TABLE events")
	r := runBin(t, env, "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "shop: 2 tables of the plan were dropped on the source since, and are not migrated: public.events, public.metrics_a") {
		t.Fatalf("apply after tables were dropped: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, nil, "cleanup", "-c", cfg, "--unfreeze"); r.code != 0 {
		t.Fatalf("cleanup --unfreeze: exit %d\n%s", r.code, r.stderr)
	}
	if got := pgtest.QueryString(t, dst, "shop", "SELECT concat_ws(',', to_regclass('public.events'), to_regclass('public.metrics_a'))"); got != "" {
		t.Errorf("the target has the dropped tables: %s", got)
	}
	assertCopied(t, src, dst, "shop", "public.orders", "public.metrics_b")
}
