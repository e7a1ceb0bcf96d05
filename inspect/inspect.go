// Package inspect is the only code that reads a cluster's catalogs: it
// builds a plan.Snapshot with a fixed number of queries for the cluster and
// one batch per database (never a query per table), every statement in a
// read-only transaction. What the connecting role may not read is recorded
// in Snapshot.Unknown, not returned as an error.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// Options say what to inspect.
type Options struct {
	// Select reports whether a database is inspected in depth; nil means all.
	Select func(name string) bool
	// TableRows checks whether each table holds a row (the target side).
	TableRows bool
	// Parallel bounds the databases inspected at once (default 4).
	Parallel int
	// Queries, when set, counts the statements sent (batched ones too).
	Queries *atomic.Int64
}

// Connector opens a read-only connection to a database of the cluster, and
// takes it back when the inspection is done with it (for apply's first
// steps to reuse).
type Connector interface {
	Connect(ctx context.Context, db string, opt pg.Options) (*pgx.Conn, error)
	Release(ctx context.Context, conn *pgx.Conn)
	Database() string
}

// Cluster inspects the server behind ep. The bootstrap connection failing
// is an error; a database that refuses connections gets Database.Error.
func Cluster(ctx context.Context, ep Connector, opt Options) (plan.Snapshot, error) {
	conn, err := ep.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return plan.Snapshot{}, err
	}
	defer ep.Release(ctx, conn)
	r := &reader{conn: conn, count: opt.Queries, opt: opt}
	s, err := r.cluster(ctx)
	if err != nil {
		return plan.Snapshot{}, err
	}
	if err := inspectDatabases(ctx, ep, &s, opt); err != nil {
		return plan.Snapshot{}, err
	}
	return s, nil
}

// inspectDatabases reads the selected databases concurrently.
func inspectDatabases(ctx context.Context, ep Connector, s *plan.Snapshot, opt Options) error {
	limit := opt.Parallel
	if limit <= 0 {
		limit = 4
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range s.Databases {
		d := &s.Databases[i]
		if !d.AllowConn || !opt.selects(d.Name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := inspectDatabase(ctx, ep, s.Server.Major, d, opt)
			if err != nil && ctx.Err() != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, ctx.Err())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// inspectDatabase fills d's Contents; a failure to connect or read is
// recorded in d.Error (the plan reports it as connection-failed).
func inspectDatabase(ctx context.Context, ep Connector, major int, d *plan.Database, opt Options) error {
	conn, err := ep.Connect(ctx, d.Name, pg.Options{ReadOnly: true})
	if err != nil {
		var ce *pg.ConnectError
		if errors.As(err, &ce) {
			d.Error = pg.Describe(ce.Err)
		} else {
			d.Error = err.Error()
		}
		return err
	}
	defer ep.Release(ctx, conn)
	r := &reader{conn: conn, count: opt.Queries, major: major}
	c, err := r.contents(ctx, opt.TableRows)
	if err != nil {
		d.Error = fmt.Sprintf("read catalogs: %s", pg.Describe(err))
		if pg.HasCode(err, "22021") {
			d.NotUTF8 = true
			d.Error = notUTF8(ctx, conn)
		}
		return err
	}
	subs := d.Subscriptions
	d.Contents = c
	d.Subscriptions = subs
	d.Inspected = true
	return nil
}

// reader runs queries on one connection and counts them.
type reader struct {
	conn  *pgx.Conn
	count *atomic.Int64
	major int
	// opt is what the cluster's inspection was asked for (its Select).
	opt Options
}

// selects reports whether a database is selected (all when no Select).
func (o Options) selects(name string) bool { return o.Select == nil || o.Select(name) }

func (r *reader) sent(n int) {
	if r.count != nil {
		r.count.Add(int64(n))
	}
}

func (r *reader) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sent(1)
	return r.conn.Query(ctx, sql, args...)
}

func (r *reader) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	r.sent(1)
	return r.conn.QueryRow(ctx, sql, args...)
}

// notUTF8Names reads the names of schemas, relations and columns as
// bytes, which a UTF-8 session can always read.
const notUTF8Names = `SELECT convert_to(n.nspname, 'SQL_ASCII'), convert_to(COALESCE(c.relname, ''), 'SQL_ASCII'), convert_to(COALESCE(a.attname, ''), 'SQL_ASCII')
FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
ORDER BY 1, 2, 3`

// notUTF8 says why a database's catalog cannot be read as UTF-8, naming
// the first schemas, relations and columns whose names are not, with the
// bytes escaped (\xe9).
func notUTF8(ctx context.Context, conn *pgx.Conn) string {
	const head = "its catalog holds text that is not valid UTF-8, which a SQL_ASCII database allows and pghaul cannot carry"
	rows, err := conn.Query(ctx, notUTF8Names)
	if err != nil {
		return head
	}
	var bad []string
	var schema, rel, col []byte
	_, err = pgx.ForEachRow(rows, []any{&schema, &rel, &col}, func() error {
		name := ""
		switch {
		case !utf8.Valid(schema):
			name = "schema " + quoteBytes(schema)
		case !utf8.Valid(rel):
			name = "relation " + quoteBytes(schema) + "." + quoteBytes(rel)
		case !utf8.Valid(col):
			name = "column " + quoteBytes(schema) + "." + quoteBytes(rel) + "." + quoteBytes(col)
		}
		if name != "" && !slices.Contains(bad, name) && len(bad) < 5 {
			bad = append(bad, name)
		}
		return nil
	})
	if err != nil || len(bad) == 0 {
		return head + " (in a name or comment not listed here)"
	}
	return head + ": " + strings.Join(bad, ", ")
}

// quoteBytes shows a name with its bytes that are not UTF-8 escaped.
func quoteBytes(b []byte) string {
	q := strconv.Quote(string(b))
	return q[1 : len(q)-1]
}
