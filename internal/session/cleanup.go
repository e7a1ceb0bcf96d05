package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/view"
	"github.com/pghaul/pghaul/state"
)

// CleanupOptions are cleanup's flags.
type CleanupOptions struct {
	// DryRun only lists what would be done.
	DryRun bool
	// Unfreeze also lifts the freeze a finished cut-over left.
	Unfreeze bool
	// Orphans also drops inactive pghaul_* slots of no migration of this file.
	Orphans bool
}

// Cleanup lifts the write freezes the state records, drops the
// migration's replication objects by their computed names (and orphan
// slots), records the databases whose replication went before their
// cut-over, and takes back the memberships the migration user granted
// itself. Each action goes to out as it is done; st is nil without a
// state (the servers alone tell). The caller holds the migration's lock.
func Cleanup(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, store *state.FileStore, st *state.State, opt CleanupOptions, out *view.Cleanup) error {
	frozen, err := liftFreezes(ctx, store, st, src, opt, out)
	if err != nil {
		return err
	}
	names, err := Names(ctx, cfg, src, dst)
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
	acts, err := apply.Cleanup(ctx, src, dst, names, opt.DryRun)
	if err == nil && opt.Orphans {
		var orphans []apply.CleanupAction
		orphans, err = apply.CleanupOrphans(ctx, src, own, opt.DryRun)
		acts = append(acts, orphans...)
	}
	verb := "dropped"
	if opt.DryRun {
		verb = "would drop"
	}
	for _, a := range acts {
		out.Add(verb, a.String(), "")
	}
	if !opt.DryRun && st != nil {
		if rerr := recordRemoved(store, st, acts); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if rerr := revokeOwnerGrants(ctx, store, st, dst, out); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// liftFreezes lifts the write freezes the state records: an interrupted
// cut-over's always (its source must not stay frozen), a finished one's
// with Unfreeze. It returns the databases left frozen.
func liftFreezes(ctx context.Context, store *state.FileStore, st *state.State, src *pg.Endpoint, opt CleanupOptions, out *view.Cleanup) ([]string, error) {
	if st == nil {
		return nil, nil
	}
	var left []string
	for _, db := range slices.Sorted(maps.Keys(st.Freezes)) {
		fr := st.Freezes[db]
		switch {
		case fr.Switched() && !opt.Unfreeze:
			out.Add("kept the write freeze of", "source database "+db, fmt.Sprintf("(cut over at %s): --unfreeze lifts it", fr.SwitchedAt.Format(time.RFC3339)))
			left = append(left, db)
			continue
		case opt.DryRun:
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
