package apply

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pghaul/pghaul/internal/pgdump"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
)

// existingSQL lists, as "kind schema tag" strings in pg_restore -l's form,
// the post-data objects of each kind present in the target database: a
// resumed restore leaves them out of its list. Only the kinds the restore
// holds are read (existingQuery): each catalog read costs a session that
// has not read it yet a fraction of a millisecond.
var existingSQL = map[string]string{
	"INDEX": `SELECT 'INDEX ' || n.nspname || ' ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('i', 'I')`,
	"CONSTRAINT": `SELECT CASE WHEN k.contype = 'f' THEN 'FK CONSTRAINT ' ELSE 'CONSTRAINT ' END || n.nspname || ' ' || c.relname || ' ' || k.conname
	FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT 'CONSTRAINT ' || n.nspname || ' ' || t.typname || ' ' || k.conname
	FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid JOIN pg_namespace n ON n.oid = t.typnamespace`,
	"TRIGGER": `SELECT 'TRIGGER ' || n.nspname || ' ' || c.relname || ' ' || g.tgname
	FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal`,
	"RULE": `SELECT 'RULE ' || n.nspname || ' ' || c.relname || ' ' || r.rulename
	FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rulename <> '_RETURN'`,
	"POLICY": `SELECT 'POLICY ' || n.nspname || ' ' || c.relname || ' ' || p.polname
	FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace`,
	"INDEX ATTACH": `SELECT 'INDEX ATTACH ' || n.nspname || ' ' || c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('i', 'I')`,
}

// existingQuery reads the present objects of the kinds of entries ("" when
// none is resumable).
func existingQuery(entries []pgdump.Entry) string {
	var parts []string
	for _, kind := range []string{"INDEX", "CONSTRAINT", "TRIGGER", "RULE", "POLICY", "INDEX ATTACH"} {
		if slices.ContainsFunc(entries, func(e pgdump.Entry) bool {
			return e.Kind == kind || kind == "CONSTRAINT" && e.Kind == "FK CONSTRAINT"
		}) {
			parts = append(parts, existingSQL[kind])
		}
	}
	return strings.Join(parts, "\nUNION ALL\n")
}

// resumable are the post-data kinds whose presence the catalog shows.
var resumable = map[string]bool{"INDEX": true, "CONSTRAINT": true, "FK CONSTRAINT": true, "TRIGGER": true, "RULE": true, "POLICY": true, "INDEX ATTACH": true}

// restorePostData restores indexes, constraints, triggers and the rest with
// pg_restore -j (it orders entries by the archive's dependencies), leaving
// out what the catalog already has: indexes the copy built, or what an
// earlier run created.
func (d *dbRun) restorePostData(ctx context.Context, _ plan.Step) (string, error) {
	// Only the post-data entries: when the copy built every index, nothing
	// is left and no pg_restore runs.
	toc, err := d.listTOC(ctx, "post-data")
	if err != nil {
		return "", err
	}
	dst, err := d.targetSession(ctx)
	if err != nil {
		return "", err
	}
	present := map[string]bool{}
	if q := existingQuery(toc); q != "" {
		names, err := queryStrings(ctx, dst, q)
		if err != nil {
			return "", fmt.Errorf("read target catalog: %w", err)
		}
		for _, n := range names {
			present[n] = true
		}
	}
	var keep []pgdump.Entry
	skipped := 0
	for _, e := range toc {
		if !d.keep(e) {
			continue
		}
		if resumable[e.Kind] && present[e.Kind+" "+e.Schema+" "+e.Tag] {
			skipped++
			continue
		}
		keep = append(keep, e)
	}
	if len(keep) == 0 {
		return fmt.Sprintf("nothing left to restore: %s already built", words.Count(skipped, "entry")), nil
	}
	list, err := d.writeList(keep, "post")
	if err != nil {
		return "", err
	}
	if _, err := d.prepareOwners(ctx, dst, keep); err != nil {
		return "", err
	}
	jobs := d.postDataJobs(len(keep))
	args := []string{"--section=post-data", "--exit-on-error", "-L", list}
	done := false
	if jobs == 1 && len(keep) <= scriptRestoreMax {
		if done, err = d.restoreOnSession(ctx, "post-data", keep, args); err != nil && !isLockExhaustion(err) {
			return "", err
		}
	}
	if !done {
		if _, err := pgdump.Run(ctx, d.m.Tools.PGRestore, d.m.Target, d.name, append(d.ownerArgs(args), "-j", strconv.Itoa(jobs), d.dumpFile())...); err != nil {
			return "", err
		}
	}
	msg := fmt.Sprintf("restored %s with %s", words.Count(len(keep), "entry"), words.Count(jobs, "job"))
	if skipped > 0 {
		msg += fmt.Sprintf(" (%s built by an earlier run)", words.Count(skipped, "other"))
	}
	return msg, nil
}

// serialPostDataBelow is the copied size under which post-data runs on one
// session. pg_restore -j N opens N+2 sessions (its leader twice, and N
// workers), and a backend costs the server tens of milliseconds of CPU to
// start and end: more than the constraints and indexes of a small
// database take to build one after the other.
const serialPostDataBelow = 64 << 20

// postDataJobs is pg_restore's -j for entries statements: parallel.indexes,
// or 1 for a single statement or a small database.
func (d *dbRun) postDataJobs(entries int) int {
	ds := d.m.dbState(d.name)
	var copied int64
	d.m.update(func() { copied = ds.Bytes })
	if entries < 2 || copied < serialPostDataBelow {
		return 1
	}
	return d.m.Config.Parallel.Indexes
}
