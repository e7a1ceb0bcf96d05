package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/copyrelay"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// CutoverAbortError is a cut-over that gave up before its switch: the
// source was restored as saved (unless RestoreErr says otherwise) and
// replication is left running.
type CutoverAbortError struct {
	Database string
	Step     string
	Err      error
	// Froze reports that the source had been frozen; RestoreErr that
	// restoring it failed, and it is still frozen.
	Froze      bool
	RestoreErr error
	// HookErr is an on_abort hook that failed.
	HookErr error
}

func (e *CutoverAbortError) Error() string {
	msg := fmt.Sprintf("cut-over of %s aborted at %s: %s", e.Database, e.Step, pg.Describe(e.Err))
	switch {
	case e.RestoreErr != nil:
		msg += fmt.Sprintf("; the source database is STILL FROZEN (%s): run pghaul cleanup --unfreeze", pg.Describe(e.RestoreErr))
	case e.Froze:
		msg += "; the source database accepts connections and writes again (restored as saved)"
	}
	if e.HookErr != nil {
		msg += "; " + e.HookErr.Error()
	}
	return msg + "; replication is left running: fix the cause and rerun apply"
}

func (e *CutoverAbortError) Unwrap() error { return e.Err }

// FreezeTimeoutError is a cut-over that did not reach its switch within
// replication.freeze_timeout of the freeze.
type FreezeTimeoutError struct{ Timeout time.Duration }

func (e *FreezeTimeoutError) Error() string {
	return fmt.Sprintf("the source stayed frozen for replication.freeze_timeout (%s) without the cut-over reaching its switch", e.Timeout)
}

// VerifyError lists the tables the cut-over's verify found different.
type VerifyError struct{ Tables []string }

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s between the frozen source and the target: %s", words.Count(len(e.Tables), "table")+" "+words.Agree(len(e.Tables), "differs", "differ"), strings.Join(e.Tables, "; "))
}

var errFreezeTimeout = errors.New("replication.freeze_timeout ran out")

// cutoverSession are the settings of pghaul's sessions in the database
// during the cut-over: verify's stable text forms, no row security (the
// unlogged tables' COPY), no timeouts.
var cutoverSession = func() map[string]string {
	s := maps.Clone(inspect.VerifySession)
	s["row_security"], s["lock_timeout"], s["idle_in_transaction_session_timeout"] = "off", "0", "0"
	return s
}()

// cutover runs one database's cut-over steps (plan.CutoverSteps with
// stop: true) as one guarded sequence, DESIGN.md section 5: wait, freeze,
// fence, carry, verify, switch. None of its steps stays done before the
// switch is: a rerun evaluates the wait and the fence again. Any failure
// after the wait, before the switch, aborts: the source is restored as
// saved and replication runs on.
type cutover struct {
	d     *dbRun
	r     config.Replication
	steps []plan.Step
	// src is pghaul's session in the database on the source, opened
	// before the freeze (which lets nothing new in) and used for every
	// source read until the switch; dst its twin on the target. admin is
	// a session in another database of the source, where ALTER DATABASE
	// ... ALLOW_CONNECTIONS runs and the slot is watched and dropped.
	src, dst, admin *pgx.Conn
	// deadline ends the freeze (freeze_timeout); zero before it.
	deadline time.Time
	fence    string
}

// cutover runs the database's cut-over steps; without stop (no switch
// step) that is the lag wait alone, a condition run every time.
func (d *dbRun) cutover(ctx context.Context, steps []plan.Step) error {
	last := steps[len(steps)-1]
	if last.Kind != plan.StepStopReplication {
		return d.runSteps(ctx, steps)
	}
	if d.m.stepStatus(last.ID) == state.StatusDone {
		for _, st := range steps {
			d.m.emit(StepSkipped{Step: st, Reason: "cut over in an earlier run"})
		}
		return nil
	}
	c := &cutover{d: d, r: d.m.Config.Replication, steps: steps}
	c.resetSteps()
	defer c.close(ctx)
	if fr := d.m.freezeOf(d.name); fr != nil && fr.Switching {
		return c.finishSwitch(ctx, fr)
	}
	for _, st := range steps {
		err := d.m.runStep(ctx, st, c.stepFunc(st))
		if err == nil {
			continue
		}
		if st.Kind == plan.StepWaitForLag {
			return err // nothing of the cut-over happened yet
		}
		return c.abort(ctx, st, err)
	}
	return nil
}

// resetSteps makes every cut-over step that is not failed pending: the
// stored plan keeps them pending until the switch.
func (c *cutover) resetSteps() {
	c.d.m.update(func() {
		for _, st := range c.steps {
			if ss, ok := c.d.m.State.Steps[st.ID]; ok && ss.Status != state.StatusFailed && ss.Status != state.StatusWaiting {
				delete(c.d.m.State.Steps, st.ID)
				c.d.m.State.TouchStep(st.ID)
			}
		}
	})
}

func (c *cutover) stepFunc(st plan.Step) stepFunc {
	k := kinds[st.Kind]
	if k.cutover == nil {
		err := errNoExecutor(st, "in a cut-over")
		return func(context.Context, plan.Step) (string, error) { return "", err }
	}
	return k.cutover(c)
}

// inFreeze runs fn under the freeze's deadline: running out of it is a
// FreezeTimeoutError, not an interruption.
func (c *cutover) inFreeze(fn func(context.Context, plan.Step) (string, error)) func(context.Context, plan.Step) (string, error) {
	return func(ctx context.Context, st plan.Step) (string, error) {
		if c.deadline.IsZero() {
			return fn(ctx, st)
		}
		fctx, cancel := context.WithDeadlineCause(ctx, c.deadline, errFreezeTimeout)
		defer cancel()
		msg, err := fn(fctx, st)
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(fctx), errFreezeTimeout) {
			return "", &FreezeTimeoutError{Timeout: time.Duration(c.r.FreezeTimeout)}
		}
		return msg, err
	}
}

// wait is the lag wait; a source an earlier run froze is not waited for
// (nothing writes to it, and the fence takes the wait's place).
func (c *cutover) wait(ctx context.Context, st plan.Step) (string, error) {
	if c.d.m.freezeOf(c.d.name) != nil {
		return "the source was frozen by an earlier run: the fence takes the wait's place", nil
	}
	return c.d.waitForLag(ctx, st)
}

// sessions opens pghaul's sessions in the database on both sides.
func (c *cutover) sessions(ctx context.Context) error {
	m, db := c.d.m, c.d.name
	if c.src == nil {
		src, err := m.Source.Connect(ctx, db, pg.Options{Settings: cutoverSession})
		if err != nil {
			return err
		}
		c.src = src
		m.ownSession(src, true)
	}
	if c.dst == nil {
		var monetary string
		if err := c.src.QueryRow(ctx, "SELECT current_setting('lc_monetary')").Scan(&monetary); err != nil {
			return err
		}
		settings := maps.Clone(cutoverSession)
		settings["lc_monetary"] = monetary
		dst, err := m.Target.Connect(ctx, db, pg.Options{Settings: settings})
		if err != nil {
			return err
		}
		c.dst = dst
	}
	return nil
}

// adminConn returns the session outside the database, opening it (again,
// when a timeout ended it).
func (c *cutover) adminConn(ctx context.Context) (*pgx.Conn, error) {
	if c.admin != nil && !c.admin.IsClosed() {
		return c.admin, nil
	}
	c.d.m.ownSession(c.admin, false)
	admin, err := adminSession(ctx, c.d.m.Source, c.d.name)
	if err != nil {
		return nil, err
	}
	c.admin = admin
	c.d.m.ownSession(admin, true)
	return admin, nil
}

func (c *cutover) close(ctx context.Context) {
	for _, conn := range []**pgx.Conn{&c.src, &c.admin} {
		c.d.m.ownSession(*conn, false)
		closeSession(ctx, conn)
	}
	closeSession(ctx, &c.dst)
}

// ownSession adds (or removes) a source session's backend to the PIDs no
// freeze ends.
func (m *Migration) ownSession(conn *pgx.Conn, own bool) {
	if conn == nil {
		return
	}
	m.update(func() {
		if m.own == nil {
			m.own = map[uint32]bool{}
		}
		if own {
			m.own[conn.PgConn().PID()] = true
		} else {
			delete(m.own, conn.PgConn().PID())
		}
	})
}

// ownPIDs are the backends of pghaul's cut-over sessions on the source.
func (m *Migration) ownPIDs() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for pid := range m.own {
		out = append(out, int32(pid))
	}
	return out
}

// hookEnv describes the cut-over to its hooks.
func (c *cutover) hookEnv(status, reason string) hookEnv {
	var dbs []string
	for _, dp := range c.d.m.State.Plan.Databases {
		if dp.Names.Slot != "" {
			dbs = append(dbs, dp.Name)
		}
	}
	return hookEnv{Database: c.d.name, Databases: dbs, Status: status, FenceLSN: c.fence, AbortReason: reason}
}

// freeze saves the database's datallowconn in the state, opens pghaul's
// sessions, refuses new connections and ends every other client session.
// A freeze an earlier run saved is taken up again: its saved value stays
// what an abort restores.
func (c *cutover) freeze(ctx context.Context, _ plan.Step) (string, error) {
	m, db := c.d.m, c.d.name
	fr := m.freezeOf(db)
	resumed := fr != nil
	if !resumed {
		// Bounded like the freeze: a pooler's PAUSE waits for the
		// transactions under way, and must not hold the cut-over for ever.
		hctx, cancel := context.WithTimeoutCause(ctx, time.Duration(c.r.FreezeTimeout), errFreezeTimeout)
		err := m.runHooks(hctx, "before_freeze", c.r.Hooks.BeforeFreeze, c.hookEnv("freezing", ""))
		cancel()
		if err != nil {
			return "", err
		}
	}
	admin, err := c.adminConn(ctx)
	if err != nil {
		return "", err
	}
	var allow bool
	if err := admin.QueryRow(ctx, allowConnectionsSQL, db).Scan(&allow); err != nil {
		return "", fmt.Errorf("read datallowconn of %s: %w", db, err)
	}
	if !resumed {
		fr = &state.Freeze{AllowConnections: allow, SavedAt: m.Now().UTC()}
		if err := m.setFreeze(db, fr); err != nil {
			return "", err
		}
		crashPoint("freeze-saved:" + db)
	} else if !allow {
		// pghaul's sessions can only be opened while connections are
		// allowed: for an instant, and the fence is read after the freeze
		// is back, so whatever slips in is replicated before it.
		if err := setAllowConnections(ctx, admin, db, true); err != nil {
			return "", err
		}
	}
	m.Source.CloseIdle(ctx) // a pooled session in the database would be ended as a stranger
	if err := c.sessions(ctx); err != nil {
		return "", err
	}
	if err := setAllowConnections(ctx, admin, db, false); err != nil {
		return "", err
	}
	now := m.Now()
	c.deadline = now.Add(time.Duration(c.r.FreezeTimeout))
	if fr.FrozenAt.IsZero() {
		fr.FrozenAt = now.UTC()
	}
	return c.inFreeze(func(ctx context.Context, _ plan.Step) (string, error) {
		return c.endSessions(ctx, admin, fr)
	})(ctx, plan.Step{})
}

// endSessions ends the database's client sessions but pghaul's, then runs
// the after_freeze hooks.
func (c *cutover) endSessions(ctx context.Context, admin *pgx.Conn, fr *state.Freeze) (string, error) {
	m, db := c.d.m, c.d.name
	n, err := endSessions(ctx, admin, db, m.ownPIDs(), 5*time.Second)
	fr.SessionsEnded += n
	if serr := m.setFreeze(db, fr); serr != nil {
		return "", errors.Join(err, serr)
	}
	if err != nil {
		return "", err
	}
	crashPoint("freeze-ended:" + db)
	if err := m.runHooks(ctx, "after_freeze", c.r.Hooks.AfterFreeze, c.hookEnv("frozen", "")); err != nil {
		return "", err
	}
	return fmt.Sprintf("new connections refused, %s ended", words.Count(n, "client session")), nil
}

// fenceSQL: pghaul's own transaction, committed with synchronous_commit
// on, flushes the WAL of every commit inserted before it (those of the
// sessions just ended, asynchronous ones included); the insert position
// read inside it is therefore past every write to the database, and the
// slot confirms it once the subscriber has applied all of them.
const (
	fenceXIDSQL  = `SELECT txid_current()`
	fenceLSNSQL  = `SELECT pg_current_wal_insert_lsn()::text`
	slotFenceSQL = `SELECT active, confirmed_flush_lsn IS NOT NULL AND confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`
)

// flushTargetSQL makes the target flush its WAL now. The subscription's
// apply worker commits asynchronously (its synchronous_commit is off) and
// confirms a position only once the target's WAL is flushed past it, which
// the WAL writer does within up to three wal_writer_delay (200 ms): the
// fence took 0.6 s of a 0.75 s freeze before this (bench/cutover, pgbench
// at 200 tps). A transaction committed with synchronous_commit on flushes
// everything before it at once.
const flushTargetSQL = `BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT`

// streamGrace is how long the slot may have no walsender during the fence
// before the cut-over gives up: with connections refused, the
// subscription cannot reconnect.
const streamGrace = 3 * time.Second

// awaitFence reads the fence on the frozen source and waits until the
// subscription has confirmed it, then checks for drift once more.
func (c *cutover) awaitFence(ctx context.Context, st plan.Step) (string, error) {
	m, db, p := c.d.m, c.d.name, st.Params
	tx, err := c.src.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, q := range []string{"SET LOCAL synchronous_commit = on", fenceXIDSQL} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("fence: %w", err)
		}
	}
	if err := tx.QueryRow(ctx, fenceLSNSQL).Scan(&c.fence); err != nil {
		return "", fmt.Errorf("fence: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("fence: %w", err)
	}
	if fr := m.freezeOf(db); fr != nil {
		fr.FenceLSN = c.fence
		if err := m.setFreeze(db, fr); err != nil {
			return "", err
		}
	}
	admin, err := c.adminConn(ctx)
	if err != nil {
		return "", err
	}
	var inactiveSince time.Time
	for {
		var active, reached bool
		if err := admin.QueryRow(ctx, slotFenceSQL, p.Slot, c.fence).Scan(&active, &reached); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return "", fmt.Errorf("slot %s is gone from the source", p.Slot)
			}
			return "", err
		}
		if reached {
			break
		}
		if _, err := c.dst.Exec(ctx, flushTargetSQL); err != nil {
			return "", fmt.Errorf("flush the target's WAL: %w", err)
		}
		switch {
		case active:
			inactiveSince = time.Time{}
		case inactiveSince.IsZero():
			inactiveSince = time.Now()
		case time.Since(inactiveSince) > streamGrace:
			return "", fmt.Errorf("the subscription's stream from slot %s stopped while the source refuses connections (it cannot reconnect)", p.Slot)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := c.d.checkDrift(ctx, c.src, c.dst, p.Publication); err != nil {
		return "", err
	}
	crashPoint("fence:" + db)
	return "the subscription confirmed the fence " + c.fence, nil
}

// sequences sets every sequence from the source; inside the freeze
// nothing moves them any more, so they are exact.
func (c *cutover) sequences(ctx context.Context, _ plan.Step) (string, error) {
	if err := c.sessions(ctx); err != nil {
		return "", err
	}
	n, err := syncSequencesOn(ctx, c.src, c.dst)
	if err != nil {
		return "", err
	}
	return words.Count(n, "sequence") + " set", nil
}

// unlogged copies the unlogged tables again, each in one target
// transaction: replication does not carry them.
func (c *cutover) unlogged(ctx context.Context, st plan.Step) (string, error) {
	if err := c.sessions(ctx); err != nil {
		return "", err
	}
	tables, _, err := c.d.copyTables(ctx, c.src, c.d.withoutGone(st.Params.Tables), nil)
	if err != nil {
		return "", err
	}
	var rows int64
	for _, t := range tables {
		name, cols := ident(t.ref.Schema, t.ref.Name), strings.Join(t.columns, ", ")
		out, in := fmt.Sprintf("COPY %s (%s) TO STDOUT", name, cols), fmt.Sprintf("COPY %s (%s) FROM STDIN", name, cols)
		if len(t.columns) == 0 {
			out, in = "COPY "+name+" TO STDOUT", "COPY "+name+" FROM STDIN"
		}
		if _, err := c.dst.Exec(ctx, "BEGIN; TRUNCATE ONLY "+name); err != nil {
			return "", fmt.Errorf("copy %s: %w", t.ref, err)
		}
		n, err := copyrelay.Relay(ctx, c.src.PgConn(), c.dst.PgConn(), out, in, copyrelay.Options{Stall: time.Duration(c.d.m.Config.Parallel.StallTimeout), BeforeFirstWrite: func() { crashPoint("unlogged:" + c.d.name + "/" + t.ref.String()) }})
		if err != nil {
			return "", fmt.Errorf("copy %s: %w", t.ref, err)
		}
		if _, err := c.dst.Exec(ctx, "COMMIT"); err != nil {
			return "", fmt.Errorf("copy %s: %w", t.ref, err)
		}
		rows += n
	}
	return fmt.Sprintf("%s copied again (%s)", words.Count(len(tables), "unlogged table"), words.Count(int(rows), "row")), nil
}

// verify compares the copied tables on the frozen source and the target;
// any difference, or a table either side cannot read, aborts.
func (c *cutover) verify(ctx context.Context, st plan.Step) (string, error) {
	if err := c.sessions(ctx); err != nil {
		return "", err
	}
	checks, err := inspect.CompareTables(ctx, c.src, c.dst, c.d.name, c.d.copiedTables(st), st.Params.Checksums)
	if err != nil {
		return "", err
	}
	var bad []string
	for _, ch := range checks {
		switch {
		case ch.Err != "":
			bad = append(bad, fmt.Sprintf("%s (%s)", ch.Table, ch.Err))
		case !ch.Equal():
			bad = append(bad, fmt.Sprintf("%s (%d rows on the source, %d on the target)", ch.Table, ch.SourceRows, ch.TargetRows))
		}
	}
	if len(bad) > 0 {
		return "", &VerifyError{Tables: bad}
	}
	what := "row counts"
	if st.Params.Checksums {
		what = "row counts and checksums"
	}
	return fmt.Sprintf("%s equal (%s)", words.Count(len(checks), "table"), what), nil
}

// switchOver ends replication: the publication first, on pghaul's own
// session (the frozen database lets no new one in), then the subscription
// and the slot. From here the cut-over no longer aborts: a rerun finishes
// it. The source stays frozen; the window is recorded.
func (c *cutover) switchOver(ctx context.Context, st plan.Step) (string, error) {
	m, db := c.d.m, c.d.name
	fr := m.freezeOf(db)
	if fr == nil { // write_freeze: false
		msg, err := c.d.stopReplication(ctx, st)
		if err != nil {
			return "", err
		}
		return c.afterCutover(ctx, msg), nil
	}
	fr.Switching = true
	if err := m.setFreeze(db, fr); err != nil {
		return "", err
	}
	note, err := c.d.dropPublicationOn(ctx, c.src, st.Params.Publication)
	if err != nil {
		return "", err
	}
	return c.dropRest(ctx, st, fr, note)
}

// dropRest drops the subscription and the slot of a switch, records it and
// runs the after_cutover hooks (a failing one is reported: the switch is
// done).
func (c *cutover) dropRest(ctx context.Context, st plan.Step, fr *state.Freeze, note string) (string, error) {
	m, db, p := c.d.m, c.d.name, st.Params
	if _, err := c.d.dropSubscription(ctx, p.Subscription); err != nil {
		return "", err
	}
	admin, err := c.adminConn(ctx)
	if err != nil {
		return "", err
	}
	if _, err := dropSlotOn(ctx, admin, p.Slot); err != nil {
		return "", err
	}
	if fr.SwitchedAt.IsZero() {
		fr.SwitchedAt = m.Now().UTC()
	}
	if err := m.setFreeze(db, fr); err != nil {
		return "", err
	}
	return c.afterCutover(ctx, fmt.Sprintf("%s; writes frozen for %s; the source stays frozen (pghaul cleanup --unfreeze lifts it)",
		switchedMessage(note), fr.Window().Round(time.Millisecond))), nil
}

// afterCutover runs the after_cutover hooks; the switch is done, so a
// failing one is reported with the step's message, not as a failure.
func (c *cutover) afterCutover(ctx context.Context, msg string) string {
	if err := c.d.m.runHooks(context.WithoutCancel(ctx), "after_cutover", c.r.Hooks.AfterCutover, c.hookEnv("cut-over", "")); err != nil {
		c.d.m.emit(Notice{Message: fmt.Sprintf("%s: cut over, but %v", c.d.name, err)})
		msg += "; " + err.Error()
	}
	return msg
}

// finishSwitch completes a switch a crash interrupted: the subscription and
// the slot are dropped; the frozen database cannot be entered to check its
// publication, so cleanup --unfreeze drops it if it is left.
func (c *cutover) finishSwitch(ctx context.Context, fr *state.Freeze) error {
	st := c.steps[len(c.steps)-1]
	return c.d.m.runStep(ctx, st, func(ctx context.Context, st plan.Step) (string, error) {
		fr.PublicationLeft = true
		msg, err := c.dropRest(ctx, st, fr, fmt.Sprintf("; publication %s may be left on the frozen source: cleanup --unfreeze drops it", st.Params.Publication))
		if err != nil {
			return "", err
		}
		for _, s := range c.steps[:len(c.steps)-1] {
			c.d.m.setStep(s.ID, state.StepState{Status: state.StatusDone, Message: "finished by the switch of an earlier run", Finished: c.d.m.Now()})
		}
		return "switch finished after an interruption: " + msg, nil
	})
}

// abort ends a cut-over that failed before its switch: the source is
// restored as saved, the cut-over steps are left pending (the failed one
// says why), the on_abort hooks run. A failed switch is not aborted: the
// source stays frozen and a rerun finishes it.
func (c *cutover) abort(ctx context.Context, st plan.Step, cause error) error {
	m, db := c.d.m, c.d.name
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	fr := m.freezeOf(db)
	if fr != nil && fr.Switching {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the switch of %s stopped: %w; the source stays frozen: rerun apply to finish the switch", db, cause)
	}
	reason := pg.Describe(cause)
	if ctx.Err() != nil {
		reason = "interrupted"
	}
	ab := &CutoverAbortError{Database: db, Step: st.ID, Err: cause, Froze: fr != nil}
	if fr != nil {
		ab.RestoreErr = c.restore(actx, fr)
	}
	c.resetSteps()
	if err := m.save(); err != nil {
		ab.RestoreErr = errors.Join(ab.RestoreErr, err)
	}
	ab.HookErr = m.runHooks(actx, "on_abort", c.r.Hooks.OnAbort, c.hookEnv("aborted", reason))
	if ctx.Err() != nil {
		m.emit(Notice{Message: ab.Error()})
		return ctx.Err()
	}
	return ab
}

// restore gives the database back what the freeze changed and forgets the
// freeze.
func (c *cutover) restore(ctx context.Context, fr *state.Freeze) error {
	c.d.m.ownSession(c.src, false)
	closeSession(ctx, &c.src) // pghaul's session may be mid-statement
	admin, err := c.adminConn(ctx)
	if err != nil {
		return err
	}
	if err := setAllowConnections(ctx, admin, c.d.name, fr.AllowConnections); err != nil {
		return err
	}
	return c.d.m.setFreeze(c.d.name, nil)
}

// loDigestSQL describes every large object by its content, owner,
// privileges and comment: what the cut-over compares to find those made,
// changed or removed since the copy.
const loDigestSQL = `SELECT m.oid, md5(lo_get(m.oid)) || ' ' || pg_get_userbyid(m.lomowner) || ' ' || coalesce(m.lomacl::text, '') || ' ' || coalesce(md5(obj_description(m.oid, 'pg_largeobject')), '') FROM pg_largeobject_metadata m`

// largeObjects brings over the large objects made or changed on the source
// since the copy, and removes those removed there: replication carries
// none of it. Where the target's objects cannot be read (a migration user
// without SELECT on them), every source object is copied again.
func (c *cutover) largeObjects(ctx context.Context, _ plan.Step) (string, error) {
	if err := c.sessions(ctx); err != nil {
		return "", err
	}
	source, err := loDigests(ctx, c.src)
	if err != nil {
		return "", fmt.Errorf("read the source's large objects: %w", err)
	}
	target, err := loDigests(ctx, c.dst)
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		target = map[uint32]string{}
	}
	var gone []uint32
	for oid := range target {
		if _, ok := source[oid]; !ok {
			gone = append(gone, oid)
		}
	}
	if len(gone) > 0 {
		if _, err := c.dst.Exec(ctx, loUnlinkSQL, gone); err != nil {
			return "", fmt.Errorf("remove large objects: %w", err)
		}
	}
	changed, err := readLargeObjects(ctx, c.src, func(lo largeObject) bool {
		d, ok := target[lo.oid]
		return !ok || d != source[lo.oid]
	})
	if err != nil {
		return "", err
	}
	cp := &loCopy{d: c.d, src: c.src, dst: c.dst, owners: map[string]string{}}
	for start := 0; start < len(changed); start += loBatch {
		batch := changed[start:min(start+loBatch, len(changed))]
		if err := cp.batch(ctx, batch); err != nil {
			return "", fmt.Errorf("large objects %d to %d: %w", batch[0].oid, batch[len(batch)-1].oid, err)
		}
	}
	return fmt.Sprintf("%s brought over, %s removed", words.Count(len(changed), "large object"), words.Count(len(gone), "large object")), nil
}

func loDigests(ctx context.Context, conn *pgx.Conn) (map[uint32]string, error) {
	rows, err := conn.Query(ctx, loDigestSQL)
	if err != nil {
		return nil, err
	}
	out := map[uint32]string{}
	var oid uint32
	var digest string
	_, err = pgx.ForEachRow(rows, []any{&oid, &digest}, func() error { out[oid] = digest; return nil })
	return out, err
}
