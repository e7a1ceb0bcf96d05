// Package session is a migration's lifecycle, the rules between the
// command line and the executor: the state key and the lock, planning
// (inspect both servers, probe the tools and connections, build), resuming
// a stored migration or starting a new one (stale-plan and blocker
// refusal, a policy change replanned), and choosing pg_dump and
// pg_restore. cmd/pghaul keeps flags, views and exit codes.
package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

const systemIDSQL = `SELECT system_identifier::text FROM pg_control_system()`

// Keys are a migration's state key, and the key an earlier pghaul gave it
// (config.EarlierStateKey).
type Keys struct{ Current, Earlier string }

// Matches reports whether a stored key is this migration's.
func (k Keys) Matches(stored string) bool { return stored == k.Current || stored == k.Earlier }

// StateKey reads both system identifiers for the state key.
func StateKey(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint) (Keys, error) {
	var ids [2]string
	var errs [2]error
	var wg sync.WaitGroup
	for i, ep := range []*pg.Endpoint{src, dst} {
		wg.Go(func() { ids[i], errs[i] = systemID(ctx, ep) })
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		return Keys{}, err
	}
	return Keys{Current: cfg.StateKey(ids[0], ids[1]), Earlier: cfg.EarlierStateKey(ids[0], ids[1])}, nil
}

func systemID(ctx context.Context, ep *pg.Endpoint) (string, error) {
	conn, err := ep.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer ep.Release(ctx, conn) // the plan's inspection reuses it
	var id string
	if err := conn.QueryRow(ctx, systemIDSQL).Scan(&id); err != nil {
		return "", fmt.Errorf("read the %s's system identifier: %s", ep.Side, pg.Describe(err))
	}
	return id, nil
}

// Lock takes the migration's lock on the target, keyed by its state key
// (which it returns): one apply or cleanup of a migration at a time.
func Lock(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint) (*state.Lock, Keys, error) {
	key, err := StateKey(ctx, cfg, src, dst)
	if err != nil {
		return nil, key, err
	}
	lockConn, err := dst.Connect(ctx, "", pg.Options{})
	if err != nil {
		return nil, key, err
	}
	lock, err := state.AcquireLock(ctx, lockConn, cfg.State, time.Now(), key.Current, key.Earlier)
	return lock, key, err
}

// LockDatabases takes the locks of the plan's target databases (held with
// the migration's lock; taking one again is a no-op).
func LockDatabases(ctx context.Context, lock *state.Lock, p *plan.Plan) error {
	var names []string
	for _, d := range p.Databases {
		names = append(names, d.Name)
	}
	return lock.Databases(ctx, names)
}
