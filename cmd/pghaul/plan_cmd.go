package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/session"
	"github.com/pghaul/pghaul/plan"
)

// PlanCmd inspects both servers read-only and prints the plan.
type PlanCmd struct {
	Config  string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	Format  string `enum:"table,markdown,json" default:"table" help:"Output format: table, markdown (for a pull request) or json."`
	Output  string `short:"o" type:"path" placeholder:"FILE" help:"Also save the plan file here, for apply."`
	DocsURL string `name:"docs-url" env:"PGHAUL_DOCS_URL" placeholder:"URL" help:"Base URL of pghaul's docs/ for the findings' links (markdown, JSON); default: the relative path docs/, which breaks inside a pull request comment."`
}

// Run plans and renders; exit 2 when the plan has blockers.
func (c *PlanCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, err := config.Load(c.Config, config.Options{LookupEnv: env})
	if err != nil {
		return err
	}
	src, dst, err := endpoints(cfg)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	if shown, err := c.showProgress(ctx, cfg, src, dst, stdout, outputWidth(stdout, env), log); shown || err != nil {
		return err
	}
	pl, err := session.Plan(ctx, cfg, src, dst, log)
	if err != nil {
		return err
	}
	p := &pl.Plan
	if c.DocsURL != "" {
		for i, f := range p.Findings {
			p.Findings[i].Doc = plan.DocLinkAt(c.DocsURL, f.Code)
		}
	}
	if err := plan.Render(stdout, p, plan.Format(c.Format), outputWidth(stdout, env)); err != nil {
		return err
	}
	if c.Output != "" {
		if err := savePlan(c.Output, pl); err != nil {
			return err
		}
		log.Info("plan saved", "file", c.Output)
	}
	if n := len(p.Blockers()); n > 0 {
		return &exitError{code: 2, err: fmt.Errorf("the plan has %d blocker(s); fix them and plan again", n)}
	}
	return nil
}

// showProgress renders the stored plan of a migration under way, with each
// step's status, instead of planning again.
func (c *PlanCmd) showProgress(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, stdout io.Writer, width int, log *slog.Logger) (bool, error) {
	p, done, ok, err := session.Progress(ctx, cfg, src, dst, log)
	if !ok || err != nil {
		return false, err
	}
	log.Info(fmt.Sprintf("migration under way: %d of %d steps done; showing its plan", done, len(p.Steps)), "state", cfg.State)
	return true, plan.Render(stdout, &p, plan.Format(c.Format), width)
}

func savePlan(path string, pl session.Planned) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	if err := plan.WriteFile(f, &pl.Plan, pl.Src, pl.Dst, time.Now()); err != nil {
		f.Close()
		return fmt.Errorf("save plan: %w", err)
	}
	return f.Close()
}

// loadEndpoints loads the file and parses both connection strings.
func loadEndpoints(path string, env Env) (*config.Config, *pg.Endpoint, *pg.Endpoint, error) {
	cfg, err := config.Load(path, config.Options{LookupEnv: env})
	if err != nil {
		return nil, nil, nil, err
	}
	src, dst, err := endpoints(cfg)
	return cfg, src, dst, err
}

// endpoints parses both connection strings.
func endpoints(cfg *config.Config) (src, dst *pg.Endpoint, err error) {
	if src, err = pg.NewEndpoint("source", cfg.Source.URI); err != nil {
		return nil, nil, err
	}
	if dst, err = pg.NewEndpoint("target", cfg.Target.URI); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

// closeIdle ends the sessions the endpoints kept for reuse.
func closeIdle(ctx context.Context, eps ...*pg.Endpoint) {
	for _, ep := range eps {
		ep.CloseIdle(ctx)
	}
}
