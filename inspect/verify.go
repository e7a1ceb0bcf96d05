package inspect

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// TableCheck compares one object on both sides: a table or materialized
// view (its rows), or a database's sequences or large objects as a whole.
type TableCheck struct {
	Database string `json:"database"`
	// Kind is "table", "materialized view", "sequences" or "large objects".
	Kind  string        `json:"kind"`
	Table plan.TableRef `json:"table,omitzero"`
	// SourceRows and TargetRows count rows, sequences or large objects.
	SourceRows int64 `json:"source_rows"`
	TargetRows int64 `json:"target_rows"`
	// SourceHash and TargetHash are order-independent hashes of the rows
	// (with checksums), in hex, else empty; for sequences and large
	// objects an MD5 of their values and contents.
	SourceHash string `json:"source_hash,omitempty"`
	TargetHash string `json:"target_hash,omitempty"`
	Err        string `json:"error,omitempty"`
}

// Name is what the check is about, for people.
func (c TableCheck) Name() string {
	if c.Kind == KindTable || c.Kind == KindMatView {
		return c.Table.String()
	}
	return c.Kind
}

// The kinds of TableCheck.
const (
	KindTable        = "table"
	KindMatView      = "materialized view"
	KindSequences    = "sequences"
	KindLargeObjects = "large objects"
)

// Equal reports whether both sides hold the same rows.
func (c TableCheck) Equal() bool {
	return c.Err == "" && c.SourceRows == c.TargetRows && c.SourceHash == c.TargetHash
}

// countSQL counts rows; hashSQL also sums a 64-bit hash of each row's text,
// which no row order changes.
const (
	countSQL = `SELECT count(*), '' FROM ONLY %s`
	hashSQL  = `SELECT count(*), coalesce(sum(('x' || substr(md5(r::text), 1, 16))::bit(64)::bigint::numeric), 0)::text FROM ONLY %s AS r`
)

// VerifySession makes the rows' text identical on both sides.
var VerifySession = map[string]string{"DateStyle": "ISO", "IntervalStyle": "postgres", "extra_float_digits": "3", "TimeZone": "UTC", "statement_timeout": "0"}

// Objects are what verify compares in one database.
type Objects struct {
	Tables, MatViews []plan.TableRef
	// Sequences and LargeObjects also compare the database's sequence
	// values and large objects.
	Sequences, LargeObjects bool
}

// Verify counts (and with checksums hashes) every table and materialized
// view of each database's objects on both sides at once, and compares its
// sequence values and large objects.
func Verify(ctx context.Context, src, dst *pg.Endpoint, objects map[string]Objects, checksums bool) ([]TableCheck, error) {
	var out []TableCheck
	for _, db := range sortedKeys(objects) {
		checks, err := verifyDatabase(ctx, src, dst, db, objects[db], checksums)
		if err != nil {
			return nil, err
		}
		out = append(out, checks...)
	}
	return out, nil
}

// missingDatabase is every check of db's objects when the target has no
// such database (one created on the source after the migration's plan):
// each differs.
func missingDatabase(db string, objects Objects) []TableCheck {
	why := "the target has no database " + db
	var out []TableCheck
	for _, t := range objects.Tables {
		out = append(out, TableCheck{Database: db, Kind: KindTable, Table: t, Err: why})
	}
	for _, v := range objects.MatViews {
		out = append(out, TableCheck{Database: db, Kind: KindMatView, Table: v, Err: why})
	}
	for _, c := range []struct {
		kind string
		on   bool
	}{{KindSequences, objects.Sequences}, {KindLargeObjects, objects.LargeObjects}} {
		if c.on {
			out = append(out, TableCheck{Database: db, Kind: c.kind, Err: why})
		}
	}
	return out
}

func verifyDatabase(ctx context.Context, src, dst *pg.Endpoint, db string, objects Objects, checksums bool) ([]TableCheck, error) {
	sc, err := src.Connect(ctx, db, pg.Options{ReadOnly: true, Settings: VerifySession})
	if err != nil {
		return nil, err
	}
	defer sc.Close(context.WithoutCancel(ctx))
	var monetary string
	if err := sc.QueryRow(ctx, "SELECT current_setting('lc_monetary')").Scan(&monetary); err != nil {
		return nil, err
	}
	settings := map[string]string{"lc_monetary": monetary}
	for k, v := range VerifySession {
		settings[k] = v
	}
	dc, err := dst.Connect(ctx, db, pg.Options{ReadOnly: true, Settings: settings})
	if pg.HasCode(err, "3D000") {
		return missingDatabase(db, objects), nil
	}
	if err != nil {
		return nil, err
	}
	defer dc.Close(context.WithoutCancel(ctx))
	out, err := CompareTables(ctx, sc, dc, db, objects.Tables, checksums)
	if err != nil {
		return nil, err
	}
	views, err := CompareTables(ctx, sc, dc, db, objects.MatViews, checksums)
	if err != nil {
		return nil, err
	}
	for i := range views {
		views[i].Kind = KindMatView
	}
	out = append(out, views...)
	for _, c := range []struct {
		kind, sql string
		on        bool
	}{{KindSequences, sequencesDigestSQL, objects.Sequences}, {KindLargeObjects, largeObjectsDigestSQL, objects.LargeObjects}} {
		if c.on {
			out = append(out, compareDigest(ctx, sc, dc, db, c.kind, c.sql))
		}
	}
	return out, ctx.Err()
}

// sequencesDigestSQL and largeObjectsDigestSQL count a database's
// sequences (large objects) and hash their values (contents, owners,
// privileges and comments) in name (OID) order.
const (
	sequencesDigestSQL    = `SELECT count(*), coalesce(md5(string_agg(format('%I.%I=%s', schemaname, sequencename, last_value), ',' ORDER BY schemaname, sequencename)), '') FROM pg_sequences`
	largeObjectsDigestSQL = `SELECT count(*), coalesce(md5(string_agg(m.oid::text || ':' || md5(lo_get(m.oid)) || ':' || pg_get_userbyid(m.lomowner) || ':' || coalesce(m.lomacl::text, '') || ':' || coalesce(md5(obj_description(m.oid, 'pg_largeobject')), ''), ',' ORDER BY m.oid)), '') FROM pg_largeobject_metadata m`
)

// compareDigest runs a digest query on both sides.
func compareDigest(ctx context.Context, sc, dc *pgx.Conn, db, kind, sql string) TableCheck {
	c := TableCheck{Database: db, Kind: kind}
	serr := sc.QueryRow(ctx, sql).Scan(&c.SourceRows, &c.SourceHash)
	derr := dc.QueryRow(ctx, sql).Scan(&c.TargetRows, &c.TargetHash)
	if serr != nil || derr != nil {
		c.Err = describeBoth(serr, derr)
	}
	return c
}

// CompareTables compares tables on sc and dc, sessions in database db with
// VerifySession's settings (the target's with the source's lc_monetary).
// A table that cannot be read on either side is a difference (Err).
func CompareTables(ctx context.Context, sc, dc *pgx.Conn, db string, tables []plan.TableRef, checksums bool) ([]TableCheck, error) {
	query := countSQL
	if checksums {
		query = hashSQL
	}
	out := make([]TableCheck, len(tables))
	for i, t := range tables {
		c := TableCheck{Database: db, Kind: KindTable, Table: t}
		q := fmt.Sprintf(query, pgx.Identifier{t.Schema, t.Name}.Sanitize())
		var wg sync.WaitGroup
		var serr, derr error
		wg.Go(func() { serr = sc.QueryRow(ctx, q).Scan(&c.SourceRows, &c.SourceHash) })
		wg.Go(func() { derr = dc.QueryRow(ctx, q).Scan(&c.TargetRows, &c.TargetHash) })
		wg.Wait()
		if serr != nil || derr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.Err = describeBoth(serr, derr)
		}
		c.SourceHash, c.TargetHash = hexSum(c.SourceHash), hexSum(c.TargetHash)
		out[i] = c
	}
	return out, nil
}

func describeBoth(serr, derr error) string {
	switch {
	case serr != nil && derr != nil:
		return "source: " + pg.Describe(serr) + "; target: " + pg.Describe(derr)
	case serr != nil:
		return "source: " + pg.Describe(serr)
	}
	return "target: " + pg.Describe(derr)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// hexSum writes hashSQL's decimal sum of row hashes in hex (modulo 2^64,
// 16 digits), as people compare hashes.
func hexSum(decimal string) string {
	n, ok := new(big.Int).SetString(decimal, 10)
	if !ok {
		return decimal // "" without checksums
	}
	n.Mod(n, new(big.Int).Lsh(big.NewInt(1), 64))
	return fmt.Sprintf("%016x", n)
}
