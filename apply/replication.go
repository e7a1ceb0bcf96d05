package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/dsn"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
)

const publicationExistsSQL = `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`

// publishedRootsSQL lists, for each planned table, what the publication
// names: the root of a partition tree (13+, published via the root) or the
// table itself.
const publishedRootsSQL = `WITH RECURSIVE t AS (
	SELECT c.oid, c.oid AS root FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
	UNION
	SELECT t.oid, h.inhparent FROM t JOIN pg_inherits h ON h.inhrelid = t.root JOIN pg_class p ON p.oid = h.inhparent AND p.relkind = 'p'
)
SELECT DISTINCT format('%I.%I', n.nspname, c.relname) FROM t JOIN pg_class c ON c.oid = t.root JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent AND p.relkind = 'p' WHERE h.inhrelid = t.root)
ORDER BY 1`

// existingTablesSQL names the tables of a list that exist: one dropped
// since the plan is left out of the publication (the copy then records
// it as gone), as publishedRootsSQL leaves it out.
const existingTablesSQL = `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY 1`

// createPublication creates the step's publication unless it exists,
// then has the target try to subscribe to it (probeSubscription).
func (d *dbRun) createPublication(ctx context.Context, st plan.Step) (string, error) {
	msg, err := d.publish(ctx, st)
	if err != nil {
		return "", err
	}
	return msg, d.probeSubscription(ctx, st.Params.Publication)
}

// publish creates the database's publication on the source, unless it
// exists: FOR ALL TABLES when nothing is filtered, else FOR TABLE with the
// published tables, via the partition roots on 13+; through aiven_extras
// when the role may not do it itself.
func (d *dbRun) publish(ctx context.Context, st plan.Step) (string, error) {
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	defer src.Close(context.WithoutCancel(ctx))
	name := st.Params.Publication
	var exists bool
	if err := src.QueryRow(ctx, publicationExistsSQL, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return "already exists", nil
	}
	var tables []string
	if !st.Params.AllTables {
		if tables, err = d.publishedTables(ctx, src, st.Params.Tables); err != nil {
			return "", err
		}
	}
	sql := d.publicationSQL(src, name, st.Params.AllTables, tables)
	if _, err := src.Exec(ctx, sql); err != nil {
		if !isPrivilegeError(err) || !hasAivenExtras(ctx, src) {
			return "", fmt.Errorf("create publication %s: %w", name, err)
		}
		if err := aivenPublication(ctx, src, name, st.Params.AllTables, tables); err != nil {
			return "", err
		}
		return "created through aiven_extras", nil
	}
	if st.Params.AllTables {
		return "FOR ALL TABLES", nil
	}
	return "FOR TABLE with " + words.Count(len(tables), "table"), nil
}

// probePublication is the publication the probe subscribes to: one that
// does not exist. CREATE SUBSCRIPTION then connects to the source (what the
// probe checks) and finds no table to check on the target: subscribing to
// the real publication from the bootstrap database always failed on its
// tables ("relation ... does not exist"), and the server logged the failed
// statement, password included (log_min_error_statement = error). From 15
// on, the target logs a WARNING that the publication does not exist, which
// holds no secret.
const probePublication = "pghaul_probe_connection_only"

// probeSubscription has the target try the subscription's connection
// (ProbeSubscription) before any copy. A role that may not create
// subscriptions this way (aiven_extras, no CREATE on the bootstrap
// database) skips the probe: the subscription step reports what is wrong.
func (d *dbRun) probeSubscription(ctx context.Context, _ string) error {
	conninfo := SubscriptionConninfo(d.m.Config.Source.SubscriptionURI(), d.name)
	err := ProbeSubscription(ctx, d.m.Target, conninfo)
	var refused *SubscriptionRefusedError
	if err != nil && !errors.As(err, &refused) && ctx.Err() == nil {
		d.m.Log.Debug("subscription probe skipped", "database", d.name, "error", pg.Describe(err))
		return nil
	}
	return err
}

// SubscriptionRefusedError is a source the target server could not
// connect to with the subscription's connection string.
type SubscriptionRefusedError struct {
	Conninfo, Message string
}

func (e *SubscriptionRefusedError) Error() string {
	msg := fmt.Sprintf("the target server cannot connect to the source for the subscription (%s): %s; set source.uri_from_target to an address and credentials the target server can use",
		dsn.Redact(e.Conninfo), e.Message)
	if ca := dsn.Param(e.Conninfo, "sslrootcert"); ca != "" {
		msg += fmt.Sprintf(" (its sslrootcert %s must be a file on the target server)", ca)
	} else if ca := os.Getenv("PGSSLROOTCERT"); ca != "" {
		msg += fmt.Sprintf(" (the CA in PGSSLROOTCERT, %s, serves pghaul only: name one the target server has with sslrootcert= in source.uri_from_target)", ca)
	}
	return msg
}

// ProbeSubscription has the target create, in a transaction rolled back,
// a subscription with conninfo: CREATE SUBSCRIPTION connects to the
// source, so an address the target cannot reach (a source.uri on
// localhost, a firewall), credentials or a CA it lacks fail here, with a
// SubscriptionRefusedError. The probe subscribes to a publication that
// does not exist (probePublication): the connection is all it checks, and
// nothing fails, and is logged with its text, for lack of tables. Other
// errors (the role may not create subscriptions) are returned as they are.
func ProbeSubscription(ctx context.Context, target *pg.Endpoint, conninfo string) error {
	dst, err := target.Connect(ctx, "", pg.Options{})
	if err != nil {
		return err
	}
	defer target.Release(ctx, dst) // rolled back: as it was opened
	tx, err := dst.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := quietErrors(ctx, tx, "SET LOCAL"); err != nil {
		return err
	}
	// The privilege first, with no secret in the statement: a role that
	// may not subscribe gets an ERROR the server logs with its statement,
	// and only a superuser can turn that logging off. connect = false
	// dials nothing; the password is a dummy that non-superusers' conninfo
	// must hold from 16.
	if err := subscribePrivilege(ctx, tx); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, fmt.Sprintf("CREATE SUBSCRIPTION pghaul_probe CONNECTION %s PUBLICATION %s WITH (connect = true, enabled = false, create_slot = false, slot_name = NONE, copy_data = false)",
		literal(conninfo), ident(probePublication)))
	var pge *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &pge) && strings.HasPrefix(pge.Code, "08"):
		return &SubscriptionRefusedError{Conninfo: conninfo, Message: redactIn(pge.Message, conninfo)}
	}
	return err
}

// subscribePrivilege creates, in tx (to be rolled back), a subscription
// that dials nothing: an error says the role may not create subscriptions.
// The statement holds no secret (the server logs a failed one with its
// text); the password is a dummy that non-superusers' conninfo must hold
// from 16.
func subscribePrivilege(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "CREATE SUBSCRIPTION pghaul_probe_privilege CONNECTION 'dbname=pghaul_probe password=none' PUBLICATION "+ident(probePublication)+" WITH (connect = false)")
	return err
}

func (d *dbRun) publishedTables(ctx context.Context, src *pgx.Conn, refs []plan.TableRef) ([]string, error) {
	schemas, names := splitRefs(refs)
	if pg.ServerMajor(src) < 13 {
		// 12 publishes leaf partitions themselves.
		return queryStrings(ctx, src, existingTablesSQL, schemas, names)
	}
	return queryStrings(ctx, src, publishedRootsSQL, schemas, names)
}

func (d *dbRun) publicationSQL(src *pgx.Conn, name string, all bool, tables []string) string {
	sql := "CREATE PUBLICATION " + ident(name)
	switch {
	case all:
		sql += " FOR ALL TABLES"
	case len(tables) > 0:
		sql += " FOR TABLE " + strings.Join(tables, ", ")
	}
	if pg.ServerMajor(src) >= 13 {
		sql += " WITH (publish_via_partition_root = true)"
	}
	return sql
}

// hasAivenExtras reports aiven_extras' functions in the connection's database.
func hasAivenExtras(ctx context.Context, conn *pgx.Conn) bool {
	var ok bool
	_ = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'aiven_extras' AND p.proname IN ('pg_create_publication', 'pg_create_subscription'))`).Scan(&ok)
	return ok
}

func aivenPublication(ctx context.Context, src *pgx.Conn, name string, all bool, tables []string) error {
	const publish = "INSERT,UPDATE,DELETE,TRUNCATE"
	var err error
	if all {
		_, err = src.Exec(ctx, "SELECT aiven_extras.pg_create_publication_for_all_tables($1, $2)", name, publish)
	} else {
		_, err = src.Exec(ctx, "SELECT aiven_extras.pg_create_publication($1, $2, VARIADIC $3::text[])", name, publish, tables)
	}
	if err != nil {
		return fmt.Errorf("create publication %s through aiven_extras: %w", name, err)
	}
	return nil
}

func isPrivilegeError(err error) bool { return pg.HasCode(err, pg.InsufficientPrivilege) }

const slotExistsSQL = `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`

// createSlot creates the database's logical slot. With initial_copy
// snapshot it does so on a replication connection that exports the slot's
// snapshot, which the schema dump and the copy read under, so that every
// change after it arrives through the slot exactly once; the connection
// sends nothing else until the copy ends. A slot of an interrupted earlier
// run cannot export its snapshot again, so it is dropped first.
func (d *dbRun) createSlot(ctx context.Context, st plan.Step) (string, error) {
	slot := st.Params.Slot
	if !d.snapshotMode() {
		if err := d.publishNew(ctx); err != nil {
			return "", err
		}
		return d.createPlainSlot(ctx, slot)
	}
	d.releaseSnapshot()
	if err := d.dropSubscriptionAndSlot(ctx, slot); err != nil {
		return "", err
	}
	if err := d.publishNew(ctx); err != nil {
		return "", err
	}
	conn, err := d.m.Source.ConnectRaw(ctx, d.name, pg.Options{Settings: map[string]string{"replication": "database"}})
	if err != nil {
		return "", err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return "", fmt.Errorf("create slot %s: %w", slot, err)
	}
	d.snap = &snapshotHolder{id: res.SnapshotName, close: func() { conn.Close(context.Background()) }}
	return fmt.Sprintf("slot %s at %s, snapshot %s", slot, res.ConsistentPoint, res.SnapshotName), nil
}

// publishedNamesSQL lists the tables publication $1 carries, quoted, each
// with an empty column list (columnsBy's form; publishNew needs the names).
const publishedNamesSQL = `SELECT format('%I.%I', p.schemaname, p.tablename), '' FROM pg_publication_tables p WHERE p.pubname = $1`

// publishNew adds to the database's FOR TABLE publication the tables
// the filters select that it does not carry: created after the plan, which
// listed the tables to publish. It runs before the slot is made: the slot
// then decodes their changes from its start, and its snapshot holds their
// rows. An unlogged table cannot be published; the copy refuses it. A
// publication the role may not change (aiven_extras made it) is left as
// it is: the copy then stops, naming the tables.
func (d *dbRun) publishNew(ctx context.Context) error {
	pub, ok := d.step(plan.StepCreatePublication)
	if !ok || pub.Params.AllTables {
		return nil
	}
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	name := pub.Params.Publication
	published, err := columnsBy(ctx, src, publishedNamesSQL, name)
	if err != nil {
		return fmt.Errorf("read published tables: %w", err)
	}
	tables, err := d.unpublished(ctx, src, published)
	if err != nil {
		return fmt.Errorf("read the source's tables: %w", err)
	}
	var refs []plan.TableRef
	for _, t := range tables {
		if t.Persistence == "p" {
			refs = append(refs, t.Ref())
		}
	}
	if len(refs) == 0 {
		return nil
	}
	names, err := d.publishedTables(ctx, src, refs)
	if err != nil {
		return err
	}
	_, err = src.Exec(ctx, "ALTER PUBLICATION "+ident(name)+" ADD TABLE "+strings.Join(names, ", "))
	switch {
	case isPrivilegeError(err):
		return nil
	case err != nil:
		return fmt.Errorf("add the tables created after the plan to publication %s: %w", name, err)
	}
	added := make([]string, len(refs))
	for i, r := range refs {
		added[i] = r.String()
	}
	d.m.emit(Notice{Message: fmt.Sprintf("%s: publication %s now carries %s created on the source after the plan: %s", d.name, name, words.Count(len(added), "table"), words.Some(added, 5))})
	return nil
}

// snapshotMode reports initial_copy: snapshot (pghaul copies under the
// slot's snapshot) rather than the subscription copying.
func (d *dbRun) snapshotMode() bool {
	st, ok := d.step(plan.StepCreateSubscription)
	return !ok || !st.Params.CopyData
}

func (d *dbRun) createPlainSlot(ctx context.Context, slot string) (string, error) {
	src, err := d.m.Source.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	defer src.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := src.QueryRow(ctx, slotExistsSQL, slot).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return "already exists", nil
	}
	if _, err := src.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot); err != nil {
		return "", fmt.Errorf("create slot %s: %w", slot, err)
	}
	return "slot " + slot, nil
}

// dropSubscriptionAndSlot removes this database's subscription (target)
// and slot (source) by their exact names, when an interrupted copy must
// start over.
func (d *dbRun) dropSubscriptionAndSlot(ctx context.Context, slot string) error {
	sub := d.m.State.Plan.DatabaseNames(d.name).Subscription
	dropped := false
	if sub != "" {
		ok, err := d.dropSubscription(ctx, sub)
		if err != nil {
			return err
		}
		dropped = ok
	}
	ok, err := d.dropSlot(ctx, slot)
	if err != nil {
		return err
	}
	if ok || dropped {
		d.m.emit(Notice{Message: fmt.Sprintf("%s: a snapshot cannot be resumed: dropped the earlier slot %s and starting the database's copy over", d.name, slot)})
	}
	return nil
}

const subscriptionExistsSQL = `SELECT EXISTS (SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE s.subname = $1 AND d.datname = current_database())`

// dropSubscription disables, detaches and drops a subscription, leaving
// its slot to dropSlot (the target may not reach the source to drop it).
func (d *dbRun) dropSubscription(ctx context.Context, sub string) (bool, error) {
	return DropSubscription(ctx, d.m.Target, d.name, sub)
}

// DropSubscription drops subscription sub of target database db when it
// exists (through aiven_extras when the role may not), reporting whether
// it did.
func DropSubscription(ctx context.Context, target *pg.Endpoint, db, sub string) (bool, error) {
	dst, err := target.Connect(ctx, db, pg.Options{})
	if err != nil {
		if missingDatabase(err) {
			return false, nil // the database is not there yet: nor its subscription
		}
		return false, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := dst.QueryRow(ctx, subscriptionExistsSQL, sub).Scan(&exists); err != nil {
		return false, err
	}
	if !exists {
		return false, nil
	}
	id := ident(sub)
	for _, sql := range []string{"ALTER SUBSCRIPTION " + id + " DISABLE", "ALTER SUBSCRIPTION " + id + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + id} {
		if _, err := dst.Exec(ctx, sql); err != nil {
			if isPrivilegeError(err) && hasAivenExtras(ctx, dst) {
				_, err = dst.Exec(ctx, "SELECT aiven_extras.pg_drop_subscription($1)", sub)
				if err != nil {
					return false, fmt.Errorf("drop subscription %s through aiven_extras: %w", sub, err)
				}
				return true, nil
			}
			return false, fmt.Errorf("%s: %w", sql, err)
		}
	}
	return true, nil
}

const dropSlotSQL = `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`

// dropSlot drops the slot, retrying while a walsender still holds it.
func (d *dbRun) dropSlot(ctx context.Context, slot string) (bool, error) {
	return DropSlot(ctx, d.m.Source, d.name, slot)
}

// DropSlot drops the source's slot when it exists, retrying while a
// walsender still holds it; db is any database of the source.
func DropSlot(ctx context.Context, source *pg.Endpoint, db, slot string) (bool, error) {
	src, err := source.Connect(ctx, db, pg.Options{})
	if err != nil {
		return false, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	return dropSlotOn(ctx, src, slot)
}

// dropSlotOn drops the slot on src, a session in any database of the
// source, retrying while a walsender still holds it.
func dropSlotOn(ctx context.Context, src *pgx.Conn, slot string) (bool, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		tag, err := src.Exec(ctx, dropSlotSQL, slot)
		if pg.HasCode(err, pg.ObjectInUse) && time.Now().Before(deadline) {
			select { // still active: its walsender has not noticed yet
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return false, fmt.Errorf("drop slot %s: %w", slot, err)
		}
		return tag.RowsAffected() > 0, nil
	}
}

// createSubscription subscribes the target database to the publication
// over the existing slot (create_slot = false: the slot was made with the
// snapshot), dialing the source at uri_from_target.
func (d *dbRun) createSubscription(ctx context.Context, st plan.Step) (string, error) {
	d.releaseSnapshot() // the slot must be free for the subscription's walsender
	dst, err := d.m.Target.Connect(ctx, d.name, pg.Options{})
	if err != nil {
		return "", err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	p := st.Params
	var exists bool
	if err := dst.QueryRow(ctx, subscriptionExistsSQL, p.Subscription).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		more, err := d.republish(ctx, dst, p)
		return "already exists" + more, err
	}
	conninfo := SubscriptionConninfo(d.m.Config.Source.SubscriptionURI(), d.name)
	if err := quietErrors(ctx, dst, "SET"); err != nil { // the session is closed after
		return "", err
	}
	sql := fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (create_slot = false, slot_name = %s, copy_data = %t)",
		ident(p.Subscription), literal(conninfo), ident(p.Publication), literal(p.Slot), p.CopyData)
	if _, err := dst.Exec(ctx, sql); err != nil {
		if !isPrivilegeError(err) || !hasAivenExtras(ctx, dst) {
			return "", fmt.Errorf("create subscription %s: %s", p.Subscription, redactIn(pg.Describe(err), conninfo))
		}
		if _, err := dst.Exec(ctx, "SELECT aiven_extras.pg_create_subscription($1, $2, $3, $4, false, $5)",
			p.Subscription, conninfo, p.Publication, p.Slot, p.CopyData); err != nil {
			return "", fmt.Errorf("create subscription %s through aiven_extras: %s", p.Subscription, redactIn(pg.Describe(err), conninfo))
		}
		return "created through aiven_extras", nil
	}
	crashPoint("subscribed:" + d.name)
	more, err := d.republish(ctx, dst, p)
	return fmt.Sprintf("subscribed to %s (copy_data = %t)%s", dsn.Redact(conninfo), p.CopyData, more), err
}

// quietErrors keeps the server from logging the statements of the session
// (set is "SET") or transaction ("SET LOCAL") that fail: CREATE
// SUBSCRIPTION's text holds the source's password. Only a superuser may
// change log_min_error_statement; for other roles the server's setting
// stays, and a failed CREATE SUBSCRIPTION is logged with its text.
func quietErrors(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, set string) error {
	var super string
	if err := conn.QueryRow(ctx, "SELECT current_setting('is_superuser')").Scan(&super); err != nil || super != "on" {
		return err
	}
	_, err := conn.Exec(ctx, set+" log_min_error_statement = panic")
	return err
}

// SubscriptionConninfo is the connection string the target's subscription
// to database db ("": the one the URI names) dials the source with. A password pghaul's own sessions
// take from PGPASSWORD or a passfile is written into it: the target's
// worker cannot read pghaul's environment, and would otherwise fail to
// authenticate where pghaul succeeds.
func SubscriptionConninfo(uri, db string) string {
	conninfo := uri
	if db != "" {
		conninfo = dsn.WithDatabase(uri, db)
	}
	if dsn.HasPassword(conninfo) {
		return conninfo
	}
	return dsn.WithPassword(conninfo, pg.Password(conninfo))
}

// redactIn removes a connection string from a server message.
func redactIn(msg, conninfo string) string {
	return strings.ReplaceAll(msg, conninfo, dsn.Redact(conninfo))
}
