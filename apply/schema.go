package apply

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgdump"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
)

// dumpSchema dumps pre-data and post-data (not --schema-only, which drops
// the materialized views' data entries) under the exported snapshot into
// the state directory, through a temp file so a crash leaves no half archive.
// Large objects are left out (-B, --no-blobs before 16): the copy moves
// them, with their owners, privileges and comments, and the restore left
// their entries out anyway (keep); a database of 100,000 of them had as
// many pre-data entries to dump, render and parse.
func (d *dbRun) dumpSchema(ctx context.Context, _ plan.Step) (string, error) {
	args := []string{"-Fc", "--section=pre-data", "--section=post-data", "--no-subscriptions", "--no-tablespaces", "-B"}
	var none []string
	if d.snapshotMode() {
		id, err := d.snapshotID()
		if err != nil {
			return "", err
		}
		args = append(args, "--snapshot="+id)
		none, err = d.dumpNothingOf(ctx)
		if err != nil {
			return "", err
		}
		args = append(args, none...)
		d.prefetchCopySource(ctx)
	}
	tmp := d.dumpFile() + ".tmp"
	_, err := pgdump.Run(ctx, d.m.Tools.PGDump, d.m.Source, d.name, append(args, "-f", tmp)...)
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, d.dumpFile()); err != nil {
		return "", err
	}
	d.toc, d.sections = nil, nil
	fi, _ := os.Stat(d.dumpFile())
	result := fmt.Sprintf("%d bytes of schema archive", fi.Size())
	if len(none) > 0 {
		result += " (" + strings.Join(none, " ") + ": the database has none)"
	}
	return result, nil
}

// noneOfSQL reads whether the database has no comments and no security
// labels that pg_dump would dump: user objects' (OIDs from 16384 on), and
// the public schema's when it is not the one initdb gave it, which pg_dump
// leaves out. Only the system catalogs are read, which every role may
// read, so it cannot fail and abort the snapshot's transaction.
const noneOfSQL = `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_description d WHERE d.objoid >= 16384
		OR (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objoid = 2200 AND d.description <> 'standard public schema')),
	NOT EXISTS (SELECT 1 FROM pg_catalog.pg_seclabel)`

// dumpNothingOf gives the pg_dump options that leave out what the database
// has none of: comments (--no-comments) and security labels
// (--no-security-labels). pg_dump otherwise reads every description, the
// system's thousands too, and the pg_seclabels view: about a fifth of the
// source's work for a small database's schema (50 dumps of 20 tables:
// 28-30 ms of server CPU each against 22-24). It is read on the session
// that holds the snapshot, so it is exactly what pg_dump would see; none
// when no such session is open (the slot's snapshot). An error there has
// ended the snapshot's transaction, so it ends the step.
func (d *dbRun) dumpNothingOf(ctx context.Context) ([]string, error) {
	if d.snap == nil || d.snap.conn == nil {
		return nil, nil
	}
	var noComments, noLabels bool
	if err := d.snap.conn.QueryRow(ctx, noneOfSQL).Scan(&noComments, &noLabels); err != nil {
		return nil, fmt.Errorf("read whether the database has comments or security labels: %w", err)
	}
	var args []string
	if noComments {
		args = append(args, "--no-comments")
	}
	if noLabels {
		args = append(args, "--no-security-labels")
	}
	return args, nil
}

// listTOC reads the archive's table of contents, or with a section
// ("post-data") only that section's entries, each once per run: from the
// sections' renderings (section) when they can be read, else from
// pg_restore -l.
func (d *dbRun) listTOC(ctx context.Context, section string) ([]pgdump.Entry, error) {
	if toc, ok := d.toc[section]; ok {
		return toc, nil
	}
	out, err := d.renderedListing(ctx, section)
	if err != nil {
		return nil, err
	}
	if out == nil {
		args := []string{"-l", d.dumpFile()}
		if section != "" {
			args = append(args, "--section="+section)
		}
		if out, err = pgdump.RunLocal(ctx, d.m.Tools.PGRestore, args...); err != nil {
			return nil, err
		}
	}
	if out, err = d.tocToUTF8(ctx, out); err != nil {
		return nil, err
	}
	if d.toc == nil {
		d.toc = map[string][]pgdump.Entry{}
	}
	d.toc[section] = pgdump.ParseTOC(out)
	return d.toc[section], nil
}

// schemaSections are the sections of the schema archive (dumpSchema).
var schemaSections = []string{"pre-data", "post-data"}

// renderedListing is what pg_restore -l would list of section ("" for the
// whole archive: every section of it), read from the sections' renderings;
// nil when one cannot be read.
func (d *dbRun) renderedListing(ctx context.Context, section string) ([]byte, error) {
	sections := schemaSections
	if section != "" {
		sections = []string{section}
	}
	var b strings.Builder
	for _, name := range sections {
		s, err := d.section(ctx, name)
		if err != nil || !s.OK {
			return nil, err
		}
		b.WriteString(s.Listing())
	}
	return []byte(b.String()), nil
}

// section renders a section of the schema archive once per run
// (pg_restore --verbose --section=<name> -f -): its listing, scripts and
// chunks all come from it.
func (d *dbRun) section(ctx context.Context, name string) (*pgdump.Section, error) {
	if s, ok := d.sections[name]; ok {
		return s, nil
	}
	out, err := pgdump.RunLocal(ctx, d.m.Tools.PGRestore, "--verbose", "--section="+name, "-f", "-", d.dumpFile())
	if err != nil {
		return nil, err
	}
	if d.sections == nil {
		d.sections = map[string]*pgdump.Section{}
	}
	d.sections[name] = pgdump.ParseSection(out)
	return d.sections[name], nil
}

// tocEncodingSQL converts a listing from the database's encoding to UTF-8
// (NULL: nothing to convert).
const tocEncodingSQL = `SELECT CASE WHEN pg_catalog.pg_encoding_to_char(d.encoding) IN ('UTF8', 'SQL_ASCII') THEN NULL
	ELSE pg_catalog.convert_from($1, pg_catalog.pg_encoding_to_char(d.encoding)) END
FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()`

// tocToUTF8 gives a listing in UTF-8, as pghaul's sessions read names:
// pg_restore -l prints names in the archive's encoding, the database's.
// The target's database has the source's encoding (the plan checks it).
// pg_restore -L reads only each line's entry number, so the converted
// lines serve as lists too.
func (d *dbRun) tocToUTF8(ctx context.Context, listing []byte) ([]byte, error) {
	if isASCII(string(listing)) {
		return listing, nil
	}
	dst, err := d.targetSession(ctx)
	if err != nil {
		return nil, err
	}
	var converted *string
	if err := dst.QueryRow(ctx, tocEncodingSQL, listing).Scan(&converted); err != nil {
		return nil, fmt.Errorf("convert the schema archive's listing to UTF-8: %w", err)
	}
	if converted == nil {
		return listing, nil
	}
	return []byte(*converted), nil
}

// keep reports whether an entry belongs in the restore: not an excluded
// extension, not large objects (the copy moves them with their OIDs), not
// a pghaul publication.
func (d *dbRun) keep(e pgdump.Entry) bool {
	switch {
	case e.Kind == "EXTENSION" && !d.m.Config.Extensions.Selects(e.Tag):
		return false
	case e.Kind == "COMMENT" && strings.HasPrefix(e.Tag, "EXTENSION ") && !d.m.Config.Extensions.Selects(strings.TrimPrefix(e.Tag, "EXTENSION ")):
		return false
	case e.Kind == "BLOB" || e.Kind == "BLOBS" || e.Kind == "LARGE OBJECT" || e.Kind == "BLOB METADATA":
		return false
	case (e.Kind == "ACL" || e.Kind == "COMMENT") && strings.HasPrefix(e.Tag, "LARGE OBJECT "):
		return false
	case strings.HasPrefix(e.Kind, "PUBLICATION") && strings.HasPrefix(e.Tag, "pghaul_"):
		return false
	}
	return true
}

func (d *dbRun) writeList(entries []pgdump.Entry, name string) (string, error) {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Line + "\n")
	}
	path := d.dumpFile() + "." + name + ".list"
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// targetTablesSQL names the target's tables as pg_restore -l shows them
// ("schema name"), so entries compare without splitting names that hold
// spaces.
const targetTablesSQL = `SELECT n.nspname || ' ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'f')`

// restorePreData restores types, tables, functions... in one transaction,
// so a crash leaves all or nothing; a rerun finding every table of the
// archive on the target knows the restore committed.
func (d *dbRun) restorePreData(ctx context.Context, st plan.Step) (string, error) {
	// The listing stays (d.toc); the rendering serves no later step.
	defer delete(d.sections, "pre-data")
	toc, err := d.listTOC(ctx, "")
	if err != nil {
		return "", err
	}
	dst, err := d.targetSession(ctx)
	if err != nil {
		return "", err
	}
	existing, err := queryStrings(ctx, dst, targetTablesSQL)
	if err != nil {
		return "", fmt.Errorf("read target catalog: %w", err)
	}
	onTarget := make(map[string]bool, len(existing))
	for _, e := range existing {
		onTarget[e] = true
	}
	var keep []pgdump.Entry
	tables, present := 0, 0
	for _, e := range toc {
		if d.keep(e) {
			keep = append(keep, e)
		}
		if e.Kind == "TABLE" {
			tables++
			if onTarget[e.Schema+" "+e.Tag] {
				present++
			}
		}
	}
	chunked := d.m.dbState(d.name).PreDataNext > 0
	switch {
	case chunked:
	case tables > 0 && present == tables:
		return "already restored (every table exists)", nil
	case present > 0:
		return "", fmt.Errorf("%d of the %d tables of the schema already exist on the target: drop them, then rerun apply", present, tables)
	}
	args := []string{"--section=pre-data", "--single-transaction", "--exit-on-error"}
	notes, err := d.prepareOwners(ctx, dst, keep)
	if err != nil {
		return "", err
	}
	var extNotes []string
	if slices.ContainsFunc(keep, func(e pgdump.Entry) bool { return e.Kind == "EXTENSION" }) {
		if extNotes, err = d.pinExtensions(ctx, dst); err != nil {
			return "", err
		}
	}
	done := words.Count(tables, "table")
	capacity, err := lockCapacity(ctx, dst)
	if err != nil {
		return "", err
	}
	if !chunked && tables*locksPerTable <= capacity/2 {
		err = d.restoreList(ctx, keep, args)
		if !isLockExhaustion(err) {
			if err != nil {
				return "", err
			}
			return strings.Join(append([]string{done}, append(notes, extNotes...)...), "; "), nil
		}
	}
	if !chunked {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: the schema does not fit in one transaction (%s, the target's lock table holds %d locks): restoring it in chunks, each in its own transaction",
			d.name, done, capacity)})
	}
	stats, err := d.restoreChunks(ctx, keep, args, chunkSize(capacity))
	if err != nil {
		return "", err
	}
	return strings.Join(append([]string{done, stats.String()}, append(notes, extNotes...)...), "; "), nil
}

func (d *dbRun) restoreList(ctx context.Context, entries []pgdump.Entry, args []string) error {
	list, err := d.writeList(entries, "pre")
	if err != nil {
		return err
	}
	args = append(args, "-L", list)
	if done, err := d.restoreOnSession(ctx, "pre-data", entries, args); done || err != nil {
		return err
	}
	_, err = pgdump.Run(ctx, d.m.Tools.PGRestore, d.m.Target, d.name, append(d.ownerArgs(args), d.dumpFile())...)
	return err
}

// isLockExhaustion reports a restore refused by the lock table's size.
func isLockExhaustion(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "max_locks_per_transaction") || strings.Contains(err.Error(), "out of shared memory"))
}

// lockCapacitySQL is how many locks the target's lock table holds, shared
// by every session: what one transaction can take at most.
const lockCapacitySQL = `SELECT current_setting('max_locks_per_transaction')::int *
	(current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)`

// locksPerTable is about how many locks restoring a table takes in its
// transaction: the table, its TOAST table and index, its row type.
const locksPerTable = 4

func lockCapacity(ctx context.Context, dst *pgx.Conn) (int, error) {
	var n int
	if err := dst.QueryRow(ctx, lockCapacitySQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the target's lock table size: %w", err)
	}
	return n, nil
}

// chunkSize is how many archive entries a chunk starts with: an eighth of
// what the lock table holds, for a schema that cannot be restored in one
// transaction (before, a fixed 256: a schema of 10,000 tables took 118
// chunks, each a pg_restore run over the whole archive). A chunk the lock
// table still refuses is halved.
func chunkSize(capacity int) int {
	return min(max(capacity/8, 16), 4096)
}

// restoreChunks restores entries in chunks, each in its own transaction,
// recording each committed chunk so a rerun restores only the others.
func (d *dbRun) restoreChunks(ctx context.Context, entries []pgdump.Entry, args []string, size int) (chunkStats, error) {
	var stats chunkStats
	ds := d.m.dbState(d.name)
	if ds.PreDataNext == 0 {
		if err := d.m.saveDBChange(d.name, func() { ds.PreDataNext = 1 }); err != nil {
			return stats, err
		}
	}
	progress := d.chunkProgress(len(entries))
	ok, err := d.restoreScriptChunks(ctx, entries, size, progress, &stats)
	if ok || err != nil {
		return stats, err
	}
	for {
		todo := progress.todo(size)
		if len(todo) == 0 {
			return stats, nil
		}
		chunk := make([]pgdump.Entry, len(todo))
		for k, i := range todo {
			chunk[k] = entries[i]
		}
		err := d.restoreList(ctx, chunk, args)
		if isLockExhaustion(err) && size > 1 {
			size /= 2
			continue
		}
		if err != nil {
			return stats, err
		}
		if err := progress.commit(todo); err != nil {
			return stats, err
		}
		stats.chunks++
		crashPoint("chunk:" + d.name)
	}
}

// prepareOwners makes sure the target user may hand the entries' objects
// to their owners. The owners it cannot use (missing on the target, or
// not to be joined) are kept in d.disowned: the restore leaves out their
// OWNER TO statements, so those objects alone keep the target user as
// owner, each named in the notes and in the database's warnings.
func (d *dbRun) prepareOwners(ctx context.Context, dst *pgx.Conn, entries []pgdump.Entry) ([]string, error) {
	byOwner := map[string][]string{}
	for _, e := range entries {
		if e.Owner != "" {
			byOwner[e.Owner] = append(byOwner[e.Owner], strings.TrimSpace(e.Kind+" "+e.Schema+" "+e.Tag))
		}
	}
	d.disowned = map[string]bool{}
	var notes []string
	for _, o := range slices.Sorted(maps.Keys(byOwner)) {
		got, note, err := d.m.ownerFor(ctx, dst, o)
		if err != nil {
			return nil, err
		}
		if got != o {
			d.disowned[o] = true
			objects := byOwner[o]
			if len(objects) > 5 {
				objects = append(slices.Clone(objects[:5]), fmt.Sprintf("and %d more", len(objects)-5))
			}
			n := fmt.Sprintf("%s; %s keep it as owner: %s", note, words.Count(len(byOwner[o]), "object"), strings.Join(objects, ", "))
			notes = append(notes, n)
			d.m.warnDatabase(d.name, n)
		}
	}
	return notes, nil
}

// ownerArgs are args for a pg_restore run by itself (not a script on
// pghaul's session, which leaves out only the disowned owners' OWNER TO
// statements): --no-owner when some owner cannot be used.
func (d *dbRun) ownerArgs(args []string) []string {
	if len(d.disowned) > 0 {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: pg_restore runs by itself: every object of this restore keeps the migration user as owner (--no-owner)", d.name)})
		return append(slices.Clone(args), "--no-owner")
	}
	return args
}

const sourceExtensionsSQL = `SELECT e.extname, e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 1`

const targetExtensionSQL = `SELECT EXISTS (SELECT 1 FROM pg_available_extension_versions WHERE name = $1 AND version = $2),
	EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $3),
	(SELECT default_version FROM pg_available_extensions WHERE name = $1)`

// pinExtensions creates, before the restore, the extensions whose source
// version the target offers, at that version (the dump's CREATE EXTENSION
// names none, so the target's default would win); the others come from the
// restore at the target's default version, and the note says so.
func (d *dbRun) pinExtensions(ctx context.Context, dst *pgx.Conn) ([]string, error) {
	var src *pgx.Conn
	d.prefetched() // the exporting transaction may be reading for the copy
	if d.snap != nil && d.snap.conn != nil {
		src = d.snap.conn // the exporting transaction: no session to start
	} else {
		conn, err := d.m.Source.Connect(ctx, d.name, pg.Options{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		src = conn
	}
	rows, err := src.Query(ctx, sourceExtensionsSQL)
	if err != nil {
		return nil, err
	}
	type ext struct{ name, version, schema string }
	var exts []ext
	var e ext
	if _, err := pgx.ForEachRow(rows, []any{&e.name, &e.version, &e.schema}, func() error { exts = append(exts, e); return nil }); err != nil {
		return nil, err
	}
	var notes []string
	for _, e := range exts {
		if !d.m.Config.Extensions.Selects(e.name) {
			continue
		}
		var offered, schemaExists bool
		var def *string
		if err := dst.QueryRow(ctx, targetExtensionSQL, e.name, e.version, e.schema).Scan(&offered, &schemaExists, &def); err != nil {
			return nil, err
		}
		if offered && schemaExists {
			sql := fmt.Sprintf("CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA %s VERSION %s", ident(e.name), ident(e.schema), literal(e.version))
			if _, err := dst.Exec(ctx, sql); err != nil {
				return nil, fmt.Errorf("create extension %s %s: %w", e.name, e.version, err)
			}
			continue
		}
		if !offered && def != nil {
			notes = append(notes, fmt.Sprintf("extension %s is %s on the target (source %s)", e.name, *def, e.version))
		}
	}
	return notes, nil
}
