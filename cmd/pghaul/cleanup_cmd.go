package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/pghaul/pghaul/internal/session"
	"github.com/pghaul/pghaul/internal/view"
	"github.com/pghaul/pghaul/state"
)

// CleanupCmd drops this migration's replication objects on both sides.
type CleanupCmd struct {
	Config   string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	DryRun   bool   `help:"Only list what would be dropped."`
	Unfreeze bool   `help:"Also lift the write freeze a finished cut-over left on the source databases, restoring what it saved (an interrupted cut-over's freeze is always lifted)."`
	Orphans  bool   `help:"Also drop the pghaul_* slots on the source that no migration of this file owns and nothing streams from (a rebuilt target's, a failed run's), printing each."`
	Format   string `enum:"table,json" default:"table" help:"Output format: table (a line per action) or json."`
}

// Run drops (or lists) the subscription, publication and slot of every
// selected database, by the names this migration computes.
func (c *CleanupCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, src, dst, err := loadEndpoints(c.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	// One apply or cleanup of a migration at a time: a cleanup while apply
	// waits for the lag would pull replication from under it.
	lock, _, err := session.Lock(ctx, cfg, src, dst)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	store := &state.FileStore{Dir: cfg.State}
	st, err := store.Load() // nil without a state: the servers alone tell
	if err != nil && !errors.Is(err, state.ErrNoState) {
		return err
	}
	var out view.Cleanup
	err = session.Cleanup(ctx, cfg, src, dst, store, st, session.CleanupOptions{DryRun: c.DryRun, Unfreeze: c.Unfreeze, Orphans: c.Orphans}, &out)
	// What was done is shown even when a later part failed.
	if len(out.Actions) > 0 || err == nil {
		if rerr := view.Render(stdout, out, view.Format(c.Format), outputWidth(stdout, env)); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}
