package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// StaleError is a saved plan that no longer matches the file or the
// servers (exit 3).
type StaleError struct{ Err error }

func (e *StaleError) Error() string { return e.Err.Error() }
func (e *StaleError) Unwrap() error { return e.Err }

// BlockedError is a plan with blockers, which apply refuses (exit 2).
type BlockedError struct{ Blockers []plan.Finding }

func (e *BlockedError) Error() string {
	return fmt.Sprintf("the plan has %d blocker(s); run pghaul plan to see them", len(e.Blockers))
}

// ToolsError: no pg_dump and pg_restore fit the servers (exit 2).
type ToolsError struct{ Low, High int }

func (e *ToolsError) Error() string {
	return fmt.Sprintf("no pg_dump and pg_restore of a major between %d and %d (pg-dump-missing); install them or set pg_bin", e.Low, e.High)
}

// Start says how apply begins.
type Start struct {
	Config         *config.Config
	Source, Target *pg.Endpoint
	Store          *state.FileStore
	Keys           Keys
	Lock           *state.Lock
	// PlanFile is a plan saved with plan -o ("" to plan now).
	PlanFile string
	Log      *slog.Logger
}

// Begin loads the stored migration (replanned for a changed lag policy)
// or plans a new one, from the saved plan file when given, and saves its
// state. fresh reports a new state; env is what this run probed for its
// plan (nil when it resumed).
func Begin(ctx context.Context, s Start) (st *state.State, fresh bool, env *plan.Env, err error) {
	st, err = s.Store.Load()
	switch {
	case errors.Is(err, state.ErrNoState):
	case err != nil:
		return nil, false, nil, err
	case !s.Keys.Matches(st.Key):
		return nil, false, nil, fmt.Errorf("the state in %s belongs to another migration (what to migrate or the servers changed); rerun with --reset-state to start over, or set state: to another directory", s.Config.State)
	case st.CheckRemoved() != nil:
		return nil, false, nil, st.CheckRemoved()
	default:
		st, err := s.resume(ctx, st)
		return st, false, nil, err
	}
	pl, err := Plan(ctx, s.Config, s.Source, s.Target, s.Log)
	if err != nil {
		return nil, false, nil, err
	}
	p := pl.Plan
	if s.PlanFile != "" {
		saved, err := ReadPlanFile(s.PlanFile)
		if err != nil {
			return nil, false, nil, err
		}
		if err := saved.Check(s.Config.File.Hash, pl.Src, pl.Dst); err != nil {
			return nil, false, nil, &StaleError{Err: err}
		}
		p = saved.Plan
	}
	// Another migration into the same target databases, running now, is
	// named before its rows become this plan's blockers.
	if err := LockDatabases(ctx, s.Lock, &p); err != nil {
		return nil, false, nil, err
	}
	if b := p.Blockers(); len(b) > 0 {
		return nil, false, nil, &BlockedError{Blockers: b}
	}
	st = &state.State{Version: state.StateVersion, Key: s.Keys.Current, Plan: p, StartedAt: time.Now().UTC()}
	if err := s.Store.Save(st); err != nil {
		return nil, false, nil, err
	}
	return st, true, &pl.Env, nil
}

// resume takes up a stored migration of this key.
func (s Start) resume(ctx context.Context, st *state.State) (*state.State, error) {
	if err := LockDatabases(ctx, s.Lock, &st.Plan); err != nil {
		return nil, err
	}
	if s.PlanFile != "" {
		if err := SameAsStored(s.PlanFile, st); err != nil {
			return nil, err
		}
	}
	s.warnNewDatabases(ctx, st)
	changed := st.ApplyPolicy(s.Config.Replication)
	if len(changed) > 0 {
		s.Log.Info("the lag policy changed: cut-over steps updated", "databases", changed)
	}
	if len(changed) > 0 || st.Key != s.Keys.Current {
		st.Key = s.Keys.Current // an earlier pghaul's key is replaced
		if err := s.Store.Save(st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// newDatabasesSQL lists the source's databases that are no templates and
// take connections: those a plan may select.
const newDatabasesSQL = `SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1`

// warnNewDatabases names the databases the file selects on the source that
// the stored plan does not hold: created after it, they are not migrated
// by this run (verify reports them). A source it cannot read is left to
// the steps to report.
func (s Start) warnNewDatabases(ctx context.Context, st *state.State) {
	conn, err := s.Source.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return
	}
	defer s.Source.Release(ctx, conn)
	rows, err := conn.Query(ctx, newDatabasesSQL)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		if s.Config.Databases.Selects(name) && !slices.ContainsFunc(st.Plan.Databases, func(d plan.DatabasePlan) bool { return d.Name == name }) {
			s.Log.Warn(fmt.Sprintf("database %s was created on the source after the plan: this migration does not move it", name), "database", name,
				"fix", "migrate it with a file of its own (another state directory), or start over with --reset-state")
		}
	}
}

// ReadPlanFile reads a plan saved with plan -o.
func ReadPlanFile(path string) (*plan.File, error) {
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

// SameAsStored accepts a plan file given with an existing state only when
// it is the plan the state started with.
func SameAsStored(path string, st *state.State) error {
	saved, err := ReadPlanFile(path)
	if err != nil {
		return err
	}
	if !saved.Plan.SameOrigin(&st.Plan) {
		return fmt.Errorf("%s is not the plan this migration started with; rerun without it to resume, or with --reset-state to start over", path)
	}
	return nil
}

// Tools chooses pg_dump and pg_restore for the plan's servers: of a major
// from the source's to the target's. probed is this run's probe, or nil.
func Tools(ctx context.Context, cfg *config.Config, st *state.State, probed *plan.Env) (apply.Tools, error) {
	if probed == nil {
		env := ProbeEnv(ctx, cfg.PGBin)
		probed = &env
	}
	lo, hi := st.Plan.Source.Major(), st.Plan.Target.Major()
	hi = max(lo, hi)
	d, ok1 := plan.PickTool(probed.PGDump, lo, hi)
	r, ok2 := plan.PickTool(probed.PGRestore, lo, hi)
	if !ok1 || !ok2 {
		return apply.Tools{}, &ToolsError{Low: lo, High: hi}
	}
	return apply.Tools{PGDump: d.Path, PGRestore: r.Path}, nil
}

// Progress is the stored plan of a migration under way, replanned for
// the current policy, each step with its status; ok is false when the
// state directory holds no migration, or another one (then plan plans
// afresh). What pghaul created itself is never reported as a finding.
func Progress(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (p plan.Plan, done int, ok bool, err error) {
	st, err := (&state.FileStore{Dir: cfg.State}).Load()
	if errors.Is(err, state.ErrNoState) {
		return plan.Plan{}, 0, false, nil
	}
	if err != nil {
		return plan.Plan{}, 0, false, err
	}
	key, err := StateKey(ctx, cfg, src, dst)
	if err != nil {
		return plan.Plan{}, 0, false, err
	}
	if !key.Matches(st.Key) {
		log.Warn("the state directory belongs to another migration; planning afresh (apply will ask for --reset-state)", "state", cfg.State)
		return plan.Plan{}, 0, false, nil
	}
	st.ApplyPolicy(cfg.Replication)
	p = st.Plan
	p.Steps = slices.Clone(p.Steps)
	for i, s := range p.Steps {
		p.Steps[i].Status = string(state.StatusPending)
		if ss, ok := st.Steps[s.ID]; ok {
			p.Steps[i].Status = string(ss.Status)
		}
		// Which tables an interrupted copy keeps and which are copied
		// again: on the copy step until it is done, then on the
		// subscription's.
		shows := s.Kind == plan.StepCopyData && p.Steps[i].Status != string(state.StatusDone) ||
			s.Kind == plan.StepCreateSubscription && st.Databases[s.Params.Database] != nil && len(st.Databases[s.Params.Database].Recopy) > 0
		if shows {
			if note := st.CopyNote(s.Params.Database); note != "" {
				p.Steps[i].Detail += "; " + note
			}
		}
	}
	return p, st.Done(), true, nil
}
