package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/session"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// ApplyCmd carries out the plan with resumable checkpoints.
type ApplyCmd struct {
	Config        string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	PlanFile      string `arg:"" optional:"" type:"path" placeholder:"PLAN" help:"A plan saved with plan -o; refused when stale (exit 3)."`
	ResetState    bool   `help:"Forget the state directory's progress and start over."`
	ResumeTables  bool   `help:"Dump method: when a database's copy restarts, keep its finished tables (for a source without writes: consistent only then). The replication method keeps them consistently without it, and ignores it."`
	ShowPasswords bool   `help:"Print the placeholder passwords set on new roles."`
	Format        string `enum:"table,json" default:"table" help:"Output format of the result: table or json."`

	view *liveView
	// width is how wide the result's tables may be.
	width int
	// env is the tools probed for this run's plan, reused to pick them.
	env *plan.Env
}

// Run plans (or loads the saved plan, or resumes the stored one) and applies.
func (c *ApplyCmd) Run(ctx context.Context, stdout io.Writer, errOut stderr, env Env, log *slog.Logger, cli *CLI) error {
	cfg, src, dst, err := loadEndpoints(c.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	c.width = outputWidth(stdout, env)
	store := &state.FileStore{Dir: cfg.State}
	if err := store.Open(); err != nil {
		return err
	}
	lock, key, err := session.Lock(ctx, cfg, src, dst)
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
	state, fresh, probed, err := session.Begin(ctx, session.Start{Config: cfg, Source: src, Target: dst, Store: store, Keys: key, Lock: lock, PlanFile: c.PlanFile, Log: log})
	var stale *session.StaleError
	var blocked *session.BlockedError
	switch {
	case errors.As(err, &stale):
		return &exitError{code: 3, err: err}
	case errors.As(err, &blocked):
		for _, f := range blocked.Blockers {
			log.Error(f.Message, "code", f.Code, "object", f.Object, "fix", f.Fix)
		}
		return &exitError{code: 2, err: err}
	case err != nil:
		return err
	}
	c.env = probed
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
		view, viewLog, err := newLiveView(errOut.Writer, &state.Plan, cfg.State, cfg.Parallel.MaxRate, outputWidth(errOut.Writer, env), cli.Debug)
		if err != nil {
			return err
		}
		defer view.Close()
		c.view = view
		events, log = view.Event, viewLog
		fmt.Fprintf(errOut.Writer, "applying; log lines go to %s\n", filepath.Join(cfg.State, logFileName))
	}
	return c.apply(ctx, stdout, cfg, src, dst, store, state, log, events)
}

func (c *ApplyCmd) apply(ctx context.Context, stdout io.Writer, cfg *config.Config, src, dst *pg.Endpoint, store *state.FileStore, st *state.State, log *slog.Logger, events func(apply.Event)) error {
	tools, err := session.Tools(ctx, cfg, st, c.env)
	if errors.As(err, new(*session.ToolsError)) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	start, before := time.Now(), st.CopiedBytes()
	m := &apply.Migration{Config: cfg, Source: src, Target: dst, Tools: tools, Store: store, State: st, ResumeTables: c.ResumeTables,
		Events: events, Log: log}
	if c.view != nil {
		m.ProgressEvery = 250 * time.Millisecond // a live view redraws often
	}
	if v, err := time.ParseDuration(os.Getenv("PGHAUL_LAG_POLL")); err == nil {
		m.LagPoll = v // a test knob, not a key of the file
	}
	runErr := m.Run(ctx)
	if c.view != nil {
		c.view.Close() // the bars go before the result tables
	}
	if ctx.Err() != nil {
		c.result(stdout, st, m.Placeholders(), time.Since(start), st.CopiedBytes()-before)
		return &exitError{code: 130, err: errors.New("interrupted; finished tables and steps are saved: rerun apply to resume")}
	}
	if err := c.result(stdout, st, m.Placeholders(), time.Since(start), st.CopiedBytes()-before); err != nil {
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
