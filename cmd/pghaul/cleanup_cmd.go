package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
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
	err = c.clean(ctx, cfg, src, dst, store, st, &out)
	// What was done is shown even when a later part failed.
	if len(out.Actions) > 0 || err == nil {
		if rerr := view.Render(stdout, out, view.Format(c.Format)); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// clean lifts freezes, drops the replication objects (and orphans), and
// takes back the memberships the migration granted itself, recording
// each action in out.
func (c *CleanupCmd) clean(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, store *state.FileStore, st *state.State, out *view.Cleanup) error {
	frozen, err := c.freezes(ctx, store, st, src, out)
	if err != nil {
		return err
	}
	names, err := session.Names(ctx, cfg, src, dst)
	if err != nil {
		return err
	}
	own := map[string]bool{} // this migration's slots, frozen databases' too
	for _, n := range names {
		own[n.Slot] = true
	}
	for _, db := range frozen {
		delete(names, db) // a frozen database lets no session in
	}
	acts, err := apply.Cleanup(ctx, src, dst, names, c.DryRun)
	if err == nil && c.Orphans {
		var orphans []apply.CleanupAction
		orphans, err = apply.CleanupOrphans(ctx, src, own, c.DryRun)
		acts = append(acts, orphans...)
	}
	verb := "dropped"
	if c.DryRun {
		verb = "would drop"
	}
	for _, a := range acts {
		out.Add(verb, a.String(), "")
	}
	if !c.DryRun && st != nil {
		if rerr := recordRemoved(store, st, acts); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if rerr := revokeOwnerGrants(ctx, store, st, dst, out); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// freezes lifts the write freezes the state records: an interrupted
// cut-over's always (its source must not stay frozen), a finished one's
// with --unfreeze. It returns the databases left frozen.
func (c *CleanupCmd) freezes(ctx context.Context, store *state.FileStore, st *state.State, src *pg.Endpoint, out *view.Cleanup) ([]string, error) {
	if st == nil {
		return nil, nil
	}
	var left []string
	for _, db := range slices.Sorted(maps.Keys(st.Freezes)) {
		fr := st.Freezes[db]
		switch {
		case fr.Switched() && !c.Unfreeze:
			out.Add("kept the write freeze of", "source database "+db, fmt.Sprintf("(cut over at %s): --unfreeze lifts it", fr.SwitchedAt.Format(time.RFC3339)))
			left = append(left, db)
			continue
		case c.DryRun:
			out.Add("would lift the write freeze of", "source database "+db, "")
			left = append(left, db)
			continue
		}
		if err := apply.Unfreeze(ctx, src, db, fr); err != nil {
			return nil, fmt.Errorf("lift the write freeze of %s: %w", db, err)
		}
		delete(st.Freezes, db)
		if err := store.Save(st); err != nil {
			return nil, err
		}
		out.Add("lifted the write freeze of", "source database "+db, fmt.Sprintf("(ALLOW_CONNECTIONS %t, as saved)", fr.AllowConnections))
	}
	return left, nil
}

// recordRemoved notes in the state the databases whose replication objects
// cleanup dropped before their cut-over: apply then refuses to go on as if
// nothing happened, and status says so.
func recordRemoved(store *state.FileStore, st *state.State, acts []apply.CleanupAction) error {
	changed := false
	for _, a := range acts {
		if st.Plan.DatabaseNames(a.Database).Slot == "" || st.Removed[a.Database] != (time.Time{}) {
			continue
		}
		if status, _ := st.DatabaseStatus(a.Database); status == state.StatusDone || status == state.StatusDoneWithWarnings {
			continue
		}
		if st.Removed == nil {
			st.Removed = map[string]time.Time{}
		}
		st.Removed[a.Database] = time.Now().UTC()
		changed = true
	}
	if !changed {
		return nil
	}
	return store.Save(st)
}

// revokeOwnerGrants takes back the memberships in owner roles the target
// user granted itself during the migration (a rerun of apply grants them
// again where it needs them).
func revokeOwnerGrants(ctx context.Context, store *state.FileStore, st *state.State, dst *pg.Endpoint, out *view.Cleanup) error {
	if len(st.OwnerGrants) == 0 {
		return nil
	}
	revoked, err := apply.RevokeOwnerGrants(ctx, dst, st.OwnerGrants)
	for _, r := range revoked {
		out.Add("revoked the migration user's membership in", "role "+r, "on the target (granted to hand it objects)")
	}
	st.OwnerGrants = slices.DeleteFunc(st.OwnerGrants, func(o string) bool { return slices.Contains(revoked, o) })
	return errors.Join(err, store.Save(st))
}
