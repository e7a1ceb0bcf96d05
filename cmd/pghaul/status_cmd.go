package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/plan"
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
	progress, err := apply.ReadProgress(ctx, src, dst, st, time.Second)
	if err != nil {
		return err
	}
	if s.Format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Done      int              `json:"steps_done"`
			Steps     int              `json:"steps"`
			Databases []apply.Progress `json:"databases"`
		}{st.Done(), len(st.Plan.Steps), progress})
	}
	var rows [][]string
	for _, p := range progress {
		rows = append(rows, []string{p.Database, p.Method, p.Status, p.Step, p.Subscription + worker(p), tables(p),
			optBytes(p.LagBytes), p.ETA, optBytes(p.WALRetained), p.WALStatus})
	}
	fmt.Fprintf(stdout, "%d of %d steps done; state in %s\n", st.Done(), len(st.Plan.Steps), cfg.State)
	if err := plan.RenderTable(stdout, []string{"DATABASE", "METHOD", "STATUS", "STEP", "SUBSCRIPTION", "TABLES SYNCED", "LAG", "ETA", "WAL RETAINED", "WAL STATUS"}, rows); err != nil {
		return err
	}
	for _, p := range progress {
		if p.Frozen != "" {
			fmt.Fprintf(stdout, "source database %s: %s\n", p.Database, p.Frozen)
		}
	}
	return nil
}

func worker(p apply.Progress) string {
	if p.Worker {
		return ", worker running"
	}
	return ""
}

func tables(p apply.Progress) string {
	if p.TablesTotal == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", p.TablesReady, p.TablesTotal)
}

func optBytes(n *int64) string {
	if n == nil {
		return ""
	}
	return strconv.FormatInt(*n, 10) + " B"
}
