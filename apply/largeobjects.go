package apply

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgferry/pgferry/internal/pg"
	"github.com/pgferry/pgferry/plan"
)

var largeObjectsSQL = `SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl IS NOT NULL, ` + fmt.Sprintf(aclJSON, "m.lomacl") + `
FROM pg_largeobject_metadata m ORDER BY 1`

// loChunk is how much of a large object moves per round trip.
const loChunk = 1 << 20

type largeObject struct {
	oid    uint32
	owner  string
	hasACL bool
	acl    []aclItem
}

// copyLargeObjects copies large objects under the snapshot in 1 MiB
// chunks, each object in one target transaction with its OID, owner and
// privileges; an object a crashed run left is replaced.
func (d *dbRun) copyLargeObjects(ctx context.Context, _ plan.Step) (string, error) {
	id, err := d.snapshotID()
	if err != nil {
		return "", err
	}
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{Settings: holderSettings})
	if err != nil {
		return "", err
	}
	defer src.Close(context.WithoutCancel(ctx))
	if err := importSnapshot(ctx, src.PgConn(), id); err != nil {
		return "", err
	}
	rows, err := src.Query(ctx, largeObjectsSQL)
	if err != nil {
		return "", err
	}
	var los []largeObject
	var lo largeObject
	if _, err := pgx.ForEachRow(rows, []any{&lo.oid, &lo.owner, &lo.hasACL, &lo.acl}, func() error {
		los = append(los, lo)
		lo = largeObject{}
		return nil
	}); err != nil {
		return "", fmt.Errorf("read large objects: %w", err)
	}
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{Settings: map[string]string{"statement_timeout": "0"}})
	if err != nil {
		return "", err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var bytes int64
	for _, lo := range los {
		n, err := d.copyLargeObject(ctx, src, dst, lo)
		if err != nil {
			return "", fmt.Errorf("large object %d: %w", lo.oid, err)
		}
		bytes += n
		crashPoint("lo:" + d.name)
	}
	return fmt.Sprintf("%d large objects, %s", len(los), byteString(bytes)), nil
}

func (d *dbRun) copyLargeObject(ctx context.Context, src, dst *pgx.Conn, lo largeObject) (int64, error) {
	tx, err := dst.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = $1", lo.oid); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "SELECT lo_create($1)", lo.oid); err != nil {
		return 0, err
	}
	var total int64
	for {
		var chunk []byte
		if err := src.QueryRow(ctx, "SELECT lo_get($1, $2, $3)", lo.oid, total, loChunk).Scan(&chunk); err != nil {
			return 0, err
		}
		if len(chunk) > 0 {
			if _, err := tx.Exec(ctx, "SELECT lo_put($1, $2, $3)", lo.oid, total, chunk); err != nil {
				return 0, err
			}
		}
		total += int64(len(chunk))
		if len(chunk) < loChunk {
			break
		}
	}
	owner, _, err := d.m.ownerFor(ctx, dst, lo.owner)
	if err != nil {
		return 0, err
	}
	obj := fmt.Sprintf("LARGE OBJECT %d", lo.oid)
	stmts := []string{"ALTER " + obj + " OWNER TO " + ident(owner)}
	if lo.hasACL {
		stmts = append(stmts, grants(obj, lo.acl)...)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil && !isMissingRole(err) {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
	}
	return total, tx.Commit(ctx)
}
