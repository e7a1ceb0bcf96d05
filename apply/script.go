package apply

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgdump"
)

// Restoring a section on pghaul's own session: pg_restore writes the SQL
// it would run (-f -), and the database's shared target session runs it,
// instead of pg_restore opening a backend of its own. A backend costs the
// server tens of milliseconds of CPU to start and end, twice per database
// (pre-data and post-data): for a cluster of small databases, about as
// much as their statements.

// scriptRestoreMax is the most post-data entries restored as one script:
// a script is one transaction, whose locks must fit the lock table
// (max_locks_per_transaction per connection); pg_restore commits each
// entry.
const scriptRestoreMax = 1000

// settingsSQL reads the current values of settings by name (none for a
// name the server does not know). pg_settings would compute every
// setting's row at each read: twice per restore script, on each database's
// shared session, that cost more than some scripts.
const settingsSQL = `SELECT n, s FROM pg_catalog.unnest($1::text[]) n, pg_catalog.current_setting(n, true) s WHERE s IS NOT NULL`

// settingsOf reads the current values of names.
func settingsOf(ctx context.Context, conn *pgx.Conn, names []string) (map[string]string, error) {
	rows, err := conn.Query(ctx, settingsSQL, names)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var name, setting string
	_, err = pgx.ForEachRow(rows, []any{&name, &setting}, func() error {
		out[name] = setting
		return nil
	})
	return out, err
}

// putBack sets the settings again to what they were before.
func putBack(ctx context.Context, conn *pgx.Conn, before map[string]string) error {
	return pg.SetConfig(ctx, conn, before)
}

// scriptSets finds the settings a restore script (with its prelude) may
// change on the session: its SET statements and set_config calls at the
// start of a line, where pg_restore writes them (a function body's lines
// only add names to put back).
var scriptSets = regexp.MustCompile(`(?m)^(?:SET ([A-Za-z_][A-Za-z0-9_.]*)\b|SELECT pg_catalog\.set_config\('([A-Za-z_][A-Za-z0-9_.]*)')`)

// scriptSettings are the settings the prelude and scripts may change.
func scriptSettings(scripts ...string) []string {
	names := []string{"standard_conforming_strings", "client_encoding"} // scriptPrelude
	for _, script := range scripts {
		for _, m := range scriptSets.FindAllStringSubmatch(script, -1) {
			name := strings.ToLower(m[1] + m[2])
			if name != "session" && name != "local" && name != "transaction" && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// scriptPrelude is what a session runs before a restore script: the server
// converts and splits the whole script as it arrives, before its own SET
// statements run, so the archive's encoding and its string syntax must be
// in force already.
func scriptPrelude(encoding string) string {
	pre := "SET standard_conforming_strings = on"
	if encoding != "" {
		pre += "; SET client_encoding = " + literal(encoding)
	}
	return pre
}

// settle ends a script's use of the shared target session dst, whose
// settings were before: when the run was cancelled it closes the session
// (rolling back whatever the script began) and returns the cancellation;
// else it puts the settings back, closing the session if it cannot (a
// session whose settings are unknown serves no other step).
func (d *dbRun) settle(ctx context.Context, dst *pgx.Conn, before map[string]string) error {
	if ctx.Err() != nil {
		closeSession(ctx, &d.target)
		return ctx.Err()
	}
	if err := putBack(ctx, dst, before); err != nil {
		closeSession(ctx, &d.target)
	}
	return nil
}

// restoreOnSession restores what pg_restore with args would (entries of
// section), as a script on the database's shared target session: the
// section's pieces of entries (d.section), or when the section cannot be
// split, pg_restore's rendering with args. done is false, with no error,
// when the script cannot go that way or the server refused it: the caller
// then runs pg_restore against the target, which stops at the same
// statement and names the archive entry. A refusal by the lock table is
// returned, so the caller can restore in chunks.
func (d *dbRun) restoreOnSession(ctx context.Context, section string, entries []pgdump.Entry, args []string) (done bool, err error) {
	script, encoding, ok := d.script(ctx, section, entries, args)
	if !ok {
		d.m.Log.Debug("the restore script holds a line only psql reads; pg_restore runs instead", "database", d.name)
		return false, nil
	}
	dst, err := d.targetSession(ctx)
	if err != nil {
		return false, err
	}
	before, err := settingsOf(ctx, dst, scriptSettings(script))
	if err != nil {
		return false, fmt.Errorf("read the target session's settings: %w", err)
	}
	conn := dst.PgConn()
	_, err = conn.Exec(ctx, scriptPrelude(encoding)).ReadAll()
	if err == nil {
		_, err = conn.Exec(ctx, script).ReadAll()
	}
	if err != nil && ctx.Err() == nil {
		// An explicit transaction stays open, failed; an implicit one (no
		// BEGIN in the script) is already rolled back.
		conn.Exec(ctx, "ROLLBACK").ReadAll()
	}
	if cerr := d.settle(ctx, dst, before); cerr != nil {
		return false, cerr
	}
	switch {
	case err == nil:
		return true, nil
	case isLockExhaustion(err):
		return false, err
	case len(d.disowned) > 0:
		// pg_restore by itself would need --no-owner, which takes every
		// object's owner, not just the disowned ones': stop and say why.
		return false, ownerRestoreError(err)
	}
	d.m.Log.Debug("restoring on the session failed; pg_restore runs instead", "database", d.name, "error", err)
	return false, nil
}

// script is the SQL to restore entries of section (see restoreOnSession);
// ok is false when there is none to run on a session.
func (d *dbRun) script(ctx context.Context, section string, entries []pgdump.Entry, args []string) (script, encoding string, ok bool) {
	if s, err := d.section(ctx, section); err == nil && s.OK {
		return s.Script(entries, slices.Contains(args, "--single-transaction"), d.disowned), s.Encoding, true
	}
	out, err := pgdump.RunLocal(ctx, d.m.Tools.PGRestore, append(args, "-f", "-", d.dumpFile())...)
	if err != nil {
		return "", "", false
	}
	script, encoding, ok = pgdump.RestoreScript(out)
	return pgdump.WithoutOwners(script, d.disowned), encoding, ok
}

// ownerRestoreError explains a restore that failed while objects are
// handed to their owners one by one: a non-superuser may make a role the
// owner of an object only when that role has CREATE on the object's
// schema, a check a superuser skips.
func ownerRestoreError(err error) error {
	if pg.HasCode(err, pg.InsufficientPrivilege) && strings.Contains(err.Error(), "schema") {
		return fmt.Errorf("restore the schema: %w: a non-superuser target user can make a role an object's owner only when that role has CREATE on the object's schema; grant it on the target (GRANT CREATE ON SCHEMA ... TO <owner>), or connect to the target as a superuser", err)
	}
	return fmt.Errorf("restore the schema: %w", err)
}

// chunkLocksSQL counts the locks the session holds, at the end of a chunk's
// transaction: what its entries took of the lock table.
const chunkLocksSQL = "SELECT count(*) FROM pg_catalog.pg_locks WHERE pid = pg_catalog.pg_backend_pid()"

// restoreScriptChunks restores the entries progress does not hold as
// chunks of one script: the section's rendering, split at each entry's
// header (d.section), and chunks of it run
// in their own transactions on the shared target session and up to
// parallel.tables-1 others (chunkRestore), each recorded in the state once
// committed. Before, each chunk ran pg_restore over the whole archive
// again: 38 chunks of a schema of 10,000 tables spent most of 8 s there.
// ok is false when the script cannot go this way (a line only psql reads,
// pieces that do not match the entries) or the server refused a chunk run
// alone: the caller then goes on with pg_restore, which names the entry
// that fails.
func (d *dbRun) restoreScriptChunks(ctx context.Context, entries []pgdump.Entry, size int, progress *chunkProgress, stats *chunkStats) (ok bool, err error) {
	section, err := d.section(ctx, "pre-data")
	if err != nil || !section.OK {
		d.m.Log.Debug("the restore script cannot be split by entry; pg_restore restores each chunk", "database", d.name)
		return false, nil
	}
	encoding, preamble := section.Encoding, section.Preamble
	byID := make(map[string]string, len(section.Pieces))
	for id, piece := range section.Pieces {
		byID[id] = pgdump.WithoutOwners(piece, d.disowned)
	}
	dst, err := d.targetSession(ctx)
	if err != nil {
		return false, err
	}
	capacity, err := lockCapacity(ctx, dst)
	if err != nil {
		return false, err
	}
	before, err := settingsOf(ctx, dst, scriptSettings(append(slices.Collect(maps.Values(byID)), preamble)...))
	if err != nil {
		return false, fmt.Errorf("read the target session's settings: %w", err)
	}
	setup := []string{scriptPrelude(encoding), preamble}
	for _, s := range setup {
		if _, err = dst.PgConn().Exec(ctx, s).ReadAll(); err != nil {
			break
		}
	}
	if err == nil {
		err = newChunkRestore(d, entries, byID, progress, setup, capacity).run(ctx, dst, size, stats)
	}
	if cerr := d.settle(ctx, dst, before); cerr != nil {
		return false, cerr
	}
	switch {
	case err == nil:
		return true, nil
	case len(d.disowned) > 0:
		return false, ownerRestoreError(err)
	}
	d.m.Log.Debug("a chunk failed on the session; pg_restore goes on from it", "database", d.name, "error", err)
	return false, nil
}

// chunkLocks reads the lock count a chunk's script selected last.
func chunkLocks(results []*pgconn.Result) int {
	for i := len(results) - 1; i >= 0; i-- {
		if r := results[i]; len(r.Rows) == 1 && len(r.Rows[0]) == 1 {
			n, err := strconv.Atoi(string(r.Rows[0][0]))
			if err == nil {
				return n
			}
		}
	}
	return 0
}
