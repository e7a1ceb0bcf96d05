package state

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLocked means another apply of the same migration is running.
var ErrLocked = errors.New("another pghaul apply of this migration is running")

// Lock is the session advisory lock that makes one apply at a time. The
// server frees it when the holder's connection closes, so a killed apply
// never blocks the next. The lock file beside the state only says who
// holds it.
type Lock struct {
	conn *pgx.Conn
	file string
}

type lockInfo struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

const tryLockSQL = `SELECT pg_try_advisory_lock($1)`

// AcquireLock takes the locks keyed by the state keys on conn, which the
// Lock then owns and closes on Release. Several keys: the migration's, and
// the one an earlier pghaul gave it, which an apply of that version
// still running would hold.
func AcquireLock(ctx context.Context, conn *pgx.Conn, stateDir string, now time.Time, stateKeys ...string) (*Lock, error) {
	file := filepath.Join(stateDir, "lock")
	for _, stateKey := range stateKeys {
		b, _ := hex.DecodeString(stateKey[:16])
		key := int64(binary.BigEndian.Uint64(b))
		var ok bool
		// A holder killed a moment ago (kill -9, then apply again at once)
		// leaves a backend that has not yet seen its connection close: its
		// lock goes within a moment, so a dead holder is waited for.
		for wait := time.Now().Add(deadHolderWait); ; {
			if err := conn.QueryRow(ctx, tryLockSQL, key).Scan(&ok); err != nil {
				conn.Close(ctx)
				return nil, fmt.Errorf("take the migration lock: %w", err)
			}
			if ok || !holderDead(file) || time.Now().After(wait) {
				break
			}
			select {
			case <-ctx.Done():
				conn.Close(ctx)
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !ok {
			conn.Close(ctx)
			return nil, fmt.Errorf("%w (%s); wait for it to finish or stop it", ErrLocked, holder(file))
		}
	}
	host, _ := os.Hostname()
	info, _ := json.Marshal(lockInfo{PID: os.Getpid(), Host: host, Since: now.UTC()})
	_ = os.WriteFile(file, info, 0o600)
	return &Lock{conn: conn, file: file}, nil
}

// deadHolderWait is how long a lock whose holder has died is waited for.
const deadHolderWait = 5 * time.Second

// holderDead reports a lock file naming a process of this host that no
// longer runs.
func holderDead(file string) bool {
	info, ok := readLockInfo(file)
	if !ok || info.PID <= 0 {
		return false
	}
	if host, _ := os.Hostname(); host != info.Host {
		return false
	}
	return errors.Is(syscall.Kill(info.PID, 0), syscall.ESRCH)
}

func holder(file string) string {
	info, ok := readLockInfo(file)
	if !ok {
		return "holder unknown"
	}
	return fmt.Sprintf("pid %d on %s since %s", info.PID, info.Host, info.Since.Format(time.RFC3339))
}

// readLockInfo reads the lock file; ok is false when it is missing or
// unreadable.
func readLockInfo(file string) (info lockInfo, ok bool) {
	b, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(b, &info) != nil {
		return lockInfo{}, false
	}
	return info, true
}

// Release frees the lock. The session's advisory locks are released by a
// statement, not left to the end of the session: closing the connection
// does not wait for the server's backend to exit, and a next command of
// the same migration (cleanup right after apply) could find the lock
// still held.
func (l *Lock) Release(ctx context.Context) {
	os.Remove(l.file)
	if !l.conn.IsClosed() {
		l.conn.Exec(ctx, "SELECT pg_advisory_unlock_all()")
	}
	l.conn.Close(ctx)
}

// databaseLockSQL takes the lock of one target database; the key is the
// first 8 bytes of the SHA-256 of "pghaul-target-db:" and the name, so
// every migration into that database asks for the same one.
const databaseLockSQL = `SELECT pg_try_advisory_lock(('x' || substr(encode(sha256(convert_to('pghaul-target-db:' || $1, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint)`

// lockHolderSQL describes the session holding a database's lock.
const lockHolderSQL = `SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid <> pg_backend_pid()
  AND (l.classid::bigint << 32 | l.objid::bigint) = ('x' || substr(encode(sha256(convert_to('pghaul-target-db:' || $1, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint
LIMIT 1`

// DatabaseBusyError is a target database another pghaul is migrating into.
type DatabaseBusyError struct {
	Database, Holder string
}

func (e *DatabaseBusyError) Error() string {
	return fmt.Sprintf("database %s on the target is being migrated into by another pghaul (%s): run one migration per target database; change databases.include/exclude, or wait for the other to finish", e.Database, e.Holder)
}

// Databases also takes, on the lock's session, a lock per target database
// of the plan, held until Release: two migrations (two files, two state
// directories) into one target database would otherwise both create it and
// copy into it, colliding on its catalog and keys.
func (l *Lock) Databases(ctx context.Context, names []string) error {
	for _, name := range names {
		var ok bool
		if err := l.conn.QueryRow(ctx, databaseLockSQL, name).Scan(&ok); err != nil {
			return fmt.Errorf("take the lock of target database %s: %w", name, err)
		}
		if ok {
			continue
		}
		holder := "holder unknown"
		var pid int
		var app, client string
		var since time.Time
		if err := l.conn.QueryRow(ctx, lockHolderSQL, name).Scan(&pid, &app, &client, &since); err == nil {
			holder = fmt.Sprintf("target backend %d, application %q, from %s, since %s", pid, app, client, since.UTC().Format(time.RFC3339))
		}
		return &DatabaseBusyError{Database: name, Holder: holder}
	}
	return nil
}
