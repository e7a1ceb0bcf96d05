package apply

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pgferry/pgferry/internal/pg"
	"github.com/pgferry/pgferry/plan"
)

// TableCheck compares one table on both sides.
type TableCheck struct {
	Database   string
	Table      plan.TableRef
	SourceRows int64
	TargetRows int64
	// SourceHash and TargetHash are order-independent hashes of the rows
	// (with checksums), else empty.
	SourceHash, TargetHash string
	Err                    string
}

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

// verifySession makes the rows' text identical on both sides.
var verifySession = map[string]string{"DateStyle": "ISO", "IntervalStyle": "postgres", "extra_float_digits": "3", "TimeZone": "UTC", "statement_timeout": "0"}

// Verify counts (and with checksums hashes) every table of tables, by
// database, on both sides at once.
func Verify(ctx context.Context, src, dst *pg.Endpoint, tables map[string][]plan.TableRef, checksums bool) ([]TableCheck, error) {
	var out []TableCheck
	for _, db := range sortedKeys(tables) {
		checks, err := verifyDatabase(ctx, src, dst, db, tables[db], checksums)
		if err != nil {
			return nil, err
		}
		out = append(out, checks...)
	}
	return out, nil
}

func verifyDatabase(ctx context.Context, src, dst *pg.Endpoint, db string, tables []plan.TableRef, checksums bool) ([]TableCheck, error) {
	sc, err := src.Connect(ctx, db, pg.Options{ReadOnly: true, Settings: verifySession})
	if err != nil {
		return nil, err
	}
	defer sc.Close(context.WithoutCancel(ctx))
	var monetary string
	if err := sc.QueryRow(ctx, "SELECT current_setting('lc_monetary')").Scan(&monetary); err != nil {
		return nil, err
	}
	settings := map[string]string{"lc_monetary": monetary}
	for k, v := range verifySession {
		settings[k] = v
	}
	dc, err := dst.Connect(ctx, db, pg.Options{ReadOnly: true, Settings: settings})
	if err != nil {
		return nil, err
	}
	defer dc.Close(context.WithoutCancel(ctx))
	return verifyOn(ctx, sc, dc, db, tables, checksums)
}

// verifyOn compares tables on sc and dc, sessions in database db with
// verifySession's settings (the target's with the source's lc_monetary).
// A table that cannot be read on either side is a difference (Err).
func verifyOn(ctx context.Context, sc, dc *pgx.Conn, db string, tables []plan.TableRef, checksums bool) ([]TableCheck, error) {
	query := countSQL
	if checksums {
		query = hashSQL
	}
	out := make([]TableCheck, len(tables))
	for i, t := range tables {
		c := TableCheck{Database: db, Table: t}
		q := fmt.Sprintf(query, ident(t.Schema, t.Name))
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
