package apply

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// snapshotHolder keeps the transaction whose snapshot the schema dump and
// the copy workers import; the snapshot dies with this session.
type snapshotHolder struct {
	id string
	// conn is the exporting session when it can run queries (the dump
	// method's transaction; not the replication connection of a slot).
	conn *pgx.Conn
	// close ends the holding session (a transaction, or the replication
	// connection that created the slot).
	close func()
}

// holderSettings keep an idle snapshot holder alive for hours.
var holderSettings = map[string]string{"statement_timeout": "0", "idle_in_transaction_session_timeout": "0", "lock_timeout": "0"}

func (d *dbRun) exportSnapshot(ctx context.Context, _ plan.Step) (string, error) {
	d.releaseSnapshot()
	// Read-only like the plan's inspection, whose session it can reuse.
	conn, err := d.m.Source.Connect(ctx, d.name, pg.Options{ReadOnly: true, Settings: holderSettings})
	if err != nil {
		return "", err
	}
	var id string
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return "", fmt.Errorf("begin snapshot transaction: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return "", fmt.Errorf("export snapshot: %w", err)
	}
	d.snap = &snapshotHolder{id: id, conn: conn, close: func() {
		ctx := context.Background()
		conn.Exec(ctx, "COMMIT")
		conn.Close(ctx)
	}}
	return "snapshot " + id, nil
}

// importSnapshot begins a read-only REPEATABLE READ transaction on conn
// that sees the exported snapshot id.
func importSnapshot(ctx context.Context, conn *pgconn.PgConn, id string) error {
	if err := execAll(ctx, conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "SET TRANSACTION SNAPSHOT "+literal(id)); err != nil {
		return fmt.Errorf("import snapshot: %w", err)
	}
	return nil
}

// snapshotSession is a source session that sees the exported snapshot:
// the exporting transaction itself when it can run queries, or a new
// session importing it (release closes that one only).
func (d *dbRun) snapshotSession(ctx context.Context) (*pgx.Conn, func(), error) {
	if d.snap == nil && d.resume {
		// A resumed copy keeps the slot, whose snapshot died with the
		// earlier run. What still reads under a snapshot (large objects,
		// made exact at the cut-over) takes a new one.
		if _, err := d.exportSnapshot(ctx, plan.Step{}); err != nil {
			return nil, nil, err
		}
	}
	id, err := d.snapshotID()
	if err != nil {
		return nil, nil, err
	}
	if d.snap.conn != nil {
		return d.snap.conn, func() {}, nil
	}
	conn, err := d.m.Source.Connect(ctx, d.name, pg.Options{ReadOnly: true, Settings: holderSettings})
	if err != nil {
		return nil, nil, err
	}
	if err := importSnapshot(ctx, conn.PgConn(), id); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return conn, func() { conn.Close(context.WithoutCancel(ctx)) }, nil
}

func (d *dbRun) snapshotID() (string, error) {
	if d.snap == nil {
		return "", fmt.Errorf("no exported snapshot for database %s", d.name)
	}
	return d.snap.id, nil
}

func (d *dbRun) releaseSnapshot() {
	d.prefetched() // a prefetch may read on the exporting transaction
	if d.snap != nil {
		d.snap.close()
		d.snap = nil
	}
}
