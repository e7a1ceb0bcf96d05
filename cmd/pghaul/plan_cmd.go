package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgbin"
	"github.com/pghaul/pghaul/plan"
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
	src, dst, err := endpoints(cfg)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	if shown, err := c.showProgress(ctx, cfg, src, dst, stdout, log); shown || err != nil {
		return err
	}
	pl, err := buildPlan(ctx, cfg, src, dst, log)
	if err != nil {
		return err
	}
	p := &pl.plan
	if err := plan.Render(stdout, p, plan.Format(c.Format)); err != nil {
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
// step's status, instead of planning again: what pghaul created itself is
// never reported as a finding.
func (c *PlanCmd) showProgress(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, stdout io.Writer, log *slog.Logger) (bool, error) {
	st, err := (&apply.FileStore{Dir: cfg.State}).Load()
	if errors.Is(err, apply.ErrNoState) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	key, err := stateKey(ctx, cfg, src, dst)
	if err != nil {
		return false, err
	}
	if !key.matches(st.Key) {
		log.Warn("the state directory belongs to another migration; planning afresh (apply will ask for --reset-state)", "state", cfg.State)
		return false, nil
	}
	st.ApplyPolicy(cfg.Replication)
	p := st.Plan
	p.Steps = slices.Clone(p.Steps)
	for i, s := range p.Steps {
		p.Steps[i].Status = string(apply.StatusPending)
		if ss, ok := st.Steps[s.ID]; ok {
			p.Steps[i].Status = string(ss.Status)
		}
	}
	log.Info(fmt.Sprintf("migration under way: %d of %d steps done; showing its plan", st.Done(), len(p.Steps)), "state", cfg.State)
	return true, plan.Render(stdout, &p, plan.Format(c.Format))
}

func savePlan(path string, pl planned) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	if err := plan.WriteFile(f, &pl.plan, pl.src, pl.dst, time.Now()); err != nil {
		f.Close()
		return fmt.Errorf("save plan: %w", err)
	}
	return f.Close()
}

// planned is a plan with the snapshots and tools it was built from.
type planned struct {
	plan     plan.Plan
	src, dst plan.Snapshot
	env      plan.Env
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

// buildPlan inspects both servers at once, probes the tools and builds.
func buildPlan(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (planned, error) {
	var env plan.Env
	probed := make(chan struct{})
	go func() {
		env = probeEnv(ctx, cfg.PGBin)
		env.SubscriptionPassword = pg.Password(cfg.Source.SubscriptionURI()) != ""
		env.SubscriptionLocal, env.TargetLocal = pg.LocalAddress(cfg.Source.SubscriptionURI()), pg.LocalAddress(cfg.Target.URI)
		if cfg.Method != config.MethodDump {
			env.ReplicationRefused = replicationRefused(ctx, src)
			env.SubscriptionRefused, env.SubscriptionCreatable = subscriptionRefused(ctx, cfg, dst)
		}
		close(probed)
	}() // meanwhile, inspect
	snaps, err := inspectBoth(ctx, cfg, src, dst, log)
	<-probed
	if err != nil {
		return planned{}, err
	}
	return planned{plan: plan.Build(cfg, snaps[0], snaps[1], env), src: snaps[0], dst: snaps[1], env: env}, nil
}

// inspectBoth reads both servers concurrently.
func inspectBoth(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) ([2]plan.Snapshot, error) {
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
	return snaps, errors.Join(errs[0], errs[1])
}

// replicationRefused opens and closes a replication connection to the
// source, as the slot step will, and says why that failed ("" when it
// worked): a pg_hba.conf without a line for replication, or a pooler in
// the way, is found by plan, not after apply made roles and databases.
func replicationRefused(ctx context.Context, src *pg.Endpoint) string {
	conn, err := src.ConnectRaw(ctx, "", pg.Options{Settings: map[string]string{"replication": "database"}})
	if err != nil {
		if ctx.Err() != nil {
			return ""
		}
		var ce *pg.ConnectError
		if errors.As(err, &ce) {
			err = ce.Err
		}
		return pg.Describe(err)
	}
	conn.Close(context.WithoutCancel(ctx))
	return ""
}

// subscriptionRefused has the target try the subscription's connection to
// the source, in a transaction rolled back, as apply's publication step
// will: an address, credentials or a CA the target server lacks is found
// by plan. It says why the target could not connect ("" when it could, or
// when the target user may not create a subscription this way), and
// whether the target user created the subscription: proof that it may,
// whatever a managed service changed of who may subscribe.
func subscriptionRefused(ctx context.Context, cfg *config.Config, dst *pg.Endpoint) (string, bool) {
	err := apply.ProbeSubscription(ctx, dst, apply.SubscriptionConninfo(cfg.Source.SubscriptionURI(), ""))
	var refused *apply.SubscriptionRefusedError
	if errors.As(err, &refused) {
		return refused.Error(), false
	}
	return "", err == nil
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
	var env plan.Env
	var wg sync.WaitGroup
	wg.Go(func() { env.PGDump = conv(pgbin.Find(ctx, "pg_dump", dirs, nil)) })
	wg.Go(func() { env.PGRestore = conv(pgbin.Find(ctx, "pg_restore", dirs, nil)) })
	wg.Wait()
	return env
}
