package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
)

// WaitTimeoutError ends a wait that replication.wait_timeout cut short;
// replication is left running and the database's status is "waiting".
type WaitTimeoutError struct {
	What    string
	Timeout time.Duration
}

func (e *WaitTimeoutError) Error() string {
	return fmt.Sprintf("%s after %s (replication.wait_timeout); replication is left running: rerun apply to wait again", e.What, e.Timeout)
}

// DriftError is a schema change on the source that replication cannot
// carry; replication is left running.
type DriftError struct{ Changes []string }

func (e *DriftError) Error() string {
	return "the schema of published tables changed on the source: " + strings.Join(e.Changes, "; ") +
		"; replication is left running: make the target's schema match (or undo the change), then rerun apply"
}

// lagSQL is the lag of the slot: WAL written on the source that the
// subscriber has not confirmed; and whether a walsender streams from it.
const lagSQL = `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, active FROM pg_replication_slots WHERE slot_name = $1`

// workerSQL cross-checks the target: the subscription's apply worker runs.
const workerSQL = `SELECT EXISTS (SELECT 1 FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL AND relid IS NULL)`

// syncSQL counts the subscription's tables and those not yet ready.
const syncSQL = `SELECT count(*), count(*) FILTER (WHERE r.srsubstate <> 'r') FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`

// pollQuick is how often a wait checks during its first pollQuickFor: an
// apply worker that just started, or a lag about to close, is seen at once
// rather than up to LagPoll later. Reports and drift checks keep to
// LagPoll.
const (
	pollQuick    = 250 * time.Millisecond
	pollQuickFor = 10 * time.Second
)

// poll runs check until it reports done, the timeout ends the wait, or ctx
// is cancelled: every pollQuick for pollQuickFor, then every LagPoll.
// report is true on the first check and then once per LagPoll: the checks
// that should emit a sample and look for drift.
func (d *dbRun) poll(ctx context.Context, what string, check func(report bool) (bool, error)) error {
	every := d.m.LagPoll
	if every == 0 {
		every = 2 * time.Second
	}
	timeout := time.Duration(d.m.Config.Replication.WaitTimeout)
	start := time.Now()
	deadline := start.Add(timeout)
	var reported time.Time
	for {
		report := reported.IsZero() || time.Since(reported) >= every
		if report {
			reported = time.Now()
		}
		done, err := check(report)
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return &WaitTimeoutError{What: what, Timeout: timeout}
		}
		wait := every
		if time.Since(start) < pollQuickFor {
			wait = min(every, pollQuick)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// waitForLag waits until the slot's lag is at most max_lag_bytes with the
// apply worker running and every table of the subscription synchronised,
// checking the published tables for drift while it waits and once more
// when the lag is reached.
func (d *dbRun) waitForLag(ctx context.Context, st plan.Step) (string, error) {
	src, dst, err := d.both(ctx)
	if err != nil {
		return "", err
	}
	defer src.Close(context.WithoutCancel(ctx))
	defer dst.Close(context.WithoutCancel(ctx))
	p := st.Params
	max := *p.MaxLagBytes
	var lag int64
	firstErrors := int64(-1)
	var syncing int
	streaming := true
	err = d.poll(ctx, fmt.Sprintf("the lag of %s is still above %d bytes", d.name, max), func(report bool) (bool, error) {
		if report {
			if err := d.checkDrift(ctx, src, dst, p.Publication); err != nil {
				return false, err
			}
		}
		var l *int64
		if err := src.QueryRow(ctx, lagSQL, p.Slot).Scan(&l, &streaming); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return false, fmt.Errorf("slot %s is gone from the source (dropped by pghaul cleanup, by hand, or lost to max_slot_wal_keep_size): the target has missed the changes made since; rerun apply with --reset-state to migrate the database again", p.Slot)
			}
			return false, err
		}
		running, err := applyWorker(ctx, dst, p.Subscription)
		if err != nil {
			return false, err
		}
		if err := errorsSince(ctx, dst, p.Subscription, &firstErrors); err != nil {
			return false, err
		}
		if !running {
			var exists bool
			if err := dst.QueryRow(ctx, subscriptionExistsSQL, p.Subscription).Scan(&exists); err != nil {
				return false, err
			}
			if !exists {
				return false, fmt.Errorf("subscription %s is gone from the target (dropped by pghaul cleanup or by hand): changes since are not applied; rerun apply with --reset-state to migrate the database again", p.Subscription)
			}
		}
		if l == nil {
			return false, nil
		}
		// Tables the subscription still copies (a resumed copy's) hold no
		// lag of the slot's, but are not on the target yet.
		var total, pending int
		if err := dst.QueryRow(ctx, syncSQL, p.Subscription).Scan(&total, &pending); err != nil {
			return false, err
		}
		if syncing = pending; pending > 0 {
			if report {
				d.m.emit(SyncSample{Database: d.name, Tables: total, Pending: pending})
			}
			return false, nil
		}
		lag = *l
		// The stream must be up, not only the worker: right after the
		// subscription is made, an idle source shows no lag before the
		// worker has connected, and a freeze then (the cut-over's next
		// step) refuses its connection, so the fence could never be
		// confirmed.
		done := running && streaming && lag <= max
		if report || done {
			d.m.emit(LagSample{Database: d.name, Lag: lag, Max: max, Running: running})
		}
		crashPoint("lag:" + d.name)
		return done, nil
	})
	var timeout *WaitTimeoutError
	switch {
	case errors.As(err, &timeout) && syncing > 0:
		timeout.What = fmt.Sprintf("the subscription of %s still copies %s", d.name, words.Count(syncing, "table"))
	case errors.As(err, &timeout) && !streaming:
		timeout.What = fmt.Sprintf("the subscription of %s does not stream from slot %s (the target's log says why it cannot connect to the source)", d.name, p.Slot)
	}
	if err != nil {
		return "", err
	}
	if err := d.checkDrift(ctx, src, dst, p.Publication); err != nil {
		return "", err
	}
	return fmt.Sprintf("lag %d bytes (at most %d)", lag, max), nil
}

// applyErrorsSQL counts the errors of the subscription's apply worker
// (15+): one that fails on every change restarts every few seconds and
// the lag never closes.
const applyErrorsSQL = `SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = $1`

// applyErrorsMax is how many apply errors a wait tolerates before it
// reports the worker failing instead of waiting out wait_timeout.
const applyErrorsMax = 3

// errorsSince fails a wait whose subscription's apply worker has failed
// applyErrorsMax times since the wait began (first, -1 at the start,
// holds the count then). Before 15 there is no count: nothing is checked.
func errorsSince(ctx context.Context, dst *pgx.Conn, subscription string, first *int64) error {
	if pg.ServerMajor(dst) < 15 {
		return nil
	}
	var n int64
	if err := dst.QueryRow(ctx, applyErrorsSQL, subscription).Scan(&n); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	}
	if *first < 0 {
		*first = n
		return nil
	}
	if n-*first >= applyErrorsMax {
		return fmt.Errorf("the apply worker of subscription %s keeps failing (%d errors during this wait): its error is in the target's server log; fix it, then rerun apply", subscription, n-*first)
	}
	return nil
}

// waitForSync waits until the subscription's own copy finished every table
// (state r): lag alone says nothing while tables are still empty.
func (d *dbRun) waitForSync(ctx context.Context, st plan.Step) (string, error) {
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var total, pending int
	err = d.poll(ctx, fmt.Sprintf("the subscription of %s has not copied every table", d.name), func(report bool) (bool, error) {
		if err := dst.QueryRow(ctx, syncSQL, st.Params.Subscription).Scan(&total, &pending); err != nil {
			return false, err
		}
		done := total > 0 && pending == 0
		if report || done {
			d.m.emit(SyncSample{Database: d.name, Tables: total, Pending: pending})
		}
		if _, err := applyWorker(ctx, dst, st.Params.Subscription); err != nil {
			return false, err
		}
		return done, nil
	})
	if err != nil {
		return "", err
	}
	return words.Count(total, "table") + " synced", nil
}

// applyWorker reports whether the subscription's apply worker runs on the
// target, waking the launcher when it does not.
func applyWorker(ctx context.Context, dst *pgx.Conn, subscription string) (bool, error) {
	var running bool
	if err := dst.QueryRow(ctx, workerSQL, subscription).Scan(&running); err != nil {
		return false, err
	}
	if !running {
		wakeLauncher(ctx, dst, subscription)
	}
	return running, nil
}

// wakeLauncher nudges the target's logical replication launcher while a
// subscription waits for its apply worker. Up to PostgreSQL 15 the
// launcher starts workers at most once per wal_retrieve_retry_interval
// (5 s) for the whole server, and a wake-up inside that interval restarts
// its full wait: a second database's subscription created a moment after
// the first one's worker started waits 5 s more than it must. ALTER
// SUBSCRIPTION ... ENABLE of an enabled subscription changes nothing but
// wakes the launcher, which starts the worker as soon as the interval
// allows. A subscription someone disabled is left alone; a refusal (an
// aiven_extras subscription owned by another role) is ignored.
func wakeLauncher(ctx context.Context, dst *pgx.Conn, subscription string) {
	if pg.ServerMajor(dst) >= 16 {
		return // 16 keeps a start time per subscription
	}
	var enabled bool
	if err := dst.QueryRow(ctx, subscriptionEnabledSQL, subscription).Scan(&enabled); err != nil || !enabled {
		return
	}
	_, _ = dst.Exec(ctx, "ALTER SUBSCRIPTION "+ident(subscription)+" ENABLE")
}

const subscriptionEnabledSQL = `SELECT subenabled FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`

func (d *dbRun) both(ctx context.Context) (*pgx.Conn, *pgx.Conn, error) {
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		src.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return src, dst, nil
}

// publishedColumnsSQL lists each published table with its stored columns
// and their types, as the subscriber will need them.
const publishedColumnsSQL = `SELECT format('%I.%I', p.schemaname, p.tablename),
	coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attname)
		FROM pg_attribute a WHERE a.attrelid = format('%I.%I', p.schemaname, p.tablename)::regclass
		AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '')
FROM pg_publication_tables p WHERE p.pubname = $1 ORDER BY 1`

const targetColumnsSQL = `SELECT format('%I.%I', n.nspname, c.relname),
	coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attname)
		FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE format('%I.%I', n.nspname, c.relname) = ANY ($1)`

// unpublishedSQL lists the tables holding rows (rowTable).
const unpublishedSQL = `SELECT ` + rowTableColumns + rowTablesFrom + rowTablesWhere

// checkDrift compares the published tables on the source with the tables
// the subscription writes into on the target: a new table, a dropped one,
// or different columns stop replication of that table. A table the
// filters select that the migration does not move and the publication
// does not carry (one created after the plan, under a publication that
// lists the planned tables) would be missing after the switch: drift too.
func (d *dbRun) checkDrift(ctx context.Context, src, dst *pgx.Conn, publication string) error {
	source, err := columnsBy(ctx, src, publishedColumnsSQL, publication)
	if err != nil {
		return fmt.Errorf("read published tables: %w", err)
	}
	unpublished, err := d.unpublished(ctx, src, source)
	if err != nil {
		return fmt.Errorf("read the source's tables: %w", err)
	}
	var changes []string
	for _, t := range unpublished {
		changes = append(changes, fmt.Sprintf("table %s is new on the source and publication %s does not carry it (drop it on the source, or migrate the database again with --reset-state)", t.Ref(), publication))
	}
	names := make([]string, 0, len(source))
	for n := range source {
		names = append(names, n)
	}
	target, err := columnsBy(ctx, dst, targetColumnsSQL, names)
	if err != nil {
		return fmt.Errorf("read target tables: %w", err)
	}
	for _, n := range slices.Sorted(maps.Keys(source)) {
		t, ok := target[n]
		switch {
		case !ok:
			changes = append(changes, fmt.Sprintf("table %s is new on the source", n))
		case t != source[n]:
			changes = append(changes, fmt.Sprintf("table %s has columns (%s) on the source, (%s) on the target", n, source[n], t))
		}
	}
	if len(changes) > 0 {
		return &DriftError{Changes: changes}
	}
	return nil
}

// unpublished are the tables the filters select that neither publication
// (published are its tables, by quoted name) carries, by themselves or
// through their partition root, nor the migration moves otherwise (an
// unlogged table, copied again at the cut-over).
func (d *dbRun) unpublished(ctx context.Context, src *pgx.Conn, published map[string]string) ([]plan.Table, error) {
	moved := map[plan.TableRef]bool{}
	for _, kind := range []plan.StepKind{plan.StepCopyData, plan.StepCreateSubscription, plan.StepCopyUnlogged} {
		if st, ok := d.step(kind); ok {
			for _, r := range d.copiedTables(st) {
				moved[r] = true
			}
		}
	}
	rows, err := src.Query(ctx, unpublishedSQL)
	if err != nil {
		return nil, err
	}
	var out []plan.Table
	var t rowTable
	_, err = pgx.ForEachRow(rows, t.dest(), func() error {
		_, pub := published[t.quoted]
		_, rootPub := published[t.quotedRoot]
		if !pub && !rootPub && !moved[t.Ref()] && d.copiesRows(t) {
			out = append(out, t.Table)
		}
		return nil
	})
	return out, err
}

func columnsBy(ctx context.Context, conn *pgx.Conn, sql string, arg any) (map[string]string, error) {
	rows, err := conn.Query(ctx, sql, arg)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var name, cols string
	_, err = pgx.ForEachRow(rows, []any{&name, &cols}, func() error { out[name] = cols; return nil })
	return out, err
}

// refreshMatViews refreshes the materialized views on the target at
// cut-over: replication does not carry them.
func (d *dbRun) refreshMatViews(ctx context.Context, st plan.Step) (string, error) {
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{Settings: map[string]string{"statement_timeout": "0"}})
	if err != nil {
		return "", err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	for _, mv := range st.Params.Tables {
		if _, err := dst.Exec(ctx, "REFRESH MATERIALIZED VIEW "+ident(mv.Schema, mv.Name)); err != nil {
			return "", fmt.Errorf("refresh %s: %w", mv, err)
		}
	}
	return fmt.Sprintf("%d refreshed", len(st.Params.Tables)), nil
}

// stopReplication ends the database's replication: the subscription
// disabled, detached and dropped, then the publication and the slot.
func (d *dbRun) stopReplication(ctx context.Context, st plan.Step) (string, error) {
	p := st.Params
	if _, err := d.dropSubscription(ctx, p.Subscription); err != nil {
		return "", err
	}
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	note, err := d.dropPublicationOn(ctx, src, p.Publication)
	src.Close(context.WithoutCancel(ctx))
	if err != nil {
		return "", err
	}
	if _, err := d.dropSlot(ctx, p.Slot); err != nil {
		return "", err
	}
	return switchedMessage(note), nil
}

// switchedMessage says what the switch dropped; note is dropPublicationOn's.
func switchedMessage(note string) string {
	if note != "" {
		return "subscription and slot dropped" + note
	}
	return "subscription, publication and slot dropped"
}

// dropPublicationOn drops the publication on src, a session in the
// database. One made through aiven_extras belongs to another role:
// without a slot or subscriber it costs nothing, so that is a note
// ("; publication ... was left"), not a failure.
func (d *dbRun) dropPublicationOn(ctx context.Context, src *pgx.Conn, name string) (string, error) {
	_, err := src.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident(name))
	switch {
	case isPrivilegeError(err):
		note := fmt.Sprintf("; publication %s belongs to another role and was left: drop it as its owner", name)
		d.m.emit(Notice{Message: d.name + ": " + note[2:]})
		return note, nil
	case err != nil:
		return "", fmt.Errorf("drop publication %s: %w", name, err)
	}
	return "", nil
}
