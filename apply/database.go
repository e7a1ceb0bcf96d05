package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgdump"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// dbRun carries out one database's steps in order. The exported snapshot
// lives in a session, so it is taken again whenever a step that reads under
// it is not done yet.
type dbRun struct {
	m     *Migration
	name  string
	steps []plan.Step
	snap  *snapshotHolder
	// toc is the schema archive's table of contents by section ("" for
	// all), each read once.
	toc map[string][]pgdump.Entry
	// sections are the archive's sections as pg_restore renders them, by
	// name, each rendered once (section).
	sections map[string]*pgdump.Section
	// srcDB is the database's row on the source and bootstrap the target's
	// bootstrap session, shared by create-database and configure-database
	// (one after the other) instead of two connections each.
	srcDB     *sourceDB
	bootstrap *pgx.Conn
	hasTurn   bool
	// target is a session in the database on the target shared by the
	// steps that run one after the other and hold no session state:
	// pre-data's and post-data's catalog checks, the first early index
	// builder while the copy runs (it resets what it sets) and the large
	// objects. A backend costs tens of milliseconds of server CPU to start.
	target *pgx.Conn
	// resume: this run keeps the tables an interrupted copy finished under
	// the slot's snapshot (resumeCopy).
	resume bool
	// disowned are the owners the target user cannot hand objects to
	// (prepareOwners): the restore leaves out their OWNER TO statements.
	disowned map[string]bool
	// prefetch reads what the copy needs from the source while the schema
	// is dumped and restored.
	prefetch *copyPrefetch
}

func (d *dbRun) run(ctx context.Context) error {
	defer d.releaseSnapshot()
	defer d.waitPrefetch() // its session closed before the database is done
	defer d.releaseBootstrap(ctx)
	defer closeSession(ctx, &d.target)
	needSnapshot := false
	for _, st := range d.steps {
		if kinds[st.Kind].snapshot && d.m.stepStatus(st.ID) != state.StatusDone {
			needSnapshot = true
		}
	}
	if needSnapshot {
		resume, err := d.resumeCopy(ctx)
		if err != nil {
			return err
		}
		d.resume = resume
	}
	for _, st := range d.steps {
		if needSnapshot && !d.resume && (st.Kind == plan.StepExportSnapshot || st.Kind == plan.StepCreateSlot && d.snapshotMode()) {
			d.m.setStep(st.ID, state.StepState{Status: state.StatusPending})
		}
		if needSnapshot && !d.resume && d.snapshotMode() && d.has(plan.StepCreateSlot) && (st.Kind == plan.StepCopyData || st.Kind == plan.StepCopyLargeObjects) {
			// A new slot starts after what the old one's snapshot copied:
			// every row is copied again under the new one.
			d.m.setStep(st.ID, state.StepState{Status: state.StatusPending})
		}
		if plan.IsCutover(st.Kind) {
			continue // the cut-over runs its own steps
		}
		if _, err := d.stepFunc(st); err != nil {
			return err
		}
	}
	for i := 0; i < len(d.steps); {
		if plan.IsCutover(d.steps[i].Kind) {
			return d.cutover(ctx, d.steps[i:]) // the cut-over steps come last
		}
		target, source := splitSides(d.steps[i:])
		if len(target) > 0 && len(source) > 0 {
			// The database's creation on the target and the snapshot and
			// schema dump on the source do not wait for each other.
			errs := make(chan error, 1)
			go func() { errs <- d.runSteps(ctx, target) }()
			err := d.runSteps(ctx, source)
			targetErr := <-errs
			if targetErr != nil && err == nil {
				d.undoSource(ctx, source)
			}
			if err = errors.Join(targetErr, err); err != nil {
				return err
			}
			i += len(target) + len(source)
			continue
		}
		if err := d.runSteps(ctx, d.steps[i:i+1]); err != nil {
			return err
		}
		i++
	}
	return nil
}

// undoSource removes the publication and the slot the source steps made
// when the target's steps alongside them failed: nothing would replicate
// from them before a rerun, and the slot holds WAL on the source all that
// time. The steps are pending again: a rerun makes them anew.
func (d *dbRun) undoSource(ctx context.Context, steps []plan.Step) {
	ctx = context.WithoutCancel(ctx)
	n := d.m.State.Plan.DatabaseNames(d.name)
	if n.Slot == "" {
		return
	}
	d.releaseSnapshot()
	var undone []string
	if ok, err := d.dropSlot(ctx, n.Slot); err == nil && ok {
		undone = append(undone, "slot "+n.Slot)
	}
	if src, err := d.m.Source.Connect(ctx, d.name, pg.Options{}); err == nil {
		var exists bool
		if src.QueryRow(ctx, publicationExistsSQL, n.Publication).Scan(&exists) == nil && exists {
			if note, err := d.dropPublicationOn(ctx, src, n.Publication); err == nil && note == "" {
				undone = append(undone, "publication "+n.Publication)
			}
		}
		src.Close(ctx)
	}
	for _, st := range steps {
		if st.Kind == plan.StepCreatePublication || st.Kind == plan.StepCreateSlot {
			d.m.setStep(st.ID, state.StepState{Status: state.StatusPending, Message: "removed: the target's steps failed"})
		}
	}
	if len(undone) > 0 {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: the target's steps failed: dropped %s, which nothing would replicate from; a rerun makes them again", d.name, strings.Join(undone, " and "))})
	}
	if err := d.m.save(); err != nil {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: %v", d.name, err)})
	}
}

// splitSides takes the longest prefix of steps made of target-only and
// source-only kinds and splits it by side, each side in plan order.
func splitSides(steps []plan.Step) (target, source []plan.Step) {
	for _, st := range steps {
		switch {
		case kinds[st.Kind].side == targetSide:
			target = append(target, st)
		case kinds[st.Kind].side == sourceSide:
			source = append(source, st)
		default:
			return target, source
		}
	}
	return target, source
}

func (d *dbRun) runSteps(ctx context.Context, steps []plan.Step) error {
	for _, st := range steps {
		fn, err := d.stepFunc(st)
		if err != nil {
			return err
		}
		if err := d.m.runStep(ctx, st, fn); err != nil {
			return err
		}
		if st.Kind == plan.StepCopyLargeObjects || st.Kind == plan.StepCopyData && !d.has(plan.StepCopyLargeObjects) {
			d.releaseSnapshot()
		}
	}
	return nil
}

func (d *dbRun) has(kind plan.StepKind) bool {
	_, ok := d.step(kind)
	return ok
}

// step is the database's step of kind, if it has one.
func (d *dbRun) step(kind plan.StepKind) (plan.Step, bool) {
	for _, st := range d.steps {
		if st.Kind == kind {
			return st, true
		}
	}
	return plan.Step{}, false
}

func (d *dbRun) stepFunc(st plan.Step) (stepFunc, error) {
	k := kinds[st.Kind]
	if k.database == nil {
		return nil, errNoExecutor(st, "in a database")
	}
	return func(ctx context.Context, st plan.Step) (string, error) { return k.database(d, ctx, st) }, nil
}

// dumpFile is where the database's schema archive lives in the state directory.
func (d *dbRun) dumpFile() string {
	safe := regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(d.name, "_")
	sum := sha256.Sum256([]byte(d.name))
	return d.m.Store.Path(fmt.Sprintf("schema-%s-%s.dump", safe, hex.EncodeToString(sum[:4])))
}

// sourceDB is the database's catalog row on the source, read at apply time.
type sourceDB struct {
	Owner, Encoding, Collate, Ctype, Provider, Locale, Comment string
	Settings                                                   []string
	ACL                                                        []aclItem
	HasACL                                                     bool
}

// sourceDBSQL has the version-dependent locale columns as %s.
var sourceDBSQL = `SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, %s,
	COALESCE(shobj_description(d.oid, 'pg_database'), ''),
	COALESCE((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'),
	d.datacl IS NOT NULL, ` + fmt.Sprintf(aclJSON, "d.datacl") + `
FROM pg_database d WHERE d.datname = $1`

func (d *dbRun) readSourceDB(ctx context.Context) (sourceDB, error) {
	conn, err := d.m.Source.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return sourceDB{}, err
	}
	defer d.m.Source.Release(ctx, conn)
	major := pg.ServerMajor(conn)
	locale := `'', ''`
	switch {
	case major >= 17:
		locale = `d.datlocprovider::text, COALESCE(d.datlocale, '')`
	case major >= 15:
		locale = `d.datlocprovider::text, COALESCE(d.daticulocale, '')`
	}
	var s sourceDB
	err = conn.QueryRow(ctx, strings.Replace(sourceDBSQL, "%s", locale, 1), d.name).Scan(&s.Owner, &s.Encoding, &s.Collate, &s.Ctype,
		&s.Provider, &s.Locale, &s.Comment, &s.Settings, &s.HasACL, &s.ACL)
	if err != nil {
		return s, fmt.Errorf("read database %s on the source: %w", d.name, err)
	}
	return s, nil
}

// sourceDBAndTarget reads the database's row on the source and opens the
// target's bootstrap database, where databases are created and altered.
// Databases take turns (Migration.bootstrapTurn) from here until
// releaseBootstrap: each turn's sessions go back to the endpoints, so the
// databases are created one after another on the same two backends, the
// largest first, instead of each on two of its own.
func (d *dbRun) sourceDBAndTarget(ctx context.Context) (sourceDB, *pgx.Conn, error) {
	if !d.hasTurn {
		select {
		case d.m.bootstrapTurn <- struct{}{}:
			d.hasTurn = true
		case <-ctx.Done():
			return sourceDB{}, nil, ctx.Err()
		}
	}
	if d.srcDB == nil {
		s, err := d.readSourceDB(ctx)
		if err != nil {
			return s, nil, err
		}
		d.srcDB = &s
	}
	if d.bootstrap == nil {
		dst, err := d.m.Target.Connect(ctx, "", pg.Options{})
		if err != nil {
			return *d.srcDB, nil, err
		}
		d.bootstrap = dst
	}
	return *d.srcDB, d.bootstrap, nil
}

// targetSession opens the shared session in the database on the target,
// once (no statement timeout: the large objects' batches can be long).
func (d *dbRun) targetSession(ctx context.Context) (*pgx.Conn, error) {
	if d.target == nil {
		conn, err := d.m.Target.Connect(ctx, d.name, pg.Options{Settings: map[string]string{"statement_timeout": "0"}})
		if err != nil {
			return nil, err
		}
		d.target = conn
	}
	return d.target, nil
}

// releaseBootstrap hands the bootstrap session, if open, back to the
// target endpoint for the next database's turn (pg.Endpoint.Release) and
// ends the turn.
func (d *dbRun) releaseBootstrap(ctx context.Context) {
	if d.bootstrap != nil {
		d.m.Target.Release(ctx, d.bootstrap)
		d.bootstrap = nil
	}
	if d.hasTurn {
		<-d.m.bootstrapTurn
		d.hasTurn = false
	}
}

// closeSession ends a session (d.target), if it is open.
func closeSession(ctx context.Context, conn **pgx.Conn) {
	if *conn != nil {
		(*conn).Close(context.WithoutCancel(ctx))
		*conn = nil
	}
}

const databaseExistsSQL = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`

// createDatabase creates the database from template0 with the source's
// encoding and locale, unless it exists (a rerun after a crash).
func (d *dbRun) createDatabase(ctx context.Context, _ plan.Step) (string, error) {
	s, dst, err := d.sourceDBAndTarget(ctx)
	if err != nil {
		return "", err
	}
	var exists bool
	if err := dst.QueryRow(ctx, databaseExistsSQL, d.name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		if err := d.checkNotAnothers(ctx); err != nil {
			return "", err
		}
		return "already exists", nil
	}
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s",
		ident(d.name), literal(s.Encoding), literal(s.Collate), literal(s.Ctype))
	switch s.Provider {
	case "i":
		sql += " LOCALE_PROVIDER icu ICU_LOCALE " + literal(s.Locale)
	case "b":
		sql += " LOCALE_PROVIDER builtin BUILTIN_LOCALE " + literal(s.Locale)
	}
	if _, err := dst.Exec(ctx, sql); err != nil {
		// After a crash, the killed run's CREATE DATABASE can still be
		// finishing on the server when the rerun checked: it exists now,
		// and is taken as it is, as above.
		if pg.HasCode(err, pg.DuplicateDatabase) || pg.HasCode(err, pg.UniqueViolation) {
			if cerr := d.checkNotAnothers(ctx); cerr != nil {
				return "", cerr
			}
			return "already exists (created by the interrupted run)", nil
		}
		return "", err
	}
	return fmt.Sprintf("created (%s, %s/%s)", s.Encoding, s.Collate, s.Ctype), nil
}

const userTablesSQL = `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`

// checkNotAnothers refuses a database the plan was to create that exists
// and holds tables while this migration's schema is not restored yet: its
// own crash between CREATE DATABASE and the checkpoint leaves it empty, so
// the tables are another migration's (or someone's) into the same target.
func (d *dbRun) checkNotAnothers(ctx context.Context) error {
	for _, st := range d.steps {
		if s := d.m.stepStatus(st.ID); st.Kind == plan.StepRestorePreData && s != state.StatusPending && s != "" {
			return nil // the schema is (maybe) ours
		}
	}
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var n int
	if err := dst.QueryRow(ctx, userTablesSQL).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("database %s appeared on the target after this migration planned to create it, and holds %d tables it did not restore: another migration (or someone) writes into it; run one migration per target database, or rerun with --reset-state to plan against the target as it is", d.name, n)
	}
	return nil
}

// configureDatabase sets what pg_dump without --create does not carry:
// owner, settings, privileges, comment, and created roles' settings in it.
func (d *dbRun) configureDatabase(ctx context.Context, _ plan.Step) (string, error) {
	s, dst, err := d.sourceDBAndTarget(ctx)
	if err != nil {
		return "", err
	}
	defer d.releaseBootstrap(ctx)
	db := ident(d.name)
	var notes []string
	if !d.created() {
		// A database the target already had keeps its owner: pghaul does
		// not take over what it did not create.
		notes = append(notes, "existing database: owner kept")
	} else if owner, note, err := d.m.ownerFor(ctx, dst, s.Owner); err != nil {
		return "", err
	} else if owner != "" {
		if _, err := dst.Exec(ctx, "ALTER DATABASE "+db+" OWNER TO "+ident(owner)); err != nil {
			return "", fmt.Errorf("set owner: %w", err)
		}
		notes = appendNote(notes, note)
	}
	stmts := []string{}
	for _, set := range s.Settings {
		stmts = append(stmts, "ALTER DATABASE "+db+" SET "+setClause(set))
	}
	if s.HasACL {
		stmts = append(stmts, grants("DATABASE "+db, s.ACL)...)
	}
	if s.Comment != "" {
		stmts = append(stmts, "COMMENT ON DATABASE "+db+" IS "+literal(s.Comment))
	}
	if d.m.createdRoles() {
		rs, err := d.roleSettings(ctx)
		if err != nil {
			return "", err
		}
		stmts = append(stmts, rs...)
	}
	for _, sql := range stmts {
		if _, err := dst.Exec(ctx, sql); err != nil {
			if isMissingRole(err) {
				notes = appendNote(notes, "skipped for a role missing on the target: "+sql)
				continue
			}
			return "", fmt.Errorf("%s: %w", sql, err)
		}
	}
	return strings.Join(append([]string{words.Count(len(stmts), "statement")}, notes...), "; "), nil
}

// created reports that the plan creates the database on the target.
func (d *dbRun) created() bool {
	for _, dp := range d.m.State.Plan.Databases {
		if dp.Name == d.name {
			return dp.Create
		}
	}
	return false
}

func appendNote(notes []string, n string) []string {
	if n == "" {
		return notes
	}
	return append(notes, n)
}

// roleSettings are ALTER ROLE ... IN DATABASE ... SET statements for the
// roles this migration created.
func (d *dbRun) roleSettings(ctx context.Context) ([]string, error) {
	conn, err := d.m.Source.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer d.m.Source.Release(ctx, conn)
	roles, err := d.m.readSourceRoles(ctx, conn)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range roles {
		if d.m.previousRoleStatus(r.Name) != "created" {
			continue
		}
		for _, dc := range r.DatabaseConfig {
			if dc.Database != d.name {
				continue
			}
			for _, s := range dc.Config {
				out = append(out, "ALTER ROLE "+ident(r.Name)+" IN DATABASE "+ident(d.name)+" SET "+setClause(s))
			}
		}
	}
	return out, nil
}
