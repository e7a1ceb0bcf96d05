package apply

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// earlyIndex is an index of one table, or the constraint it backs, built
// as soon as the table's rows are committed, while other tables still
// copy. Post-data then finds it in the catalog and leaves its archive
// entry out.
type earlyIndex struct{ name, sql string }

// earlyIndexSQL reads, under the snapshot and with an empty search_path
// (every name qualified), the indexes whose archive entry holds nothing but
// the definition: pg_dump adds CLUSTER ON, REPLICA IDENTITY, statistics
// targets and a tablespace to an index's entry, so those, and indexes of
// partitions or with inherited constraints, stay with pg_restore. Invalid
// indexes are not dumped, so neither are they built.
const earlyIndexSQL = `SELECT n.nspname, c.relname, i.relname, COALESCE(k.conname, ''),
	CASE WHEN k.oid IS NULL THEN pg_get_indexdef(x.indexrelid)
		ELSE 'ALTER TABLE ONLY ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ADD CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid) END
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x')
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
	AND c.relkind = 'r' AND NOT c.relispartition
	AND x.indisvalid AND NOT x.indisclustered AND NOT x.indisreplident AND i.reltablespace = 0
	AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = x.indexrelid AND a.attstattarget >= 0)
	AND (k.oid IS NULL OR k.conislocal AND k.coninhcount = 0)
ORDER BY 1, 2, 3`

// indexRow is an index of earlyIndexSQL: its table, its name, the
// constraint it backs ("" for none) and the statement that builds it.
type indexRow struct {
	ref                    plan.TableRef
	index, constraint, def string
}

// earlyIndexRows reads the definitions of the tables' indexes under the
// snapshot (not those of extension configuration tables).
func earlyIndexRows(ctx context.Context, src *pgx.Conn, tables []copyTable) ([]indexRow, error) {
	var schemas, names []string
	for _, t := range tables {
		if !t.row.ExtConfig {
			schemas, names = append(schemas, t.ref.Schema), append(names, t.ref.Name)
		}
	}
	rows, err := src.Query(ctx, earlyIndexSQL, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("read index definitions: %w", err)
	}
	var out []indexRow
	var r indexRow
	_, err = pgx.ForEachRow(rows, []any{&r.ref.Schema, &r.ref.Name, &r.index, &r.constraint, &r.def}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read index definitions: %w", err)
	}
	return out, nil
}

// earlyIndexes returns, by table, the indexes the copy may build early:
// only those whose entry the post-data restore would otherwise run.
func (d *dbRun) earlyIndexes(ctx context.Context, rows []indexRow) (map[plan.TableRef][]earlyIndex, error) {
	toc, err := d.listTOC(ctx, "post-data")
	if err != nil {
		return nil, err
	}
	restored := map[string]bool{}
	for _, e := range toc {
		if (e.Kind == "INDEX" || e.Kind == "CONSTRAINT") && d.keep(e) {
			restored[e.Kind+" "+e.Schema+" "+e.Tag] = true
		}
	}
	out := map[plan.TableRef][]earlyIndex{}
	for _, r := range rows {
		// The archive entry the statement stands for.
		entry := "INDEX " + r.ref.Schema + " " + r.index
		if r.constraint != "" {
			entry = "CONSTRAINT " + r.ref.Schema + " " + r.ref.Name + " " + r.constraint
		}
		if restored[entry] && r.def != "" {
			out[r.ref] = append(out[r.ref], earlyIndex{name: r.index, sql: r.def})
		}
	}
	return out, nil
}

// indexBuilder builds the early indexes of each table handed to it, on up
// to parallel.indexes target sessions: the database's shared one (idle
// while the copy runs) and new ones. A statement the target refuses is
// left to post-data, which reports it if it fails there too.
type indexBuilder struct {
	d    *dbRun
	defs map[plan.TableRef][]earlyIndex
	// present holds the indexes the target's tables already have (a rerun
	// after a crash finds some built), by table.
	present map[plan.TableRef]map[string]bool
	queue   chan plan.TableRef
	done    chan struct{}
	busy    atomic.Int64
	// shared is taken by the worker building on d.target.
	shared atomic.Bool
	mu     sync.Mutex
	err    error
	built  int
}

// startIndexBuilder reads the indexes the target has, in one query, and
// starts building.
func (d *dbRun) startIndexBuilder(ctx context.Context, defs map[plan.TableRef][]earlyIndex) (*indexBuilder, error) {
	b := &indexBuilder{d: d, defs: defs, present: map[plan.TableRef]map[string]bool{}, queue: make(chan plan.TableRef, len(defs)), done: make(chan struct{})}
	if len(defs) > 0 {
		dst, err := d.targetSession(ctx)
		if err != nil {
			return nil, err
		}
		rows, err := dst.Query(ctx, existingIndexesSQL)
		if err != nil {
			return nil, fmt.Errorf("read the target's indexes: %w", err)
		}
		var ref plan.TableRef
		var index string
		_, err = pgx.ForEachRow(rows, []any{&ref.Schema, &ref.Name, &index}, func() error {
			if b.present[ref] == nil {
				b.present[ref] = map[string]bool{}
			}
			b.present[ref][index] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the target's indexes: %w", err)
		}
	}
	go func() {
		defer close(b.done)
		var wg sync.WaitGroup
		dispatch(ctx, b.queue, d.m.Config.Parallel.Indexes, &b.busy, nil, func(jobs <-chan plan.TableRef) {
			wg.Go(func() { b.worker(ctx, jobs) })
		})
		wg.Wait()
	}()
	return b, nil
}

// add queues a committed table; tables without early indexes are ignored.
// It never blocks: the queue holds every table that has some.
func (b *indexBuilder) add(ref plan.TableRef) {
	if len(b.defs[ref]) > 0 {
		b.queue <- ref
	}
}

// wait lets the queued builds finish and returns how many indexes were
// built; an error is only a cancellation or a lost session.
func (b *indexBuilder) wait() (int, error) {
	close(b.queue)
	<-b.done
	return b.built, b.err
}

func (b *indexBuilder) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
}

func (b *indexBuilder) worker(ctx context.Context, jobs <-chan plan.TableRef) {
	var dst *pgx.Conn
	shared := false
	defer func() {
		switch {
		case dst == nil:
		case shared:
			// Back as the other steps expect it.
			if _, err := dst.PgConn().Exec(context.WithoutCancel(ctx), "RESET search_path; RESET lock_timeout").ReadAll(); err != nil {
				closeSession(ctx, &b.d.target)
			}
		default:
			dst.Close(context.WithoutCancel(ctx))
		}
	}()
	for ref := range jobs {
		if ctx.Err() != nil {
			continue // drain until dispatch sees the cancellation
		}
		b.busy.Add(1)
		err := b.session(ctx, &dst, &shared)
		if err == nil {
			err = b.build(ctx, dst, ref)
		}
		b.busy.Add(-1)
		if err != nil {
			b.fail(err)
		}
	}
}

// session gets the worker's target session on its first table: the
// database's shared session (no statement timeout) for the first worker, a
// new one for the others; no lock timeout, an empty search_path.
func (b *indexBuilder) session(ctx context.Context, dst **pgx.Conn, shared *bool) error {
	if *dst != nil {
		return nil
	}
	var conn *pgx.Conn
	var err error
	if b.shared.CompareAndSwap(false, true) {
		conn, err = b.d.targetSession(ctx)
		*shared = err == nil
	} else {
		conn, err = b.d.m.Target.Connect(ctx, b.d.name, pg.Options{Settings: map[string]string{"statement_timeout": "0"}})
	}
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.set_config('search_path', '', false), pg_catalog.set_config('lock_timeout', '0', false)"); err != nil {
		if *shared {
			closeSession(ctx, &b.d.target)
			*shared = false
		} else {
			conn.Close(context.WithoutCancel(ctx))
		}
		return err
	}
	*dst = conn
	return nil
}

// existingIndexesSQL lists the target's indexes by table: one query, not
// one per table (a database of 1000 small tables spent a second on those).
const existingIndexesSQL = `SELECT n.nspname, c.relname, i.relname FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`

func (b *indexBuilder) build(ctx context.Context, dst *pgx.Conn, ref plan.TableRef) error {
	start := time.Now()
	var todo []earlyIndex
	for _, ix := range b.defs[ref] {
		if !b.present[ref][ix.name] {
			todo = append(todo, ix)
		}
	}
	built := 0
	if len(todo) > 1 {
		// A table's indexes in one statement string, one transaction: one
		// round trip and one commit for a small table's two or three
		// indexes. One the target refuses takes the others' back with it:
		// they are then built one by one.
		var sqls []string
		for _, ix := range todo {
			sqls = append(sqls, ix.sql)
		}
		if _, err := dst.PgConn().Exec(ctx, strings.Join(sqls, ";\n")).ReadAll(); err == nil {
			built, todo = len(todo), nil
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for _, ix := range todo {
		if _, err := dst.Exec(ctx, ix.sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.d.m.emit(Notice{Message: fmt.Sprintf("%s: index %s of %s left to post-data: %s", b.d.name, ix.name, ref, pg.Describe(err))})
			continue
		}
		built++
	}
	b.mu.Lock()
	b.built += built
	b.mu.Unlock()
	if built > 0 {
		b.d.m.emit(IndexesBuilt{Database: b.d.name, Table: ref, Count: built, Took: time.Since(start)})
	}
	return nil
}
