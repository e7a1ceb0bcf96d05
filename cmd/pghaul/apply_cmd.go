package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// ApplyCmd carries out the plan with resumable checkpoints.
type ApplyCmd struct {
	Config        string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	PlanFile      string `arg:"" optional:"" type:"path" placeholder:"PLAN" help:"A plan saved with plan -o; refused when stale (exit 3)."`
	ResetState    bool   `help:"Forget the state directory's progress and start over."`
	ResumeTables  bool   `help:"When a database's copy restarts, keep its finished tables (consistent only if the source took no writes)."`
	ShowPasswords bool   `help:"Print the placeholder passwords set on new roles."`

	view *liveView
	// env is the tools probed for this run's plan, reused to pick them.
	env *plan.Env
}

const systemIDSQL = `SELECT system_identifier::text FROM pg_control_system()`

// Run plans (or loads the saved plan, or resumes the stored one) and applies.
func (c *ApplyCmd) Run(ctx context.Context, stdout io.Writer, errOut stderr, env Env, log *slog.Logger, cli *CLI) error {
	cfg, src, dst, err := loadEndpoints(c.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	store := &apply.FileStore{Dir: cfg.State}
	if err := store.Open(); err != nil {
		return err
	}
	lock, key, err := lockMigration(ctx, cfg, src, dst)
	if err != nil {
		return err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	if c.ResetState {
		if err := store.Reset(); err != nil {
			return fmt.Errorf("reset state: %w", err)
		}
		log.Info("state reset", "dir", cfg.State)
	}
	state, fresh, err := c.state(ctx, cfg, src, dst, store, key, lock, log)
	if err != nil {
		return err
	}
	if !fresh {
		done, total := state.Done(), len(state.Plan.Steps)
		if state.Complete() {
			fmt.Fprintf(stdout, "nothing to do: the migration is complete (%d of %d steps done); state in %s\n", done, total, cfg.State)
			return c.result(stdout, state, nil, 0, 0)
		}
		log.Info(fmt.Sprintf("resuming: %d of %d steps done", done, total), "state", cfg.State)
	}
	events := eventLogger(log)
	if isTerminal(errOut.Writer) && cli.LogFormat == "text" {
		view, viewLog := newLiveView(errOut.Writer, cli.LogFormat, cli.Debug)
		defer view.Close()
		c.view = view
		events, log = view.Event, viewLog
	}
	return c.apply(ctx, stdout, cfg, src, dst, store, state, log, events)
}

// lockDatabases takes the locks of the plan's target databases (held
// with the migration's lock; taking one again is a no-op).
func lockDatabases(ctx context.Context, lock *apply.Lock, p *plan.Plan) error {
	var names []string
	for _, d := range p.Databases {
		names = append(names, d.Name)
	}
	return lock.Databases(ctx, names)
}

// lockMigration takes the migration's lock on the target, keyed by its
// state key (which it returns): one apply or cleanup of a migration at a
// time.
func lockMigration(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint) (*apply.Lock, stateKeys, error) {
	key, err := stateKey(ctx, cfg, src, dst)
	if err != nil {
		return nil, key, err
	}
	lockConn, err := dst.Connect(ctx, "", pg.Options{})
	if err != nil {
		return nil, key, err
	}
	lock, err := apply.AcquireLock(ctx, lockConn, cfg.State, time.Now(), key.current, key.earlier)
	return lock, key, err
}

// stateKeys are a migration's state key, and the key an earlier pghaul
// gave it (config.EarlierStateKey).
type stateKeys struct{ current, earlier string }

// matches reports whether a stored key is this migration's.
func (k stateKeys) matches(stored string) bool { return stored == k.current || stored == k.earlier }

// stateKey reads both system identifiers for the state key.
func stateKey(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint) (stateKeys, error) {
	var ids [2]string
	var errs [2]error
	var wg sync.WaitGroup
	for i, ep := range []*pg.Endpoint{src, dst} {
		wg.Go(func() { ids[i], errs[i] = systemID(ctx, ep) })
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		return stateKeys{}, err
	}
	return stateKeys{current: cfg.StateKey(ids[0], ids[1]), earlier: cfg.EarlierStateKey(ids[0], ids[1])}, nil
}

func systemID(ctx context.Context, ep *pg.Endpoint) (string, error) {
	conn, err := ep.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer ep.Release(ctx, conn) // the plan's inspection reuses it
	var id string
	if err := conn.QueryRow(ctx, systemIDSQL).Scan(&id); err != nil {
		return "", fmt.Errorf("read the %s's system identifier: %s", ep.Side, pg.Describe(err))
	}
	return id, nil
}

// state loads the stored migration, or plans a new one (from the saved
// plan file when given). fresh reports a new state.
func (c *ApplyCmd) state(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, store *apply.FileStore, key stateKeys, lock *apply.Lock, log *slog.Logger) (*apply.State, bool, error) {
	st, err := store.Load()
	switch {
	case errors.Is(err, apply.ErrNoState):
	case err != nil:
		return nil, false, err
	case !key.matches(st.Key):
		return nil, false, fmt.Errorf("the state in %s belongs to another migration (what to migrate or the servers changed); rerun with --reset-state to start over, or set state: to another directory", cfg.State)
	case st.CheckRemoved() != nil:
		return nil, false, st.CheckRemoved()
	default:
		if err := lockDatabases(ctx, lock, &st.Plan); err != nil {
			return nil, false, err
		}
		if c.PlanFile != "" {
			if err := c.sameAsStored(st); err != nil {
				return nil, false, err
			}
		}
		changed := st.ApplyPolicy(cfg.Replication)
		if len(changed) > 0 {
			log.Info("the lag policy changed: cut-over steps updated", "databases", changed)
		}
		if len(changed) > 0 || st.Key != key.current {
			st.Key = key.current // an earlier pghaul's key is replaced
			if err := store.Save(st); err != nil {
				return nil, false, err
			}
		}
		return st, false, nil
	}
	pl, err := buildPlan(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, false, err
	}
	c.env = &pl.env
	p := pl.plan
	if c.PlanFile != "" {
		saved, err := readPlanFile(c.PlanFile)
		if err != nil {
			return nil, false, err
		}
		if err := saved.Check(cfg.File.Hash, pl.src, pl.dst); err != nil {
			return nil, false, &exitError{code: 3, err: err}
		}
		p = saved.Plan
	}
	// Another migration into the same target databases, running now, is
	// named before its rows become this plan's blockers.
	if err := lockDatabases(ctx, lock, &p); err != nil {
		return nil, false, err
	}
	if n := len(p.Blockers()); n > 0 {
		for _, f := range p.Blockers() {
			log.Error(f.Message, "code", f.Code, "object", f.Object, "fix", f.Fix)
		}
		return nil, false, &exitError{code: 2, err: fmt.Errorf("the plan has %d blocker(s); run pghaul plan to see them", n)}
	}
	st = &apply.State{Version: apply.StateVersion, Key: key.current, Plan: p, StartedAt: time.Now().UTC()}
	if err := store.Save(st); err != nil {
		return nil, false, err
	}
	return st, true, nil
}

func readPlanFile(path string) (*plan.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	pf, err := plan.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("read plan %s: %w", path, err)
	}
	return pf, nil
}

// sameAsStored accepts a plan file given with an existing state only when
// it is the plan the state started with.
func (c *ApplyCmd) sameAsStored(st *apply.State) error {
	saved, err := readPlanFile(c.PlanFile)
	if err != nil {
		return err
	}
	if saved.Plan.SourceFingerprint != st.Plan.SourceFingerprint || saved.Plan.TargetFingerprint != st.Plan.TargetFingerprint ||
		saved.Plan.ConfigHash != st.Plan.ConfigHash || len(saved.Plan.Steps) != len(st.Plan.Steps) {
		return fmt.Errorf("%s is not the plan this migration started with; rerun without it to resume, or with --reset-state to start over", c.PlanFile)
	}
	return nil
}

func (c *ApplyCmd) apply(ctx context.Context, stdout io.Writer, cfg *config.Config, src, dst *pg.Endpoint, store *apply.FileStore, st *apply.State, log *slog.Logger, events func(apply.Event)) error {
	tools, err := pickTools(ctx, cfg, st, c.env)
	if err != nil {
		return err
	}
	start, before := time.Now(), copiedBytes(st)
	m := &apply.Migration{Config: cfg, Source: src, Target: dst, Tools: tools, Store: store, State: st, ResumeTables: c.ResumeTables,
		Events: events, Log: log}
	if c.view != nil {
		m.ProgressEvery = 500 * time.Millisecond // a live view redraws often
	}
	if v, err := time.ParseDuration(os.Getenv("PGHAUL_LAG_POLL")); err == nil {
		m.LagPoll = v // a test knob, not a key of the file
	}
	runErr := m.Run(ctx)
	if c.view != nil {
		c.view.Close() // the bars go before the result tables
	}
	if ctx.Err() != nil {
		c.result(stdout, st, m.Placeholders(), time.Since(start), copiedBytes(st)-before)
		return &exitError{code: 130, err: errors.New("interrupted; finished tables and steps are saved: rerun apply to resume")}
	}
	if err := c.result(stdout, st, m.Placeholders(), time.Since(start), copiedBytes(st)-before); err != nil {
		return err
	}
	var wait *apply.WaitTimeoutError
	var abort *apply.CutoverAbortError
	if errors.As(runErr, &wait) || errors.As(runErr, &abort) {
		return &exitError{code: 1, err: runErr} // it says to rerun apply
	}
	if runErr != nil {
		return &exitError{code: 1, err: fmt.Errorf("%w; fix it and rerun apply to resume", runErr)}
	}
	return nil
}

// pickTools chooses pg_dump and pg_restore for the plan's servers.
func pickTools(ctx context.Context, cfg *config.Config, st *apply.State, probed *plan.Env) (apply.Tools, error) {
	if probed == nil {
		env := probeEnv(ctx, cfg.PGBin)
		probed = &env
	}
	env := *probed
	lo, hi := majorOf(st.Plan.Source.Version), majorOf(st.Plan.Target.Version)
	hi = max(lo, hi)
	d, ok1 := plan.PickTool(env.PGDump, lo, hi)
	r, ok2 := plan.PickTool(env.PGRestore, lo, hi)
	if !ok1 || !ok2 {
		return apply.Tools{}, &exitError{code: 2, err: fmt.Errorf("no pg_dump and pg_restore of a major between %d and %d (pg-dump-missing); install them or set pg_bin", lo, hi)}
	}
	return apply.Tools{PGDump: d.Path, PGRestore: r.Path}, nil
}

func majorOf(version string) int {
	head, _, _ := strings.Cut(version, ".")
	n, _ := strconv.Atoi(head)
	return n
}

// copiedBytes sums the bytes the migration's copies have committed.
func copiedBytes(st *apply.State) int64 {
	var n int64
	for _, d := range st.Databases {
		n += d.Bytes
	}
	return n
}
