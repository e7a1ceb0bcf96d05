package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pgferry/pgferry/config"
	"github.com/pgferry/pgferry/internal/inspect"
	"github.com/pgferry/pgferry/internal/pg"
	"github.com/pgferry/pgferry/internal/pgbin"
	"github.com/pgferry/pgferry/plan"
)

// PlanCmd inspects both servers read-only and prints the plan.
type PlanCmd struct {
	Config string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	Format string `enum:"table,markdown,json" default:"table" help:"Output format: table, markdown (for a pull request) or json."`
	Output string `short:"o" type:"path" placeholder:"FILE" help:"Also save the plan file here, for apply."`
}

// Run plans and renders; exit 2 when the plan has blockers.
func (c *PlanCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, err := config.Load(c.Config, config.Options{LookupEnv: env})
	if err != nil {
		return err
	}
	p, err := buildPlan(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := plan.Render(stdout, &p, plan.Format(c.Format)); err != nil {
		return err
	}
	if c.Output != "" {
		if err := savePlan(c.Output, &p); err != nil {
			return err
		}
		log.Info("plan saved", "file", c.Output)
	}
	if n := len(p.Blockers()); n > 0 {
		return &exitError{code: 2, err: fmt.Errorf("the plan has %d blocker(s); fix them and plan again", n)}
	}
	return nil
}

func savePlan(path string, p *plan.Plan) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	if err := plan.WriteFile(f, p, time.Now()); err != nil {
		f.Close()
		return fmt.Errorf("save plan: %w", err)
	}
	return f.Close()
}

// buildPlan inspects both servers at once, probes the tools and builds.
func buildPlan(ctx context.Context, cfg *config.Config, log *slog.Logger) (plan.Plan, error) {
	src, err := pg.NewEndpoint("source", cfg.Source.URI)
	if err != nil {
		return plan.Plan{}, err
	}
	dst, err := pg.NewEndpoint("target", cfg.Target.URI)
	if err != nil {
		return plan.Plan{}, err
	}
	var snaps [2]plan.Snapshot
	var errs [2]error
	var wg sync.WaitGroup
	for i, side := range []struct {
		ep   *pg.Endpoint
		rows bool
	}{{src, false}, {dst, true}} {
		wg.Go(func() {
			start := time.Now()
			snaps[i], errs[i] = inspect.Cluster(ctx, side.ep, inspect.Options{Select: cfg.Databases.Selects, TableRows: side.rows, Parallel: 4})
			log.Debug("inspected", "side", side.ep.Side, "databases", len(snaps[i].Databases), "took", time.Since(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return plan.Plan{}, err
		}
	}
	return plan.Build(cfg, snaps[0], snaps[1], probeEnv(ctx, cfg.PGBin)), nil
}

// probeEnv finds pg_dump and pg_restore: in pg_bin when set, else by the
// search DESIGN.md describes.
func probeEnv(ctx context.Context, pgBin string) plan.Env {
	dirs := []string{pgBin}
	if pgBin == "" {
		dirs = pgbin.SearchDirs(ctx)
	}
	conv := func(tools []pgbin.Tool) []plan.Tool {
		var out []plan.Tool
		for _, t := range tools {
			out = append(out, plan.Tool{Path: t.Path, Major: t.Major, Version: t.Version})
		}
		return out
	}
	return plan.Env{
		PGDump:    conv(pgbin.Find(ctx, "pg_dump", dirs, nil)),
		PGRestore: conv(pgbin.Find(ctx, "pg_restore", dirs, nil)),
	}
}
