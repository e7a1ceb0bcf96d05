package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/state"
)

// freezeOf returns a copy of database db's saved freeze, or nil.
func (m *Migration) freezeOf(db string) *state.Freeze {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.State.Freezes[db]; f != nil {
		c := *f
		return &c
	}
	return nil
}

// setFreeze saves database db's freeze (nil removes it) in the state.
func (m *Migration) setFreeze(db string, f *state.Freeze) error {
	return m.saveChange(func() {
		if f == nil {
			delete(m.State.Freezes, db)
			return
		}
		if m.State.Freezes == nil {
			m.State.Freezes = map[string]*state.Freeze{}
		}
		c := *f
		m.State.Freezes[db] = &c
	})
}

const allowConnectionsSQL = `SELECT datallowconn FROM pg_database WHERE datname = $1`

// adminSession opens a session on the source outside database db: ALTER
// DATABASE ... ALLOW_CONNECTIONS false cannot be run from inside the
// database it concerns, and once it ran nothing new gets in there. It
// tries the bootstrap database, then postgres, then template1.
func adminSession(ctx context.Context, source *pg.Endpoint, db string) (*pgx.Conn, error) {
	var errs []error
	for _, cand := range []string{"", "postgres", "template1"} {
		conn, err := source.Connect(ctx, cand, pg.Options{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if conn.Config().Database != db {
			return conn, nil
		}
		conn.Close(context.WithoutCancel(ctx))
	}
	return nil, fmt.Errorf("open a session on the source outside database %s (its connections are changed from another database): %w", db, errors.Join(errs...))
}

// setAllowConnections sets datallowconn of db.
func setAllowConnections(ctx context.Context, admin *pgx.Conn, db string, allow bool) error {
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", ident(db), allow)); err != nil {
		return fmt.Errorf("ALTER DATABASE %s ALLOW_CONNECTIONS %t: %w", db, allow, err)
	}
	return nil
}

// Unfreeze restores what the freeze of db changed on the source.
func Unfreeze(ctx context.Context, source *pg.Endpoint, db string, f *state.Freeze) error {
	admin, err := adminSession(ctx, source, db)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	return setAllowConnections(ctx, admin, db, f.AllowConnections)
}

// clientSessionsSQL lists the client sessions of a database other than
// pghaul's own ($2); WAL senders and background workers are no clients.
const clientSessionsSQL = `SELECT pid, coalesce(usename, ''), coalesce(application_name, '') FROM pg_stat_activity
WHERE datname = $1 AND backend_type = 'client backend' AND pid <> ALL ($2::int[]) ORDER BY pid`

type session struct {
	pid       int32
	role, app string
}

// endSessions ends every client session of db but keep's, waiting until
// they are gone, at most until ctx's deadline or wait. It returns how many
// it ended; a session it may not end (another role's without
// pg_signal_backend, a superuser's) is an error naming it.
func endSessions(ctx context.Context, admin *pgx.Conn, db string, keep []int32, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	ended := map[int32]bool{}
	for {
		rows, err := admin.Query(ctx, clientSessionsSQL, db, keep)
		if err != nil {
			return len(ended), fmt.Errorf("list sessions of %s: %w", db, err)
		}
		var left []session
		var s session
		if _, err := pgx.ForEachRow(rows, []any{&s.pid, &s.role, &s.app}, func() error { left = append(left, s); return nil }); err != nil {
			return len(ended), fmt.Errorf("list sessions of %s: %w", db, err)
		}
		if len(left) == 0 {
			return len(ended), nil
		}
		var refused []string
		for _, s := range left {
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", s.pid); err != nil {
				if ctx.Err() != nil {
					return len(ended), ctx.Err()
				}
				refused = append(refused, fmt.Sprintf("pid %d (role %s, application %q): %s", s.pid, s.role, s.app, pg.Describe(err)))
				continue
			}
			ended[s.pid] = true
		}
		if time.Now().After(deadline) {
			if len(refused) == 0 {
				refused = append(refused, fmt.Sprintf("%d still connected", len(left)))
			}
			return len(ended), fmt.Errorf("sessions of %s on the source could not be ended: %s; grant pg_signal_backend to the migration role (a superuser's sessions only a superuser can end), or end them before the cut-over",
				db, strings.Join(refused, "; "))
		}
		select {
		case <-ctx.Done():
			return len(ended), ctx.Err()
		case <-time.After(10 * time.Millisecond): // a terminated backend ends within milliseconds
		}
	}
}
