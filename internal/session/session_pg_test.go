package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgtest"
	"github.com/pghaul/pghaul/internal/view"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// migration is a config, endpoints, an open store and the lock for a
// migration of src's database shop into dst, with extra YAML.
type migration struct {
	cfg      *config.Config
	src, dst *pg.Endpoint
	store    *state.FileStore
	lock     *state.Lock
	keys     Keys
}

func open(t *testing.T, src, dst *cluster.Cluster, extra string) *migration {
	t.Helper()
	dir := t.TempDir()
	doc := fmt.Sprintf("version: 1\nsource: {uri: %q}\ntarget: {uri: %q}\ndatabases: {include: [shop]}\nstate: %s\n%s",
		src.URI("postgres"), dst.URI("postgres"), filepath.Join(dir, "m.state"), extra)
	cfg, err := config.Parse([]byte(doc), filepath.Join(dir, "m.yaml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := &migration{cfg: cfg, store: &state.FileStore{Dir: cfg.State}}
	if m.src, err = pg.NewEndpoint("source", cfg.Source.URI); err != nil {
		t.Fatal(err)
	}
	if m.dst, err = pg.NewEndpoint("target", cfg.Target.URI); err != nil {
		t.Fatal(err)
	}
	if err := m.store.Open(); err != nil {
		t.Fatal(err)
	}
	if m.lock, m.keys, err = Lock(t.Context(), cfg, m.src, m.dst); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.lock.Release(context.Background())
		m.src.CloseIdle(context.Background())
		m.dst.CloseIdle(context.Background())
	})
	return m
}

func (m *migration) begin(t *testing.T, planFile string) (*state.State, bool, *plan.Env, error) {
	return Begin(t.Context(), Start{Config: m.cfg, Source: m.src, Target: m.dst, Store: m.store, Keys: m.keys, Lock: m.lock, PlanFile: planFile, Log: quiet})
}

// TestBeginPlansThenResumes: the first Begin plans and saves a new state;
// the next resumes it, and a changed lag policy replans its cut-over;
// the tools picked fit the servers; a state of another key is refused.
func TestBeginPlansThenResumes(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE orders (id int PRIMARY KEY)")
	m := open(t, src, dst, "method: replication\n")
	st, fresh, env, err := m.begin(t, "")
	if err != nil || !fresh || env == nil {
		t.Fatalf("first Begin: fresh %t, env %v, err %v", fresh, env, err)
	}
	if st.Key != m.keys.Current || !hasKind(st.Plan.Steps, plan.StepCreateSubscription) || hasKind(st.Plan.Steps, plan.StepStopReplication) {
		t.Errorf("new state: key %q (want %q), steps %v", st.Key, m.keys.Current, kinds(st.Plan.Steps))
	}
	tools, err := Tools(t.Context(), m.cfg, st, env)
	if err != nil || !strings.Contains(tools.PGDump, "pg_dump") {
		t.Errorf("Tools = %+v, %v", tools, err)
	}
	if _, err := Tools(t.Context(), m.cfg, st, &plan.Env{}); !errors.As(err, new(*ToolsError)) {
		t.Errorf("Tools without any pg_dump = %v, want a ToolsError", err)
	}

	m.cfg.Replication.Stop, m.cfg.Replication.MaxLagBytes = true, new(int64)
	again, fresh, _, err := m.begin(t, "")
	if err != nil || fresh {
		t.Fatalf("second Begin: fresh %t, err %v", fresh, err)
	}
	if !hasKind(again.Plan.Steps, plan.StepStopReplication) {
		t.Errorf("resumed with stop: true, steps %v: no cut-over", kinds(again.Plan.Steps))
	}
	saved, err := m.store.Load()
	if err != nil || !hasKind(saved.Plan.Steps, plan.StepStopReplication) {
		t.Errorf("the replanned state was not saved: %v", err)
	}

	saved.Key = "another migration"
	if err := m.store.Save(saved); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.begin(t, ""); err == nil || !strings.Contains(err.Error(), "belongs to another migration") {
		t.Errorf("Begin with another migration's state = %v", err)
	}
}

// TestBeginRefuses: a plan with blockers, a saved plan gone stale, and a
// saved plan that is not the state's own are refused with what to do,
// and nothing is saved.
func TestBeginRefuses(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE orders (id int PRIMARY KEY)")

	m := open(t, src, dst, "method: dump\n")
	pgtest.Exec(t, dst, "postgres", "CREATE DATABASE shop") // a target table with rows is a blocker
	pgtest.Exec(t, dst, "shop", "CREATE TABLE orders (id int PRIMARY KEY)", "INSERT INTO orders VALUES (1)")
	_, _, _, err := m.begin(t, "")
	var b *BlockedError
	if !errors.As(err, &b) || len(b.Blockers) == 0 {
		t.Fatalf("Begin with rows in a target table = %v, want a BlockedError", err)
	}
	if _, err := m.store.Load(); !errors.Is(err, state.ErrNoState) {
		t.Errorf("a refused plan left a state: %v", err)
	}
	pgtest.Exec(t, dst, "postgres", "DROP DATABASE shop WITH (FORCE)")

	pl, err := Plan(t.Context(), m.cfg, m.src, m.dst, quiet)
	if err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	f, err := os.Create(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.WriteFile(f, &pl.Plan, pl.Src, pl.Dst, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pgtest.Exec(t, src, "shop", "CREATE TABLE added (id int)")
	if _, _, _, err := m.begin(t, planFile); !errors.As(err, new(*StaleError)) || !strings.Contains(err.Error(), "added") {
		t.Errorf("Begin with a stale plan file = %v, want a StaleError naming the new table", err)
	}
	st, _, _, err := m.begin(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := SameAsStored(planFile, st); err == nil || !strings.Contains(err.Error(), "not the plan this migration started with") {
		t.Errorf("SameAsStored with another plan = %v", err)
	}
}

func hasKind(steps []plan.Step, k plan.StepKind) bool {
	return slices.ContainsFunc(steps, func(s plan.Step) bool { return s.Kind == k })
}

func kinds(steps []plan.Step) []plan.StepKind {
	var out []plan.StepKind
	for _, s := range steps {
		out = append(out, s.Kind)
	}
	return out
}

// TestWhatVerifyAndCleanupTouch: verify compares the tables the stored
// plan copies, with each database's sequences and large objects; cleanup
// computes the same replication names as the plan, and with nothing
// created drops nothing, even with --orphans, while a foreign inactive
// pghaul slot is an orphan it would drop.
func TestWhatVerifyAndCleanupTouch(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE orders (id int PRIMARY KEY)", "CREATE TABLE notes (id int PRIMARY KEY)")
	m := open(t, src, dst, "method: replication\ntables: {skip: [public.notes]}\n")
	st, _, _, err := m.begin(t, "")
	if err != nil {
		t.Fatal(err)
	}
	objects, err := VerifiedObjects(t.Context(), m.cfg, m.src, m.dst, quiet)
	if err != nil {
		t.Fatal(err)
	}
	shop := objects["shop"]
	if len(objects) != 1 || len(shop.Tables) != 1 || shop.Tables[0].Name != "orders" || !shop.Sequences || !shop.LargeObjects {
		t.Errorf("verify would compare %+v, want shop's orders (not the skipped notes), sequences and large objects", objects)
	}
	names, err := Names(t.Context(), m.cfg, m.src, m.dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := st.Plan.DatabaseNames("shop"); names["shop"] != want || want.Slot == "" {
		t.Errorf("cleanup's names for shop = %+v, the plan's %+v", names["shop"], want)
	}
	pgtest.Exec(t, src, "shop", "SELECT pg_create_logical_replication_slot('pghaul_shop_0badcafe_slot', 'pgoutput')")
	var out view.Cleanup
	if err := Cleanup(t.Context(), m.cfg, m.src, m.dst, m.store, st, CleanupOptions{DryRun: true, Orphans: true}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Actions) != 1 || out.Actions[0].Action != "would drop" || !strings.Contains(out.Actions[0].Object, "pghaul_shop_0badcafe_slot") {
		t.Errorf("cleanup --dry-run --orphans: %+v, want only the orphan slot", out.Actions)
	}
	if n := pgtest.QueryString(t, src, "postgres", "SELECT count(*)::text FROM pg_replication_slots"); n != "1" {
		t.Errorf("a dry run changed the slots: %s left", n)
	}
}
