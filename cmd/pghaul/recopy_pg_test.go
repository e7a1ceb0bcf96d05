package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
	"github.com/pghaul/pghaul/state"
)

// TestSnapshotCopyResumes kills apply (SIGKILL) while pgbench -c 2 writes
// to the source, once 1, half and all but one of the database's 9 tables
// are copied under the slot's snapshot (pgbench_accounts is most of its
// size), with a FOR ALL TABLES publication, and once half are with a FOR
// TABLE one. (A 12 source starts over: see apply.decodesAcrossDDL.) The rerun keeps the finished tables (their files on the target
// are the same before and after it), has the subscription copy exactly
// the unfinished ones again (the whole partition tree for a partition),
// reports those bytes, and cuts over with every table equal to the
// source's (ordered md5) and nothing left behind.
func TestSnapshotCopyResumes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		copied   int
		forTable bool
	}{{1, false}, {4, false}, {8, false}, {4, true}} {
		name := fmt.Sprintf("%d copied", tc.copied)
		if tc.forTable {
			name += ", FOR TABLE"
		}
		copied := tc.copied
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, dst := pgtest.Pair(t)
			pgbenchSource(t, src)
			cfg := writeConfig(t, src.URI("postgres"), dst.URI("postgres"), "")
			policy := "replication: {max_lag_bytes: 1048576, stop: true, wait_timeout: 180s}\n"
			if tc.forTable {
				// Filtered (of nothing here): a FOR TABLE publication, which
				// the resume changes with DROP TABLE and ADD TABLE.
				policy += "tables: {extension_tables: false}\n"
			}
			writeTo(t, cfg, liveConfig(src, dst, policy))
			env := []string{"PGHAUL_LAG_POLL=100ms"}
			stopBench := startPgbench(t, src, "shop", 2, "-R", "100")
			r := runBin(t, append(env, fmt.Sprintf("PGHAUL_CRASH_AT=copied:shop/%d", copied)), "apply", "-c", cfg)
			if r.code != 128+int(syscall.SIGKILL) {
				t.Fatalf("apply did not crash after %d tables: exit %d\n%s", copied, r.code, r.stderr)
			}
			if src.Major < 13 {
				// A 12 source can decode a transaction across a publication
				// change with stale catalog data: the rerun starts over.
				r = runBin(t, env, "apply", "-c", cfg)
				stopBench()
				if !strings.Contains(r.stderr, "a source before 13.21, 14.18, 15.13, 16.9 or 17.5 (this one: 12") {
					t.Fatalf("rerun on a 12 source: exit %d, want the copy started over\n%s\n%s", r.code, r.stdout, r.stderr)
				}
				if r.code != 0 && strings.Contains(r.stderr, "the subscription's stream from slot") {
					// Seen once in 8 runs on a 12 source: the stream stopped during
					// the freeze and could not reconnect; the cut-over aborted,
					// restored the source and asks for a rerun, as a user would.
					t.Logf("the cut-over aborted (the stream stopped in the freeze); rerunning as it asks")
					r = runBin(t, env, "apply", "-c", cfg)
				}
				if r.code != 0 {
					t.Fatalf("rerun on a 12 source: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
				}
				assertReplicated(t, src, dst, cfg)
				return
			}
			st := loadState(t, cfg)
			ds := st.Databases["shop"]
			var kept, again []string
			for _, tb := range st.Plan.CopiedTables()["shop"] {
				if ds.Tables[tb.String()].Status == state.StatusDone {
					kept = append(kept, tb.String())
				} else {
					again = append(again, tb.String())
				}
			}
			if len(kept) < copied || len(again) == 0 {
				t.Fatalf("after the crash the state has %d tables done (%v), want at least %d and not all", len(kept), kept, copied)
			}
			unfinished := slices.Clone(again)
			// From 13 the publication names a partition by its tree's root: a
			// finished partition keeps its place only with its whole tree.
			if src.Major >= 13 && slices.Contains(again, "public.metrics_a") != slices.Contains(again, "public.metrics_b") {
				for _, p := range []string{"public.metrics_a", "public.metrics_b"} {
					if i := slices.Index(kept, p); i >= 0 {
						kept = slices.Delete(kept, i, i+1)
						again = append(again, p)
					}
				}
			}
			files := relfilenodes(t, dst, kept)

			p := runBin(t, env, "plan", "-c", cfg)
			for _, tb := range unfinished {
				if !strings.Contains(p.stdout, tb) {
					t.Errorf("plan does not name %s as a table to copy again:\n%s", tb, p.stdout)
				}
			}
			if !strings.Contains(p.stdout, "copied again") {
				t.Errorf("plan does not say which tables are copied again:\n%s", p.stdout)
			}
			if s := runBin(t, nil, "status", "-c", cfg); !strings.Contains(s.stdout, "copied again") || !strings.Contains(s.stdout, unfinished[0]) {
				t.Errorf("status does not say which tables are copied again:\n%s\n%s", s.stdout, s.stderr)
			}

			r = runBin(t, env, "apply", "-c", cfg)
			bench := stopBench()
			if r.code != 0 || !strings.Contains(r.stdout, "done") {
				t.Fatalf("rerun: exit %d\n%s\n%s\npgbench:\n%s", r.code, r.stdout, r.stderr, bench)
			}
			if !strings.Contains(bench, "pgbench") {
				t.Fatalf("pgbench did not run:\n%s", bench)
			}
			if strings.Contains(r.stderr, "cannot resume") || strings.Contains(r.stderr, "cannot be resumed") {
				t.Fatalf("the rerun started the copy over:\n%s", r.stderr)
			}
			// The rerun names what it copies again, and how much.
			m := regexp.MustCompile(`the subscription copies (\d+) tables? \(([^)]*)\) again, each under its own: (.*)`).FindStringSubmatch(r.stderr)
			if m == nil {
				t.Fatalf("the rerun does not report what it copies again:\n%s", r.stderr)
			}
			t.Logf("the rerun: %s", m[0])
			named := strings.Split(strings.Trim(strings.TrimSpace(m[3]), `"`), ", ")
			slices.Sort(named)
			slices.Sort(again)
			if !slices.Equal(named, again) || m[1] != strconv.Itoa(len(again)) {
				t.Errorf("the rerun copies %s again, want exactly the unfinished %v", m[1]+": "+m[3], again)
			}
			assertReplicated(t, src, dst, cfg) // lifts the freeze, for the sizes below
			after := loadState(t, cfg).Databases["shop"]
			if after.RecopyBytes <= 0 || after.RecopyBytes >= sizeOf(t, src, append(slices.Clone(kept), again...)) {
				t.Errorf("recopied bytes %d: want more than 0 and less than the database's tables", after.RecopyBytes)
			}
			if want := sizeOf(t, src, again); after.RecopyBytes > want {
				t.Errorf("recopied bytes %d are more than the unfinished tables hold now (%d)", after.RecopyBytes, want)
			}
			if after.Bytes != keptBytes(ds, kept) {
				t.Errorf("pghaul's own copy holds %d bytes after the rerun, want the %d of the tables it kept", after.Bytes, keptBytes(ds, kept))
			}
			if got := relfilenodes(t, dst, kept); !slices.Equal(got, files) {
				t.Errorf("the kept tables were written again: files %v, were %v", got, files)
			}
		})
	}
}

func loadState(t *testing.T, cfg string) *state.State {
	t.Helper()
	st, err := (&state.FileStore{Dir: cfg + ".state"}).Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// relfilenodes are the tables' files on c: a truncate or a copy into a
// new file changes them.
func relfilenodes(t *testing.T, c *cluster.Cluster, tables []string) []string {
	t.Helper()
	var out []string
	for _, tb := range tables {
		out = append(out, tb+"="+pgtest.QueryString(t, c, "shop", "SELECT pg_relation_filenode($1::regclass)::text", tb))
	}
	return out
}

func sizeOf(t *testing.T, c *cluster.Cluster, tables []string) int64 {
	t.Helper()
	var n int64
	for _, tb := range tables {
		s, err := strconv.ParseInt(pgtest.QueryString(t, c, "shop", "SELECT pg_table_size($1::regclass)::text", tb), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		n += s
	}
	return n
}

func keptBytes(ds *state.DatabaseState, kept []string) int64 {
	var n int64
	for _, tb := range kept {
		n += ds.Tables[tb].Bytes
	}
	return n
}

// TestSnapshotCopyResumesAsNonSuperuser resumes a copy as the managed
// services' users: the source user owns the tables and publishes them
// FOR TABLE (ALTER PUBLICATION takes the unfinished ones out and back);
// from 16 the target user is no superuser either and refreshes the
// subscription it made (before 16 only superusers subscribe).
func TestSnapshotCopyResumesAsNonSuperuser(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t, pgtest.WithPassword("Sup3r-pw"))
	pgtest.Exec(t, src, "postgres", "CREATE ROLE app LOGIN REPLICATION PASSWORD 'App-pw 1'", "GRANT pg_signal_backend TO app", "CREATE DATABASE shop OWNER app")
	pgtest.Exec(t, src, "shop", append([]string{"SET ROLE app"}, liveSource...)...)
	target := dst.URI("postgres")
	if dst.Major >= 16 {
		pgtest.Exec(t, dst, "postgres", "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE REPLICATION PASSWORD 'Mig-pw 2'", "GRANT pg_create_subscription TO migrator")
		target = dst.URIAs("migrator", "Mig-pw 2", "postgres")
	}
	source := src.URIAs("app", "App-pw 1", "postgres")
	cfg := writeConfig(t, source, target, "method: replication\ndatabases: {include: [shop]}\nreplication: {max_lag_bytes: 1048576, stop: true, wait_timeout: 120s}\n")
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	// The application's writer: a freeze by a non-superuser cannot end a
	// superuser's session.
	stop := writerAt(t, src.URIAs("app", "App-pw 1", "shop"))
	r := runBin(t, append(env, "PGHAUL_CRASH_AT=copied:shop/2"), "apply", "-c", cfg)
	if r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash: exit %d\n%s", r.code, r.stderr)
	}
	if got := pgtest.QueryString(t, src, "shop", "SELECT puballtables::text FROM pg_publication"); got != "false" {
		t.Fatalf("the publication is FOR ALL TABLES = %s, want a FOR TABLE one", got)
	}
	r = runBin(t, env, "apply", "-c", cfg)
	if written := stop(); written == 0 {
		t.Fatal("the writer wrote nothing")
	}
	want := "resuming the copy under slot"
	if src.Major < 13 {
		want = "a source before 13.21" // it starts over (apply.decodesAcrossDDL)
	}
	if r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("rerun: exit %d, want 0 and %q\n%s\n%s", r.code, want, r.stdout, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestSnapshotCopyResumeCrashes kills the resuming run too: after it took
// the unfinished tables out of the publication, after it created the
// subscription, and after it put them back in the publication but before
// the refresh; and in the lag wait, after all of it (the publication then
// names every table again). The third run
// finishes, exact, after a writer inserted throughout.
func TestSnapshotCopyResumeCrashes(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"recopy:shop", "subscribed:shop", "republish:shop", "lag:shop"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			src, dst, cfg := liveShop(t, cutoverPolicy)
			env := []string{"PGHAUL_LAG_POLL=100ms"}
			stop := writer(t, src)
			for _, crash := range []string{"copied:shop/2", point} {
				if r := runBin(t, append(env, "PGHAUL_CRASH_AT="+crash), "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
					t.Fatalf("apply did not crash at %s: exit %d\n%s", crash, r.code, r.stderr)
				}
			}
			if written := stop(); written == 0 {
				t.Fatal("the writer wrote nothing")
			}
			if point == "lag:shop" {
				// Replaced by a FOR TABLE one while the tables were out, the
				// publication names every table again: 4 (a partition tree
				// by its root), 5 on 12 (the partitions themselves).
				want := "4"
				if src.Major < 13 {
					want = "5"
				}
				if got := pgtest.QueryString(t, src, "shop", "SELECT count(*)::text FROM pg_publication_tables"); got != want {
					t.Errorf("the publication has %s tables after the resumed copy, want %s", got, want)
				}
			}
			r := runBin(t, env, "apply", "-c", cfg)
			if r.code != 0 || strings.Contains(r.stderr, "cannot resume") {
				t.Fatalf("third run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			assertReplicated(t, src, dst, cfg)
		})
	}
}

// TestSnapshotCopyStartsOverWithoutItsSlot: when the interrupted copy's slot
// is gone, the rerun says why it cannot resume and copies the database again
// under a new slot, even with --resume-tables (kept under a new slot, the
// finished tables would miss the changes made between the two); the result
// is exact.
func TestSnapshotCopyStartsOverWithoutItsSlot(t *testing.T) {
	t.Parallel()
	src, dst, cfg := liveShop(t, cutoverPolicy)
	env := []string{"PGHAUL_LAG_POLL=100ms"}
	if r := runBin(t, append(env, "PGHAUL_CRASH_AT=copied:shop/2"), "apply", "-c", cfg); r.code != 128+int(syscall.SIGKILL) {
		t.Fatalf("apply did not crash: exit %d\n%s", r.code, r.stderr)
	}
	pgtest.Exec(t, src, "shop", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
	pgtest.Exec(t, src, "shop", changesAfterCopy...)
	r := runBin(t, env, "apply", "-c", cfg, "--resume-tables")
	if r.code != 0 || !strings.Contains(r.stderr, "cannot resume (the slot is gone)") || !strings.Contains(r.stderr, "--resume-tables is for the dump method") {
		t.Fatalf("rerun: exit %d, want 0, the slot named as the reason and --resume-tables set aside\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertReplicated(t, src, dst, cfg)
}

// TestCleanupDropsLeftSyncSlots: a table synchronisation slot of this
// migration's subscription (pg_<suboid>_sync_<relid>_<target system id>),
// which the target leaves on the source when it cannot reach it as the
// subscription is dropped, goes with the subscription; another
// subscription's is kept.
func TestCleanupDropsLeftSyncSlots(t *testing.T) {
	t.Parallel()
	src, dst, cfg, _ := replicating(t)
	ids := pgtest.QueryString(t, dst, "shop", "SELECT s.oid::text || ' ' || (SELECT system_identifier::text FROM pg_control_system()) FROM pg_subscription s")
	oid, sysid, _ := strings.Cut(ids, " ")
	n, _ := strconv.Atoi(oid)
	ours, other := fmt.Sprintf("pg_%d_sync_16999_%s", n, sysid), fmt.Sprintf("pg_%d_sync_16999_%s", n+1, sysid)
	pgtest.Exec(t, src, "shop", fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'pgoutput'), pg_create_logical_replication_slot('%s', 'pgoutput')", ours, other))
	c := runBin(t, nil, "cleanup", "-c", cfg)
	if c.code != 0 || !strings.Contains(c.stdout, ours) || strings.Contains(c.stdout, other) {
		t.Errorf("cleanup: exit %d, want %s dropped and %s untouched\n%s\n%s", c.code, ours, other, c.stdout, c.stderr)
	}
	if got := pgtest.QueryString(t, src, "postgres", "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"); got != other {
		t.Errorf("slots after cleanup = %s, want only %s", got, other)
	}
}
