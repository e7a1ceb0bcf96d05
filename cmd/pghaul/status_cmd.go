package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/view"
	"github.com/pghaul/pghaul/state"
)

// StatusCmd shows a migration's progress and live replication lag.
type StatusCmd struct {
	Config string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	Format string `enum:"table,json" default:"table" help:"Output format: table or json."`
}

// Run prints one row per database.
func (s *StatusCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, err := config.Load(s.Config, config.Options{LookupEnv: env})
	if err != nil {
		return err
	}
	st, err := (&state.FileStore{Dir: cfg.State}).Load()
	if err != nil {
		return fmt.Errorf("no migration state in %s (%v): run pghaul apply first", cfg.State, err)
	}
	src, dst, err := endpoints(cfg)
	if err != nil {
		return err
	}
	progress, err := inspect.ReadProgress(ctx, src, dst, st, time.Second)
	if err != nil {
		return err
	}
	return view.Render(stdout, view.Status{StepsDone: st.Done(), Steps: len(st.Plan.Steps), StateDir: cfg.State, Databases: progress}, view.Format(s.Format), outputWidth(stdout, env))
}
