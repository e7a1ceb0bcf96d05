package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/copyrelay"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// copyTable is one table to stream, with what the copy needs to know.
type copyTable struct {
	ref plan.TableRef
	// columns are the quoted stored columns (generated ones are left out:
	// the target computes them).
	columns []string
	// condition is an extension configuration table's extcondition ("WHERE
	// ..."): only those rows move, and only those are deleted first.
	condition string
	// row is what decides whether the migration copies it, and how
	// publications name it.
	row rowTable
	// binary: every column is of a type whose binary COPY form is the same
	// on every supported version and costs both servers less (binaryTypes).
	binary bool
	// bytes is the table's size on the source (heap and TOAST).
	bytes int64
	// sqlName, sqlCols and sqlCond are the quoted name, the column list
	// and the condition as the COPY statements spell them: in the
	// database's encoding (encodeStatements).
	sqlName, sqlCols, sqlCond string
}

// weight is what the table counts for in deciding whether the tables
// waiting pay for another copy worker (worthByWeight).
func (t copyTable) weight() int64 { return t.bytes + tableWeight }

// format is the COPY format the table travels in.
func (t copyTable) format() string {
	if t.binary {
		return "binary"
	}
	return "text"
}

// binaryTypes are the built-in types copied in COPY's binary format when a
// table has no other: their send/receive forms have not changed since long
// before PostgreSQL 12, carry no OIDs, and cost the two servers less than
// text (bench/formats: floats, date/time, bool, uuid and bytea about half,
// integers and char(n) 0.8, text and numeric the same). jsonb and arrays
// cost more in binary, reg* types would send OIDs, and types from
// extensions or the user stay text; so does a table with any of them.
var binaryTypes = qualified(
	"int2", "int4", "int8", "oid", "float4", "float8", "numeric", "bool",
	"char", "bpchar", "varchar", "text", "name", "bytea", "uuid",
	"date", "time", "timetz", "timestamp", "timestamptz", "interval",
	"inet", "cidr", "macaddr", "macaddr8", "bit", "varbit",
)

// qualified names built-in types in pg_catalog, as regtype input reads
// them whatever the search_path ("pg_catalog.char" is "char", not bpchar).
func qualified(types ...string) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = "pg_catalog." + t
	}
	return out
}

func (t copyTable) key() string { return t.ref.String() }

// rowTable is a table that holds rows with what decides whether the
// migration moves them (plan.CopiesRows), as rowTableColumns read it: its
// persistence, its partition tree's root (itself when it is no partition),
// its extension; and its name and its root's quoted as publications list
// them (quotedRoot empty when it is no partition).
type rowTable struct {
	plan.Table
	root               plan.TableRef
	quoted, quotedRoot string
}

// rowTableColumns, rowTablesFrom and rowTablesWhere read rowTables.
const (
	rowTableColumns = `n.nspname, c.relname, c.relpersistence::text, format('%I.%I', n.nspname, c.relname),
	COALESCE(rn.nspname, n.nspname), COALESCE(r.relname, c.relname), CASE WHEN r.oid IS NULL THEN '' ELSE format('%I.%I', rn.nspname, r.relname) END,
	COALESCE(x.extname, ''), COALESCE(c.oid = ANY (x.extconfig), false)`
	rowTablesFrom = `
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class r ON c.relispartition AND r.oid = pg_partition_root(c.oid)
LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
LEFT JOIN pg_extension x ON x.oid = d.refobjid`
	rowTablesWhere = `
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`
)

// dest is where a row of rowTableColumns is scanned.
func (t *rowTable) dest() []any {
	t.Kind = plan.KindTable
	return []any{&t.Schema, &t.Name, &t.Persistence, &t.quoted, &t.root.Schema, &t.root.Name, &t.quotedRoot, &t.Extension, &t.ExtConfig}
}

// copiesRows reports whether the migration copies t's rows.
func (d *dbRun) copiesRows(t rowTable) bool {
	return plan.CopiesRows(d.m.Config, d.name, t.Table, t.root)
}

// tableColumnsSQL reads each table's copied columns, its extension
// configuration table's condition, whether every copied column (a domain
// by its base type) is one of $1, its size, then rowTableColumns.
const tableColumnsSQL = `SELECT
	COALESCE((SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '{}'),
	COALESCE(x.extcondition[array_position(x.extconfig, c.oid)], ''),
	COALESCE((SELECT bool_and((SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END FROM pg_type t WHERE t.oid = a.atttypid) = ANY ($1::pg_catalog.regtype[]))
		FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), false),
	` + pg.RelationBytesSQL + `,
	` + rowTableColumns + rowTablesFrom

// copyTablesSQL reads every table that holds rows under the snapshot:
// those the plan lists, and any the migration copies that was created
// after the plan (copyTables).
const copyTablesSQL = tableColumnsSQL + rowTablesWhere

// plannedTablesSQL reads the tables named by $2 (schemas) and $3.
const plannedTablesSQL = tableColumnsSQL + `
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($2::text[], $3::text[]))`

const sessionFactsSQL = `SELECT pg_encoding_to_char(d.encoding), current_setting('lc_monetary') FROM pg_database d WHERE d.datname = current_database()`

// copySession are the session settings of DESIGN.md section 5 for both
// ends of a COPY stream: stable text forms, the database's own encoding
// (no conversion, so SQL_ASCII survives), no row security, no timeouts.
func copySession(encoding string) map[string]string {
	return map[string]string{
		"DateStyle": "ISO", "IntervalStyle": "postgres", "extra_float_digits": "3", "client_encoding": encoding,
		"row_security": "off", "statement_timeout": "0", "idle_in_transaction_session_timeout": "0", "lock_timeout": "0",
	}
}

// copyData copies every planned table under the snapshot: parallel.tables
// workers, largest tables first, each table in one target transaction
// (TRUNCATE ONLY, COPY ... FREEZE, COMMIT, or a lone COPY for a small
// table known empty) so a crash never leaves it half copied and a rerun
// copies it again from empty.
func (d *dbRun) copyData(ctx context.Context, st plan.Step) (string, error) {
	if d.resume {
		return d.recopy(ctx, st)
	}
	id, err := d.snapshotID()
	if err != nil {
		return "", err
	}
	setup, err := d.copySetup(ctx, st)
	if err != nil {
		return "", err
	}
	encoding, monetary := setup.encoding, setup.monetary
	tables, err := d.takeAdded(ctx, setup.tables, setup.added, setup.uncarried)
	if err != nil {
		return "", err
	}
	if err := d.takeGone(ctx, setup.gone); err != nil {
		return "", err
	}
	indexes, err := d.earlyIndexes(ctx, setup.indexes)
	if err != nil {
		return "", err
	}
	todo, empty, err := d.restartCopy(ctx, tables)
	if err != nil {
		return "", err
	}
	bctx, stopBuilds := context.WithCancel(ctx)
	defer stopBuilds()
	builder, err := d.startIndexBuilder(bctx, indexes)
	if err != nil {
		return "", err
	}
	e := &engine{d: d, snapshot: id, encoding: encoding, monetary: monetary, active: map[string]*atomic.Int64{}, indexes: builder, empty: empty}
	e.holder = d.snap.conn
	err = e.run(ctx, todo, len(tables))
	if err == nil && e.holderTaken.Load() {
		err = e.returnHolder(ctx)
	}
	if err != nil {
		stopBuilds()
	}
	built, berr := e.indexes.wait()
	if err = errors.Join(err, berr); err != nil {
		return "", err
	}
	ds := d.m.dbState(d.name)
	msg := fmt.Sprintf("%s, %s", words.Count(len(tables), "table"), byteString(ds.Bytes))
	if built > 0 {
		msg += fmt.Sprintf(", %s built as their tables finished", words.Count(built, "index"))
	}
	return msg, nil
}

func byteString(n int64) string { return config.ByteSize(n).String() }

// dumpedTables are the tables the schema archive creates.
func (d *dbRun) dumpedTables(ctx context.Context) (map[plan.TableRef]bool, error) {
	toc, err := d.listTOC(ctx, "")
	if err != nil {
		return nil, err
	}
	dumped := map[plan.TableRef]bool{}
	for _, e := range toc {
		if e.Kind == "TABLE" {
			dumped[plan.TableRef{Schema: e.Schema, Name: e.Tag}] = true
		}
	}
	return dumped, nil
}

// appendNew appends to list the refs it does not hold yet.
func appendNew(list, refs []plan.TableRef) []plan.TableRef {
	for _, r := range refs {
		if !slices.Contains(list, r) {
			list = append(list, r)
		}
	}
	return list
}

// takeGone records the planned tables the copy did not find on the source
// (under its snapshot, or a resumed copy's source): dropped after the plan,
// as a retention job drops old partitions. A schema dump made under the
// same snapshot does not have them either, so the target does not get
// them; nothing copies or compares them, and the run says so. One that a
// schema dump from before (an earlier run's, kept) made on the target is
// left there, and the database ends with a warning naming it.
func (d *dbRun) takeGone(ctx context.Context, gone []plan.TableRef) error {
	if len(gone) == 0 {
		return nil
	}
	dumped, err := d.dumpedTables(ctx)
	if err != nil {
		return err
	}
	var names, kept []string
	for _, r := range gone {
		names = append(names, r.String())
		if dumped[r] {
			kept = append(kept, r.String())
		}
	}
	slices.Sort(names)
	slices.Sort(kept)
	ds := d.m.dbState(d.name)
	d.m.updateDB(d.name, func() { ds.Gone = appendNew(ds.Gone, gone) })
	d.m.emit(Notice{Message: fmt.Sprintf("%s: %s of the plan %s dropped on the source since, and %s not migrated: %s",
		d.name, words.Count(len(gone), "table"), words.Agree(len(gone), "was", "were"), words.Agree(len(gone), "is", "are"), words.Some(names, 5))})
	if len(kept) > 0 {
		d.m.warnDatabase(d.name, fmt.Sprintf("%s dropped on the source after the schema dump %s still on the target: %s (drop %s there if %s should go)",
			words.Count(len(kept), "table"), words.Agree(len(kept), "is", "are"), words.Some(kept, 5), words.Agree(len(kept), "it", "them"), words.Agree(len(kept), "it", "they")))
	}
	return nil
}

// copySource is what the copy reads from the source, under the snapshot,
// before its first table: the database's encoding and lc_monetary, the
// tables' columns and sizes with their statements in that encoding, and
// their indexes' definitions. On 10,000 small tables it took 0.9 s while
// both servers idled; it is read while the schema is dumped and restored
// (prefetchCopySource) when it can be.
type copySource struct {
	encoding, monetary string
	tables             []copyTable
	indexes            []indexRow
	// added are the tables of tables, at their end, that the plan does not
	// list (copyTables); uncarried those of them the database's
	// publication did not carry at the snapshot; gone the planned tables
	// the snapshot does not have (dropped after the plan).
	added, uncarried, gone []plan.TableRef
}

// readCopySource reads it on src, a session in the snapshot's transaction:
// every name qualified (search_path is empty until the transaction ends).
func (d *dbRun) readCopySource(ctx context.Context, src *pgx.Conn, refs []plan.TableRef) (copySource, error) {
	var c copySource
	_, err := src.Exec(ctx, "SELECT pg_catalog.set_config('search_path', '', true)")
	if err == nil {
		err = src.QueryRow(ctx, sessionFactsSQL).Scan(&c.encoding, &c.monetary)
	}
	if err == nil {
		var added []copyTable
		c.tables, c.gone, err = d.copyTables(ctx, src, refs, &added)
		for _, t := range added {
			c.tables, c.added = append(c.tables, t), append(c.added, t.ref)
		}
	}
	if err == nil && len(c.added) > 0 {
		c.uncarried, err = d.uncarried(ctx, src, c.tables[len(c.tables)-len(c.added):])
	}
	if err == nil {
		c.indexes, err = earlyIndexRows(ctx, src, c.tables)
	}
	if err == nil {
		err = encodeStatements(ctx, src, c.encoding, c.tables)
	}
	return c, err
}

// copyPrefetch is copySource being read on a session of its own.
type copyPrefetch struct {
	done   chan struct{}
	source copySource
	err    error
}

// uncarried are the tables of added that the database's publication (if
// it has one) does not carry as src's snapshot sees it (publicationRels
// reads pg_publication_rel as any table, so as of the snapshot), by
// themselves or through their partition root: replication would not bring
// their changes.
func (d *dbRun) uncarried(ctx context.Context, src *pgx.Conn, added []copyTable) ([]plan.TableRef, error) {
	pub, ok := d.step(plan.StepCreatePublication)
	if !ok {
		return nil, nil
	}
	all, rels, err := publicationRels(ctx, src, pub.Params.Publication)
	if err != nil {
		return nil, err
	}
	var out []plan.TableRef
	for _, t := range added {
		if !all && !slices.Contains(rels, t.row.quoted) && !slices.Contains(rels, t.row.quotedRoot) {
			out = append(out, t.ref)
		}
	}
	return out, nil
}

// takeAdded takes the tables created on the source after the plan that
// the copy found under its snapshot (added, at the end of tables) and
// says so. Those the schema dump made on the target are copied: without
// their rows they would be left empty while the migration reported done.
// A publication that did not carry them at the snapshot (publishNew adds
// them to a FOR TABLE one before the slot, where the role may) would not
// bring their changes, nor replication an unlogged one's: then the copy
// stops before its first table, naming them.
// Those created after the dump (a rerun's new snapshot is later than the
// dump it keeps) are not on the target: they are left out, and the
// database ends with a warning naming them.
func (d *dbRun) takeAdded(ctx context.Context, tables []copyTable, added, uncarried []plan.TableRef) ([]copyTable, error) {
	if len(added) == 0 {
		return tables, nil
	}
	dumped, err := d.dumpedTables(ctx)
	if err != nil {
		return nil, err
	}
	var copied, missing []string
	var take []plan.TableRef
	for _, r := range added {
		if dumped[r] {
			copied, take = append(copied, r.String()), append(take, r)
		} else {
			missing = append(missing, r.String())
		}
	}
	if len(missing) > 0 {
		tables = slices.DeleteFunc(tables, func(t copyTable) bool { return slices.Contains(added, t.ref) && !dumped[t.ref] })
		d.m.warnDatabase(d.name, fmt.Sprintf("%s created on the source after the schema dump %s not migrated: %s (create and copy %s by hand, or start over with --reset-state)",
			words.Count(len(missing), "table"), words.Agree(len(missing), "was", "were"), words.Some(missing, 5), words.Agree(len(missing), "it", "them")))
	}
	if len(copied) == 0 {
		return tables, nil
	}
	what := fmt.Sprintf("%s created on the source after the plan", words.Count(len(copied), "table"))
	var lost []string
	for _, r := range take {
		if slices.Contains(uncarried, r) {
			lost = append(lost, r.String())
		}
	}
	if len(lost) > 0 {
		pub, _ := d.step(plan.StepCreatePublication)
		return nil, fmt.Errorf("%s created on the source after the plan (%s): publication %s does not carry %s, so %s changes would not replicate; rerun apply with --reset-state to plan again",
			words.Count(len(lost), "table"), words.Some(lost, 5), pub.Params.Publication, words.Agree(len(lost), "it", "them"), words.Agree(len(lost), "its", "their"))
	}
	var unlogged []string
	for _, t := range tables {
		if t.row.Persistence == "u" && slices.Contains(take, t.ref) {
			unlogged = append(unlogged, t.key())
		}
	}
	if len(unlogged) > 0 && d.has(plan.StepCreateSlot) {
		return nil, fmt.Errorf("%s (%s) %s unlogged: replication does not carry unlogged tables, and the cut-over copies the planned ones only; rerun apply with --reset-state to plan again", what, words.Some(unlogged, 5), words.Agree(len(unlogged), "is", "are"))
	}
	ds := d.m.dbState(d.name)
	d.m.updateDB(d.name, func() { ds.Added = appendNew(ds.Added, take) })
	d.m.emit(Notice{Message: fmt.Sprintf("%s: %s %s copied too: %s", d.name, what, words.Agree(len(copied), "is", "are"), words.Some(copied, 5))})
	return tables, nil
}

// prefetchCopySource starts reading copySource for the copy step while
// the schema is dumped and restored, when the copy will run under the
// snapshot from the start: the dump and the pre-data restore take seconds
// on a schema of many tables without using the source's CPU fully. It
// reads on the snapshot's session (the exporting transaction, idle until
// the copy; no backend to start), which pinExtensions and releaseSnapshot
// wait for (prefetched).
func (d *dbRun) prefetchCopySource(ctx context.Context) {
	st, ok := d.step(plan.StepCopyData)
	if !ok || d.resume || d.snap == nil || d.prefetch != nil || d.m.stepStatus(st.ID) == state.StatusDone {
		return
	}
	p := &copyPrefetch{done: make(chan struct{})}
	d.prefetch = p
	go func() {
		defer close(p.done)
		src, release, err := d.snapshotSession(ctx)
		if err != nil {
			p.err = err
			return
		}
		defer release()
		p.source, p.err = d.readCopySource(ctx, src, st.Params.Tables)
	}()
}

// prefetched waits for a prefetch started, if any, to end.
func (d *dbRun) prefetched() {
	if d.prefetch != nil {
		<-d.prefetch.done
	}
}

// waitPrefetch waits for a prefetch started, if any, and takes it.
func (d *dbRun) waitPrefetch() *copyPrefetch {
	p := d.prefetch
	d.prefetched()
	d.prefetch = nil
	return p
}

// copySetup is copySource as prefetched, or read now on the snapshot's
// session (after a prefetch that failed too: a session the server refused
// when it ran, say).
func (d *dbRun) copySetup(ctx context.Context, st plan.Step) (copySource, error) {
	if p := d.waitPrefetch(); p != nil {
		if p.err == nil {
			return p.source, nil
		}
		d.m.Log.Debug("reading the copy's tables ahead failed; read again now", "database", d.name, "error", p.err)
	}
	src, release, err := d.snapshotSession(ctx)
	if err != nil {
		return copySource{}, err
	}
	defer release()
	return d.readCopySource(ctx, src, st.Params.Tables)
}

// copyTables reads the columns of the planned tables, keeping the plan's
// order (largest first). With added set, it also returns the tables the
// migration copies (plan.CopiesRows) that the plan does not list: created
// on the source after it, yet under the snapshot, so the schema dump made
// them; the largest first. Then a planned table the snapshot does not have
// is gone (dropped after the plan: a partition a retention job dropped);
// without added it is an error.
func (d *dbRun) copyTables(ctx context.Context, src *pgx.Conn, refs []plan.TableRef, added *[]copyTable) (tables []copyTable, gone []plan.TableRef, err error) {
	sql, args := copyTablesSQL, []any{binaryTypes}
	if added == nil {
		schemas, names := splitRefs(refs)
		sql, args = plannedTablesSQL, append(args, schemas, names)
	}
	rows, err := src.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read table columns: %w", err)
	}
	planned := make(map[plan.TableRef]bool, len(refs))
	for _, r := range refs {
		planned[r] = true
	}
	found := map[plan.TableRef]copyTable{}
	var extra []copyTable
	var t copyTable
	_, err = pgx.ForEachRow(rows, append([]any{&t.columns, &t.condition, &t.binary, &t.bytes}, t.row.dest()...), func() error {
		t.ref = t.row.Ref()
		switch {
		case planned[t.ref]:
			found[t.ref] = t
		case added != nil && d.copiesRows(t.row):
			extra = append(extra, t)
		}
		t.columns, t.condition, t.binary, t.bytes = nil, "", false, 0
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read table columns: %w", err)
	}
	out := make([]copyTable, 0, len(refs))
	for _, r := range refs {
		t, ok := found[r]
		switch {
		case ok:
			out = append(out, t)
		case added != nil:
			gone = append(gone, r)
		default:
			return nil, nil, fmt.Errorf("table %s is gone from the source (dropped after the plan): rerun apply with --reset-state to plan again", r)
		}
	}
	if added != nil {
		slices.SortFunc(extra, func(a, b copyTable) int {
			return cmp.Or(cmp.Compare(b.bytes, a.bytes), strings.Compare(a.key(), b.key()))
		})
		*added = extra
	}
	return out, gone, nil
}

// encodeStatements sets the parts of each table's COPY statements (its
// quoted name, columns and condition) in the database's encoding. The COPY
// sessions speak that encoding so that rows cross unconverted, and so a
// statement naming "café" in a LATIN1 database must be LATIN1 bytes; conn
// (UTF-8) has the server convert what is not ASCII, in one query.
func encodeStatements(ctx context.Context, conn *pgx.Conn, encoding string, tables []copyTable) error {
	var texts []string
	var slots []*string
	for i := range tables {
		t := &tables[i]
		t.sqlName, t.sqlCols, t.sqlCond = ident(t.ref.Schema, t.ref.Name), strings.Join(t.columns, ", "), t.condition
		for _, p := range []*string{&t.sqlName, &t.sqlCols, &t.sqlCond} {
			if !isASCII(*p) {
				texts, slots = append(texts, *p), append(slots, p)
			}
		}
	}
	// A SQL_ASCII server converts nothing: the bytes read are the stored ones.
	if len(texts) == 0 || encoding == "UTF8" || encoding == "SQL_ASCII" {
		return nil
	}
	rows, err := conn.Query(ctx, "SELECT pg_catalog.convert_to(u.x, $2) FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY u.n", texts, encoding)
	if err != nil {
		return fmt.Errorf("convert table names to %s: %w", encoding, err)
	}
	converted, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("convert table names to %s: %w", encoding, err)
	}
	for i, b := range converted {
		*slots[i] = string(b)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// restartCopy handles a copy that an earlier run began under another
// snapshot: without --resume-tables every table is emptied in one TRUNCATE
// ONLY (extension configuration tables lose only their condition's rows)
// and copied again; with it, finished tables are kept. empty reports that
// every table to copy is empty: the database's first copy run (recorded
// before any table is written) or one after that TRUNCATE.
func (d *dbRun) restartCopy(ctx context.Context, tables []copyTable) (todo []copyTable, empty bool, err error) {
	ds := d.m.dbState(d.name)
	first := false
	d.m.updateDB(d.name, func() {
		first = ds.CopyRuns == 0
		ds.CopyRuns++
	})
	if first {
		return tables, true, d.m.save()
	}
	resumeTables := d.m.ResumeTables
	if resumeTables && d.has(plan.StepCreateSlot) {
		// Tables kept under a new slot would miss the changes made between
		// the two: a replication copy resumes consistently or not at all.
		resumeTables = false
		d.m.emit(Notice{Message: fmt.Sprintf("%s: --resume-tables is for the dump method; this replication copy could not resume under its slot, so it starts over", d.name)})
	}
	if resumeTables {
		for _, t := range tables {
			if ds.Tables[t.key()].Status != state.StatusDone {
				todo = append(todo, t)
			}
		}
		d.m.emit(Notice{Message: fmt.Sprintf("%s: resuming the copy under a new snapshot, keeping %d finished tables (consistent only if the source took no writes)", d.name, len(tables)-len(todo))})
		return todo, false, d.m.save()
	}
	d.m.emit(Notice{Message: fmt.Sprintf("%s: the copy was interrupted; a snapshot cannot be resumed, so its %s emptied and copied again under a new one", d.name, words.Count(len(tables), "table")+" "+words.Agree(len(tables), "is", "are"))})
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return nil, false, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var plain []string
	for _, t := range tables {
		if t.row.ExtConfig {
			if _, err := dst.Exec(ctx, "DELETE FROM ONLY "+ident(t.ref.Schema, t.ref.Name)+" "+t.condition); err != nil {
				return nil, false, err
			}
			continue
		}
		plain = append(plain, ident(t.ref.Schema, t.ref.Name))
	}
	if len(plain) > 0 {
		if _, err := dst.Exec(ctx, "TRUNCATE ONLY "+strings.Join(plain, ", ")); err != nil {
			return nil, false, fmt.Errorf("empty the partly copied tables: %w", err)
		}
	}
	return tables, true, d.m.saveDBChange(d.name, func() { ds.Tables, ds.Bytes = map[string]state.TableState{}, 0 })
}

// engine runs the copy workers of one database.
type engine struct {
	d                            *dbRun
	snapshot, encoding, monetary string
	mu                           sync.Mutex
	active                       map[string]*atomic.Int64
	done                         atomic.Int64
	// busy counts the workers copying a table; queued is the weight of the
	// tables no worker has taken yet.
	busy, queued atomic.Int64
	// indexes builds each table's indexes once its copy commits.
	indexes *indexBuilder
	// empty: every table to copy is empty (restartCopy).
	empty bool
	// holder is the session exporting the snapshot when it can run
	// queries: the first worker reads its tables there instead of opening
	// a session that imports the snapshot (a backend costs the server tens
	// of milliseconds of CPU). holderTaken says a worker has it.
	holder      *pgx.Conn
	holderTaken atomic.Bool
	holderWas   map[string]string
}

// takeHolder gives the snapshot holder to the first worker asking, with
// the copy's session settings; it stays open when the worker ends.
func (e *engine) takeHolder(ctx context.Context) (*pgconn.PgConn, error) {
	if e.holder == nil || !e.holderTaken.CompareAndSwap(false, true) {
		return nil, nil
	}
	var err error
	if e.holderWas, err = settingsOf(ctx, e.holder, slices.Collect(maps.Keys(copySession(e.encoding)))); err != nil {
		return nil, fmt.Errorf("read the snapshot session's settings: %w", err)
	}
	if err := pg.SetConfig(ctx, e.holder, copySession(e.encoding)); err != nil {
		return nil, fmt.Errorf("set up the snapshot session for the copy: %w", err)
	}
	return e.holder.PgConn(), nil
}

// returnHolder puts the snapshot holder's settings back as they were (set
// when the session was reused, not at its start, so RESET would not do)
// for the steps that read under the snapshot after the copy (large
// objects).
func (e *engine) returnHolder(ctx context.Context) error {
	if err := putBack(ctx, e.holder, e.holderWas); err != nil {
		return fmt.Errorf("reset the snapshot session after the copy: %w", err)
	}
	return nil
}

// freezeFrom is the size from which a table is copied with TRUNCATE and
// COPY ... FREEZE in one transaction even into an empty table: its rows
// arrive frozen, so no later vacuum rewrites its pages and no first reader
// sets hint bits on every row. Below it the truncate costs the target more
// than that saves (about 1.4 ms of CPU per table with a TOAST table).
const freezeFrom = 1 << 20

func (e *engine) run(ctx context.Context, tables []copyTable, total int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, e.d.m.Config.Parallel.Tables)
	var wg sync.WaitGroup
	stop := e.reportProgress(ctx, total-len(tables), total)
	for _, t := range tables {
		e.queued.Add(t.weight())
	}
	dispatch(ctx, itemsOf(tables), e.d.m.Config.Parallel.Tables, &e.busy, worthByWeight(&e.queued), func(jobs <-chan copyTable) {
		wg.Go(func() {
			if err := e.worker(ctx, jobs); err != nil {
				errs <- err
				cancel()
			}
		})
	})
	wg.Wait()
	stop()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	return ctx.Err()
}

// worker copies tables on one pair of sessions, opened on its first table
// (dispatch may start a worker that finds no table left): the source one
// imports the snapshot once and reads every table under it.
func (e *engine) worker(ctx context.Context, jobs <-chan copyTable) error {
	var src, dst *pgconn.PgConn
	defer func() {
		for _, c := range []*pgconn.PgConn{src, dst} {
			if c != nil && (e.holder == nil || c != e.holder.PgConn()) {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for t := range jobs {
		e.queued.Add(-t.weight())
		// Busy from the copy on: a worker still connecting does not make
		// dispatch start another.
		if err := e.sessions(ctx, &src, &dst); err != nil {
			return err
		}
		e.busy.Add(1)
		err := e.copyOne(ctx, src, dst, t)
		e.busy.Add(-1)
		if err != nil {
			return fmt.Errorf("copy %s: %w", t.ref, err)
		}
	}
	return nil
}

// sessions opens a worker's pair of sessions unless it has them.
func (e *engine) sessions(ctx context.Context, src, dst **pgconn.PgConn) error {
	if *dst != nil {
		return nil
	}
	m := e.d.m
	if *src == nil {
		holder, err := e.takeHolder(ctx)
		if err != nil {
			return err
		}
		*src = holder
	}
	if *src == nil {
		conn, err := m.Source.ConnectRaw(ctx, e.d.name, pg.Options{Settings: copySession(e.encoding)})
		if err != nil {
			return err
		}
		*src = conn
		if err := importSnapshot(ctx, conn, e.snapshot); err != nil {
			return err
		}
	}
	dstSettings := copySession(e.encoding)
	dstSettings["lc_monetary"] = e.monetary
	conn, err := m.Target.ConnectRaw(ctx, e.d.name, pg.Options{Settings: dstSettings})
	if err != nil {
		return err
	}
	*dst = conn
	return nil
}

func execAll(ctx context.Context, conn *pgconn.PgConn, stmts ...string) error {
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s).ReadAll(); err != nil {
			return err
		}
	}
	return nil
}

// copyOne streams one table: COPY TO STDOUT on the source relayed into
// COPY FROM STDIN on the target, bytes never decoded, memory flat.
func (e *engine) copyOne(ctx context.Context, src, dst *pgconn.PgConn, t copyTable) error {
	start := time.Now()
	name, cols := t.sqlName, t.sqlCols
	// COPY of a table reads only that table (never inheritance children)
	// and costs the source less than a query; a condition needs the query.
	format := t.format()
	out := fmt.Sprintf("COPY %s (%s) TO STDOUT (FORMAT %s)", name, cols, format)
	if t.sqlCond != "" {
		out = fmt.Sprintf("COPY (SELECT %s FROM ONLY %s %s) TO STDOUT (FORMAT %s)", cols, name, t.sqlCond, format)
	}
	begin, options := "BEGIN; TRUNCATE ONLY "+name, "FORMAT "+format+", FREEZE"
	switch {
	case t.row.ExtConfig:
		// Rows the extension inserted itself stay; FREEZE needs a truncate.
		begin, options = "BEGIN; DELETE FROM ONLY "+name+" "+t.sqlCond, "FORMAT "+format
	case e.empty && t.bytes < freezeFrom:
		// Empty, and too small for FREEZE to pay for the truncate (new
		// files for the table, its TOAST table and index): the COPY
		// commits on its own.
		begin, options = "", "FORMAT "+format
	}
	in := fmt.Sprintf("COPY %s (%s) FROM STDIN (%s)", name, cols, options)
	if len(t.columns) == 0 {
		out = fmt.Sprintf("COPY %s TO STDOUT", name)
		in = fmt.Sprintf("COPY %s FROM STDIN", name)
	}
	if begin != "" {
		if err := execAll(ctx, dst, begin); err != nil {
			return err
		}
	}
	counter := e.track(t.key())
	defer e.untrack(t.key())
	e.d.m.emit(TableStarted{Database: e.d.name, Table: t.ref, Size: t.bytes})
	rows, err := copyrelay.Relay(ctx, src, dst, out, in, copyrelay.Options{Stall: time.Duration(e.d.m.Config.Parallel.StallTimeout), Counted: counter, Limiter: e.d.m.copyLimit,
		BeforeFirstWrite: func() { crashPoint("copy:" + e.d.name + "/" + t.key()) }})
	if err != nil {
		if begin != "" {
			execAll(context.WithoutCancel(ctx), dst, "ROLLBACK")
		}
		return err
	}
	if begin != "" {
		if err := execAll(ctx, dst, "COMMIT"); err != nil {
			return err
		}
	}
	crashPoint("table:" + e.d.name + "/" + t.key())
	if err := e.finish(t, rows, counter.Load(), time.Since(start)); err != nil {
		return err
	}
	e.indexes.add(t.ref)
	return nil
}

// finish records a committed table in the state and reports it.
func (e *engine) finish(t copyTable, rows, bytes int64, took time.Duration) error {
	m := e.d.m
	ds := m.dbState(e.d.name)
	m.updateDB(e.d.name, func() {
		ds.Tables[t.key()] = state.TableState{Status: state.StatusDone, Rows: rows, Bytes: bytes}
		ds.Bytes += bytes
	})
	n := e.done.Add(1)
	m.emit(TableCopied{Database: e.d.name, Table: t.ref, Rows: rows, Bytes: bytes, Took: took, Format: t.format()})
	if point := fmt.Sprintf("copied:%s/%d", e.d.name, n); crashWanted(point) {
		if err := m.save(); err != nil {
			return err
		}
		crashPoint(point)
	}
	return m.saveProgress()
}

func (e *engine) track(key string) *atomic.Int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &atomic.Int64{}
	e.active[key] = c
	return c
}

func (e *engine) untrack(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.active, key)
}

// reportProgress emits CopyProgress every ProgressEvery until stopped.
func (e *engine) reportProgress(ctx context.Context, already, total int) (stop func()) {
	every := e.d.m.ProgressEvery
	if every == 0 {
		every = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				e.mu.Lock()
				active := map[string]int64{}
				for k, c := range e.active {
					active[k] = c.Load()
				}
				e.mu.Unlock()
				var copied int64
				e.d.m.update(func() { copied = e.d.m.State.Databases[e.d.name].Bytes }) // finish writes it under the lock
				e.d.m.emit(CopyProgress{Database: e.d.name, Active: active, Done: already + int(e.done.Load()), Total: total, Bytes: copied})
			}
		}
	}()
	return func() { cancel(); <-done }
}
