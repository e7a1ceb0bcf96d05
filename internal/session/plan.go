package session

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgbin"
	"github.com/pghaul/pghaul/plan"
)

// Planned is a plan with the snapshots and tools it was built from.
type Planned struct {
	Plan     plan.Plan
	Src, Dst plan.Snapshot
	Env      plan.Env
}

// Plan inspects both servers at once, probes the tools and builds.
func Plan(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (Planned, error) {
	var env plan.Env
	probed := make(chan struct{})
	go func() {
		env = ProbeEnv(ctx, cfg.PGBin)
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
		return Planned{}, err
	}
	return Planned{Plan: plan.Build(cfg, snaps[0], snaps[1], env), Src: snaps[0], Dst: snaps[1], Env: env}, nil
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

// ProbeEnv finds pg_dump and pg_restore: in pg_bin when set, else by the
// search DESIGN.md describes.
func ProbeEnv(ctx context.Context, pgBin string) plan.Env {
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
