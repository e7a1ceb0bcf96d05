package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
)

var largeObjectsSQL = `SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl IS NOT NULL, ` + fmt.Sprintf(aclJSON, "m.lomacl") + `,
	pg_catalog.obj_description(m.oid, 'pg_largeobject')
FROM pg_largeobject_metadata m ORDER BY 1`

// loChunk is how much of a large object moves per round trip once it
// outgrows its first read.
const loChunk = 1 << 20

// loBatch objects share one target transaction, and each of their first
// loHead bytes travel in one round trip per side: databases of many small
// objects (attachments, documents) would otherwise pay several round
// trips per object. At most loBatch x loHead (16 MiB) is held at once.
const (
	loBatch = 256
	loHead  = 64 << 10
)

type largeObject struct {
	oid    uint32
	owner  string
	hasACL bool
	acl    []aclItem
	// comment is nil without one.
	comment *string
}

// copyLargeObjects copies large objects under the snapshot, loBatch
// objects per target transaction, each with its OID, owner, privileges and
// comment; an object a crashed run left is replaced.
func (d *dbRun) copyLargeObjects(ctx context.Context, _ plan.Step) (string, error) {
	src, release, err := d.snapshotSession(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	los, err := readLargeObjects(ctx, src, nil)
	if err != nil {
		return "", err
	}
	dst, err := d.targetSession(ctx)
	if err != nil {
		return "", err
	}
	c := &loCopy{d: d, src: src, dst: dst, owners: map[string]string{}}
	for start := 0; start < len(los); start += loBatch {
		batch := los[start:min(start+loBatch, len(los))]
		if err := c.batch(ctx, batch); err != nil {
			return "", fmt.Errorf("large objects %d to %d: %w", batch[0].oid, batch[len(batch)-1].oid, err)
		}
		crashPoint("lo:" + d.name)
	}
	msg := fmt.Sprintf("%s, %s", words.Count(len(los), "large object"), byteString(c.bytes))
	if c.skipped > 0 {
		msg += fmt.Sprintf("; %s to roles missing on the target skipped", words.Count(int(c.skipped), "grant"))
	}
	return msg, nil
}

// readLargeObjects reads the large objects on conn, those keep takes (all
// with a nil keep), in OID order.
func readLargeObjects(ctx context.Context, conn *pgx.Conn, keep func(largeObject) bool) ([]largeObject, error) {
	rows, err := conn.Query(ctx, largeObjectsSQL)
	if err != nil {
		return nil, fmt.Errorf("read large objects: %w", err)
	}
	var los []largeObject
	var lo largeObject
	if _, err := pgx.ForEachRow(rows, []any{&lo.oid, &lo.owner, &lo.hasACL, &lo.acl, &lo.comment}, func() error {
		if keep == nil || keep(lo) {
			los = append(los, lo)
		}
		lo = largeObject{}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read large objects: %w", err)
	}
	return los, nil
}

// loCopy copies batches of large objects between two sessions.
type loCopy struct {
	d        *dbRun
	src, dst *pgx.Conn
	// owners maps a source owner to the role that owns on the target
	// (ownerFor, asked once per owner).
	owners         map[string]string
	bytes, skipped int64
}

const (
	loHeadsSQL  = `SELECT lo_get(t.oid, 0, $2) FROM unnest($1::oid[]) WITH ORDINALITY AS t(oid, n) ORDER BY t.n`
	loUnlinkSQL = `SELECT lo_unlink(m.oid) FROM pg_largeobject_metadata m WHERE m.oid = ANY ($1::oid[])`
	loCreateSQL = `SELECT lo_from_bytea(t.oid, t.data) FROM unnest($1::oid[], $2::bytea[]) AS t(oid, data)`
	loRolesSQL  = `SELECT rolname FROM pg_roles WHERE rolname = ANY ($1)`
)

// batch copies objects in one target transaction: the first loHead bytes
// of all of them in one read and one write, the rest of a larger object in
// loChunk pieces, then owners and privileges in one multi-statement round
// trip (grants to roles missing on the target are left out and counted).
func (c *loCopy) batch(ctx context.Context, los []largeObject) error {
	oids := make([]uint32, len(los))
	for i, lo := range los {
		oids[i] = lo.oid
	}
	rows, err := c.src.Query(ctx, loHeadsSQL, oids, loHead)
	if err != nil {
		return err
	}
	heads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return err
	}
	if len(heads) != len(los) {
		return fmt.Errorf("read %d of %d objects", len(heads), len(los))
	}
	for i := range heads {
		if heads[i] == nil {
			heads[i] = []byte{} // an empty object, not NULL: lo_from_bytea is strict
		}
	}
	stmts, err := c.privileges(ctx, los)
	if err != nil {
		return err
	}
	tx, err := c.dst.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, loUnlinkSQL, oids); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, loCreateSQL, oids, heads); err != nil {
		return err
	}
	for i, lo := range los {
		c.bytes += int64(len(heads[i]))
		if len(heads[i]) < loHead {
			continue
		}
		for offset := int64(loHead); ; {
			var chunk []byte
			if err := c.src.QueryRow(ctx, "SELECT lo_get($1, $2, $3)", lo.oid, offset, loChunk).Scan(&chunk); err != nil {
				return fmt.Errorf("large object %d: %w", lo.oid, err)
			}
			if len(chunk) > 0 {
				if _, err := tx.Exec(ctx, "SELECT lo_put($1, $2, $3)", lo.oid, offset, chunk); err != nil {
					return fmt.Errorf("large object %d: %w", lo.oid, err)
				}
			}
			offset += int64(len(chunk))
			c.bytes += int64(len(chunk))
			if len(chunk) < loChunk {
				break
			}
		}
	}
	if _, err := tx.Exec(ctx, strings.Join(stmts, ";\n")); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// privileges are the owner, ACL and comment statements of los on the
// target.
func (c *loCopy) privileges(ctx context.Context, los []largeObject) ([]string, error) {
	var grantees []string
	for _, lo := range los {
		for _, a := range lo.acl {
			grantees = append(grantees, a.Grantee)
		}
	}
	present := map[string]bool{"PUBLIC": true}
	if len(grantees) > 0 {
		names, err := queryStrings(ctx, c.dst, loRolesSQL, grantees)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			present[n] = true
		}
	}
	var stmts []string
	for _, lo := range los {
		owner, ok := c.owners[lo.owner]
		if !ok {
			o, _, err := c.d.m.ownerFor(ctx, c.dst, lo.owner)
			if err != nil {
				return nil, err
			}
			owner, c.owners[lo.owner] = o, o
		}
		obj := fmt.Sprintf("LARGE OBJECT %d", lo.oid)
		stmts = append(stmts, "ALTER "+obj+" OWNER TO "+ident(owner))
		if lo.comment != nil {
			stmts = append(stmts, "COMMENT ON "+obj+" IS "+literal(*lo.comment))
		}
		if !lo.hasACL {
			continue
		}
		var acl []aclItem
		for _, a := range lo.acl {
			if present[a.Grantee] {
				acl = append(acl, a)
			} else {
				c.skipped++
			}
		}
		stmts = append(stmts, grants(obj, acl)...)
	}
	return stmts, nil
}
