package apply

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLocked means another apply of the same migration is running.
var ErrLocked = errors.New("another pgferry apply of this migration is running")

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
// the one an earlier pgferry gave it, which an apply of that version
// still running would hold.
func AcquireLock(ctx context.Context, conn *pgx.Conn, stateDir string, now time.Time, stateKeys ...string) (*Lock, error) {
	file := filepath.Join(stateDir, "lock")
	for _, stateKey := range stateKeys {
		b, _ := hex.DecodeString(stateKey[:16])
		key := int64(binary.BigEndian.Uint64(b))
		var ok bool
		if err := conn.QueryRow(ctx, tryLockSQL, key).Scan(&ok); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("take the migration lock: %w", err)
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

func holder(file string) string {
	b, err := os.ReadFile(file)
	var info lockInfo
	if err != nil || json.Unmarshal(b, &info) != nil {
		return "holder unknown"
	}
	return fmt.Sprintf("pid %d on %s since %s", info.PID, info.Host, info.Since.Format(time.RFC3339))
}

// Release frees the lock.
func (l *Lock) Release(ctx context.Context) {
	os.Remove(l.file)
	l.conn.Close(ctx)
}
