package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// A copy under a slot's snapshot resumes (DESIGN.md section 5): the slot
// outlives the run, and so do the tables that finished under its
// snapshot, whose later changes all wait in the slot. A rerun keeps them;
// the unfinished tables leave the publication before the subscription
// exists, so the subscription starts without them, and come back after
// it: ALTER SUBSCRIPTION ... REFRESH PUBLICATION WITH (copy_data = true)
// has the target's own table synchronisation copy each under a snapshot
// of its own and hand it to the apply worker at that snapshot's position,
// the way a subscription adds any table. Changes the slot holds for them
// from before are skipped by the apply worker: a table it does not list,
// or lists as not yet synchronised, gets none.

// copiedTables are the tables the copy step st copies: the planned ones
// but those dropped since (takeGone), and those created after the plan
// that an earlier run's copy found under the slot's snapshot (takeAdded).
func (d *dbRun) copiedTables(st plan.Step) []plan.TableRef {
	added, gone := d.addedAndGone()
	return append(without(st.Params.Tables, gone), added...)
}

// withoutGone are refs but the tables the copy found dropped on the source
// after the plan (takeGone).
func (d *dbRun) withoutGone(refs []plan.TableRef) []plan.TableRef {
	_, gone := d.addedAndGone()
	return without(refs, gone)
}

// addedAndGone are the tables the copy found created (takeAdded) and
// dropped (takeGone) on the source after the plan, as the state holds
// them.
func (d *dbRun) addedAndGone() (added, gone []plan.TableRef) {
	d.m.update(func() {
		if ds := d.m.State.Databases[d.name]; ds != nil {
			added, gone = slices.Clone(ds.Added), slices.Clone(ds.Gone)
		}
	})
	return added, gone
}

// without is a copy of refs without those of out.
func without(refs, out []plan.TableRef) []plan.TableRef {
	return slices.DeleteFunc(slices.Clone(refs), func(r plan.TableRef) bool { return slices.Contains(out, r) })
}

// resumeCopy reports whether this run keeps the tables an interrupted run
// copied under the slot's snapshot (see above) instead of dropping the slot
// and copying the database again. It needs the slot, the schema dump made
// under it and at least one finished table; a publication the migration
// user may change (its own FOR TABLE one; FOR ALL TABLES only as a
// superuser, which may replace it); a source whose decoding handles a
// publication change (decodesAcrossDDL); a target user that creates the
// subscription itself, which may refresh it; and no extension
// configuration table among the unfinished ones (the target's extension
// made rows of its own there). Otherwise it says why in a notice.
func (d *dbRun) resumeCopy(ctx context.Context) (bool, error) {
	if !d.snapshotMode() || !d.has(plan.StepCreateSubscription) {
		return false, nil
	}
	copyStep, ok := d.step(plan.StepCopyData)
	if !ok || d.status(plan.StepCreateSlot) != state.StatusDone || d.status(plan.StepDumpSchema) != state.StatusDone {
		return false, nil
	}
	ds := d.m.dbState(d.name)
	var unfinished []plan.TableRef
	finished := 0
	for _, t := range d.copiedTables(copyStep) {
		if ds.Tables[t.String()].Status == state.StatusDone {
			finished++
		} else {
			unfinished = append(unfinished, t)
		}
	}
	if finished == 0 && len(ds.Recopy) == 0 && d.m.stepStatus(copyStep.ID) != state.StatusDone {
		return false, nil // nothing to keep: a new snapshot costs nothing more
	}
	n := d.m.State.Plan.DatabaseNames(d.name)
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return false, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	why, err := cannotKeep(ctx, src, n.Slot, n.Publication, unfinished)
	if err == nil && why == "" {
		why, err = d.cannotRefresh(ctx)
	}
	if err != nil {
		return false, err
	}
	if why != "" {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: the copy under slot %s cannot resume (%s): it starts over", d.name, n.Slot, why)})
		return false, nil
	}
	return true, nil
}

// resumeSQL reads what keeping a copy needs on the source: the slot,
// whether the user may change the publication, the server's version, and
// how many of the tables $3/$4 are an extension's configuration tables.
const resumeSQL = `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
	COALESCE((SELECT CASE WHEN p.puballtables THEN r.rolsuper ELSE r.rolsuper OR pg_has_role(p.pubowner, 'USAGE') END
		FROM pg_publication p, pg_roles r WHERE p.pubname = $2 AND r.rolname = current_user), false),
	current_setting('server_version_num')::int,
	(SELECT count(*) FROM pg_extension x, unnest(x.extconfig) c
		WHERE c IN (SELECT format('%I.%I', s, t)::regclass FROM unnest($3::text[], $4::text[]) AS u(s, t)
			WHERE to_regclass(format('%I.%I', s, t)) IS NOT NULL))`

func cannotKeep(ctx context.Context, src *pgx.Conn, slot, publication string, unfinished []plan.TableRef) (string, error) {
	schemas, names := splitRefs(unfinished)
	var hasSlot, mayAlter bool
	var version, extConfig int
	if err := src.QueryRow(ctx, resumeSQL, slot, publication, schemas, names).Scan(&hasSlot, &mayAlter, &version, &extConfig); err != nil {
		return "", fmt.Errorf("read the slot and publication: %w", err)
	}
	switch {
	case !hasSlot:
		return "the slot is gone", nil
	case !mayAlter:
		return "the migration user may not change publication " + publication, nil
	case !decodesAcrossDDL(version):
		return fmt.Sprintf("a source before 13.21, 14.18, 15.13, 16.9 or 17.5 (this one: %d) can decode a transaction across a publication change with stale catalog data and drop its rows", version), nil
	case extConfig > 0:
		return "an unfinished table is an extension's configuration table", nil
	}
	return "", nil
}

// decodesAcrossDDL reports a source whose logical decoding takes a
// publication change into account in the transactions it decodes across
// it: the minor releases of May 2025 on ("Avoid data loss when DDL
// operations that don't take a strong lock affect tables that are being
// logically replicated"). Before, a transaction running across a change of
// the publication could leave a table marked unpublished, or published, for
// the transactions after it. A resumed copy changes the publication twice
// while the source takes writes: under pgbench on a 12 source
// TestSnapshotCopyResumes lost rows and updates (every row count equal)
// with FOR ALL TABLES and with FOR TABLE publications, waits and renewals
// notwithstanding. Such a source starts the copy over.
func decodesAcrossDDL(version int) bool {
	fixed := map[int]int{13: 130021, 14: 140018, 15: 150013, 16: 160009, 17: 170005}
	major := version / 10000
	if major >= 18 {
		return true
	}
	return fixed[major] > 0 && version >= fixed[major]
}

// cannotRefresh says why the target user could not create the
// subscription itself and so could not refresh it ("" when it can): tried
// in a transaction rolled back, with no secret in the statement.
func (d *dbRun) cannotRefresh(ctx context.Context) (string, error) {
	// In the database itself: from 16 the privilege needs CREATE on it.
	dst, err := d.targetSession(ctx)
	if err != nil {
		return "", err
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := subscribePrivilege(ctx, tx); err != nil {
		if isPrivilegeError(err) {
			return "the target user may not create and refresh the subscription itself", nil
		}
		return "", err
	}
	return "", nil
}

// status is the status of the database's step of kind ("" without one).
func (d *dbRun) status(kind plan.StepKind) state.Status {
	st, ok := d.step(kind)
	if !ok {
		return ""
	}
	return d.m.stepStatus(st.ID)
}

// unitsSQL names, for each of the tables $1/$2, what the publication names
// it by: its partition tree's root on 13+ (publish_via_partition_root),
// else the table; and the table's size.
const unitsSQL = `SELECT n.nspname, c.relname, format('%%I.%%I', rn.nspname, r.relname), pg_catalog.pg_table_size(c.oid)
FROM unnest($1::text[], $2::text[]) AS u(s, t)
JOIN pg_namespace n ON n.nspname = u.s JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.t
JOIN pg_class r ON r.oid = %s JOIN pg_namespace rn ON rn.oid = r.relnamespace`

// recopy is the copy step of a resumed copy: the tables that finished
// under the slot's snapshot stay; the others (with the rest of their
// partition tree) are recorded in the state, emptied on the target and
// taken out of the publication, for the subscription step to add back and
// have the subscription copy. Each part checks the catalog first, so a
// crash at any point reruns it.
func (d *dbRun) recopy(ctx context.Context, st plan.Step) (string, error) {
	ds, n := d.m.dbState(d.name), d.m.State.Plan.DatabaseNames(d.name)
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	defer src.Close(context.WithoutCancel(ctx))
	tables := d.copiedTables(st)
	schemas, names := splitRefs(tables)
	root := "COALESCE(pg_catalog.pg_partition_root(c.oid), c.oid)"
	if pg.ServerMajor(src) < 13 {
		root = "c.oid" // 12 publishes leaf partitions themselves
	}
	rows, err := src.Query(ctx, fmt.Sprintf(unitsSQL, root), schemas, names)
	if err != nil {
		return "", fmt.Errorf("read the tables' publication names: %w", err)
	}
	type leaf struct {
		ref   plan.TableRef
		unit  string
		bytes int64
	}
	var leaves []leaf
	var l leaf
	if _, err := pgx.ForEachRow(rows, []any{&l.ref.Schema, &l.ref.Name, &l.unit, &l.bytes}, func() error { leaves = append(leaves, l); return nil }); err != nil {
		return "", fmt.Errorf("read the tables' publication names: %w", err)
	}
	if len(leaves) != len(tables) {
		found := map[plan.TableRef]bool{}
		for _, l := range leaves {
			found[l.ref] = true
		}
		var gone []plan.TableRef
		for _, r := range tables {
			if !found[r] {
				gone = append(gone, r)
			}
		}
		if err := d.takeGone(ctx, gone); err != nil {
			return "", err
		}
	}
	again := map[string]bool{}
	for _, u := range ds.Recopy {
		again[u] = true
	}
	for _, l := range leaves {
		if ds.Tables[l.ref.String()].Status != state.StatusDone {
			again[l.unit] = true
		}
	}
	var recopied, truncate, kept []string
	var keptBytes, bytes int64
	for _, l := range leaves {
		if again[l.unit] {
			truncate = append(truncate, ident(l.ref.Schema, l.ref.Name))
			bytes += l.bytes
			recopied = append(recopied, l.ref.String())
			continue
		}
		keptBytes += ds.Tables[l.ref.String()].Bytes
		if !slices.Contains(kept, l.unit) {
			kept = append(kept, l.unit)
		}
	}
	units := slices.Sorted(maps.Keys(again))
	d.m.updateDB(d.name, func() {
		ds.Recopy, ds.RecopyBytes = units, bytes
		for _, t := range recopied {
			ds.Bytes -= ds.Tables[t].Bytes
			delete(ds.Tables, t)
		}
	})
	if err := d.m.save(); err != nil {
		return "", err
	}
	if len(units) > 0 {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: resuming the copy under slot %s: keeping %s (%s) copied under its snapshot; the subscription copies %s (%s) again, each under its own: %s",
			d.name, n.Slot, words.Count(len(leaves)-len(recopied), "table"), byteString(keptBytes), words.Count(len(recopied), "table"), byteString(bytes), strings.Join(recopied, ", "))})
	}
	if len(truncate) > 0 {
		dst, err := d.targetSession(ctx)
		if err != nil {
			return "", err
		}
		// Each table was copied in one transaction: only one whose commit
		// the state missed holds rows.
		if _, err := dst.Exec(ctx, "TRUNCATE ONLY "+strings.Join(truncate, ", ")); err != nil {
			return "", fmt.Errorf("empty the tables to copy again: %w", err)
		}
	}
	if err := d.unpublish(ctx, src, n.Publication, units, kept); err != nil {
		return "", err
	}
	crashPoint("recopy:" + d.name)
	msg := fmt.Sprintf("resumed: kept %s (%s)", words.Count(len(leaves)-len(recopied), "table"), byteString(keptBytes))
	if len(recopied) > 0 {
		msg += fmt.Sprintf("; %s (%s) left to the subscription to copy again", words.Count(len(recopied), "table"), byteString(bytes))
	}
	return msg, nil
}

// publicationRelsSQL lists the tables a publication names itself (none
// for FOR ALL TABLES), and whether it is FOR ALL TABLES.
const publicationRelsSQL = `SELECT p.puballtables, COALESCE((SELECT array_agg(format('%I.%I', n.nspname, c.relname))
	FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = p.oid), '{}')
FROM pg_publication p WHERE p.pubname = $1`

func publicationRels(ctx context.Context, src *pgx.Conn, pub string) (all bool, rels []string, err error) {
	if err := src.QueryRow(ctx, publicationRelsSQL, pub).Scan(&all, &rels); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil, fmt.Errorf("publication %s is gone from the source: rerun apply with --reset-state to migrate the database again", pub)
		}
		return false, nil, fmt.Errorf("read publication %s: %w", pub, err)
	}
	return all, rels, nil
}

// unpublish takes units out of the publication: ALTER PUBLICATION ...
// DROP TABLE, or, for FOR ALL TABLES (which names no table to drop), the
// publication replaced in one transaction by one FOR TABLE with kept. The
// slot's decoding sees the publication as of each change it decodes, so
// there is never a moment without one. It stays FOR TABLE: replacing it
// again while the subscription streams lost rows on a 12 source.
func (d *dbRun) unpublish(ctx context.Context, src *pgx.Conn, pub string, units, kept []string) error {
	all, rels, err := publicationRels(ctx, src, pub)
	if err != nil {
		return err
	}
	if all {
		if len(units) == 0 {
			return nil
		}
		return d.replacePublication(ctx, src, pub, kept)
	}
	var drop []string
	for _, u := range units {
		if slices.Contains(rels, u) {
			drop = append(drop, u)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	if _, err := src.Exec(ctx, "ALTER PUBLICATION "+ident(pub)+" DROP TABLE "+strings.Join(drop, ", ")); err != nil {
		return fmt.Errorf("take the tables to copy again out of publication %s: %w", pub, err)
	}
	return nil
}

// subscribedSQL lists the tables the subscription knows (any state).
const subscribedSQL = `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_subscription_rel r
JOIN pg_subscription s ON s.oid = r.srsubid JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.subname = $1`

// republish puts the tables a resumed copy left out back in the
// publication and has the subscription copy them: REFRESH PUBLICATION
// with copy_data adds them in state init, and the target's table
// synchronisation copies each under its own snapshot. The tables the
// subscription knows already are untouched.
func (d *dbRun) republish(ctx context.Context, dst *pgx.Conn, p plan.Params) (string, error) {
	ds := d.m.dbState(d.name)
	var units []string
	d.m.update(func() { units = slices.Clone(ds.Recopy) })
	if len(units) == 0 {
		return "", nil
	}
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	defer src.Close(context.WithoutCancel(ctx))
	all, rels, err := publicationRels(ctx, src, p.Publication)
	if err != nil {
		return "", err
	}
	var add []string
	for _, u := range units {
		if !all && !slices.Contains(rels, u) {
			add = append(add, u)
		}
	}
	if len(add) > 0 {
		if _, err := src.Exec(ctx, "ALTER PUBLICATION "+ident(p.Publication)+" ADD TABLE "+strings.Join(add, ", ")); err != nil {
			return "", fmt.Errorf("put the tables to copy again back in publication %s: %w", p.Publication, err)
		}
	}
	crashPoint("republish:" + d.name)
	known, err := queryStrings(ctx, dst, subscribedSQL, p.Subscription)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(units, func(u string) bool { return !slices.Contains(known, u) }) {
		if err := d.awaitOlderTransactions(ctx, src); err != nil {
			return "", err
		}
		if err := touchPublication(ctx, src, p.Publication); err != nil {
			return "", err
		}
		if _, err := dst.Exec(ctx, "ALTER SUBSCRIPTION "+ident(p.Subscription)+" REFRESH PUBLICATION WITH (copy_data = true)"); err != nil {
			return "", fmt.Errorf("have subscription %s copy the tables again: %w", p.Subscription, err)
		}
	}
	return fmt.Sprintf("; the subscription copies %s (%s) again", words.Count(len(units), "table"), byteString(ds.RecopyBytes)), nil
}

// replacePublication drops the publication and creates it FOR TABLE
// tables in one transaction: the slot's decoding sees one or the other,
// never none.
func (d *dbRun) replacePublication(ctx context.Context, src *pgx.Conn, pub string, tables []string) error {
	tx, err := src.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "DROP PUBLICATION "+ident(pub)); err != nil {
		return fmt.Errorf("replace publication %s: %w", pub, err)
	}
	if _, err := tx.Exec(ctx, d.publicationSQL(src, pub, false, tables)); err != nil {
		return fmt.Errorf("replace publication %s: %w", pub, err)
	}
	return tx.Commit(ctx)
}

// awaitOlderTransactions waits until every transaction running on the
// source when it is called has ended: run before the refresh, it makes a
// transaction that ran across the tables' return to the publication commit
// before the table synchronisation takes its snapshot, whose copy then
// holds its rows. A resumed copy runs only on sources whose decoding
// handles such a transaction (decodesAcrossDDL); the wait, and
// touchPublication after it, are defence in depth. Without them a 12
// source dropped rows of pgbench_history that way.
func (d *dbRun) awaitOlderTransactions(ctx context.Context, src *pgx.Conn) error {
	// pg_snapshot from 13 on; txid_snapshot, deprecated since, before.
	horizonSQL, passedSQL := "SELECT pg_snapshot_xmax(pg_current_snapshot())::text", "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8"
	if pg.ServerMajor(src) < 13 {
		horizonSQL, passedSQL = "SELECT txid_snapshot_xmax(txid_current_snapshot())::text", "SELECT txid_snapshot_xmin(txid_current_snapshot()) >= $1::text::bigint"
	}
	var horizon string
	if err := src.QueryRow(ctx, horizonSQL).Scan(&horizon); err != nil {
		return fmt.Errorf("read the source's transaction horizon: %w", err)
	}
	return d.poll(ctx, "transactions older than the tables' return to the publication still run on the source (a prepared or idle one holds them: end it)", func(report bool) (bool, error) {
		var done bool
		if err := src.QueryRow(ctx, passedSQL, horizon).Scan(&done); err != nil {
			return false, err
		}
		return done, nil
	})
}

// publishSQL spells the publication's operations as its publish option.
const publishSQL = `SELECT concat_ws(', ', CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END,
	CASE WHEN pubdelete THEN 'delete' END, CASE WHEN pubtruncate THEN 'truncate' END) FROM pg_publication WHERE pubname = $1`

// touchPublication sets the publication's publish option to what it is:
// a change that invalidates every table's entry in the walsenders'
// publication cache (pgoutput's publication callback) where their
// decoding reaches it. On a source without the decoding fix, a transaction
// that ran across the tables' return, replayed after, could leave an entry
// built with its older catalog snapshot; after awaitOlderTransactions none
// is replayed past this change, so the entries are built again right.
func touchPublication(ctx context.Context, src *pgx.Conn, pub string) error {
	var publish string
	if err := src.QueryRow(ctx, publishSQL, pub).Scan(&publish); err != nil {
		return fmt.Errorf("read publication %s: %w", pub, err)
	}
	if _, err := src.Exec(ctx, "ALTER PUBLICATION "+ident(pub)+" SET (publish = "+literal(publish)+")"); err != nil {
		return fmt.Errorf("renew publication %s in the walsenders' caches: %w", pub, err)
	}
	return nil
}
