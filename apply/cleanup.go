package apply

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// CleanupAction is one object cleanup dropped (or would drop).
type CleanupAction struct {
	Side, Database, Kind, Name string
	// Note says why the object was left after all.
	Note string
}

func (a CleanupAction) String() string {
	s := fmt.Sprintf("%s %s in %s database %s", a.Kind, a.Name, a.Side, a.Database)
	if a.Note != "" {
		s += " (" + a.Note + ")"
	}
	return s
}

const cleanupFindSQL = `SELECT (SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)),
	(SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2))`

// Cleanup drops this migration's replication objects of each database, by
// their exact computed names (never a pattern): the target's subscription,
// then the source's publication and slot. With dryRun it only lists them.
// It is safe to run twice.
func Cleanup(ctx context.Context, src, dst *pg.Endpoint, names map[string]plan.ReplicationNames, dryRun bool) ([]CleanupAction, error) {
	var done []CleanupAction
	for _, db := range slices.Sorted(maps.Keys(names)) {
		n := names[db]
		acts, err := cleanupDatabase(ctx, src, dst, db, n, dryRun)
		done = append(done, acts...)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func cleanupDatabase(ctx context.Context, src, dst *pg.Endpoint, db string, n plan.ReplicationNames, dryRun bool) ([]CleanupAction, error) {
	var acts []CleanupAction
	hasSub, syncPattern, err := subscriptionOn(ctx, dst, db, n.Subscription)
	if err != nil {
		return nil, err
	}
	if hasSub {
		acts = append(acts, CleanupAction{Side: "target", Database: db, Kind: "subscription", Name: n.Subscription})
		if !dryRun {
			if _, err := DropSubscription(ctx, dst, db, n.Subscription); err != nil {
				return acts, err
			}
		}
	}
	conn, err := src.Connect(ctx, db, pg.Options{})
	if err != nil {
		if missingDatabase(err) {
			return acts, nil
		}
		return acts, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var hasPub, hasSlot bool
	if err := conn.QueryRow(ctx, cleanupFindSQL, n.Publication, n.Slot).Scan(&hasPub, &hasSlot); err != nil {
		return acts, err
	}
	if hasPub {
		act := CleanupAction{Side: "source", Database: db, Kind: "publication", Name: n.Publication}
		if !dryRun {
			_, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident(n.Publication))
			switch {
			case isPrivilegeError(err):
				// Made through aiven_extras, it belongs to another role;
				// without a slot or subscriber it costs nothing.
				act.Note = "not dropped: it belongs to another role; drop it as its owner"
			case err != nil:
				return append(acts, act), fmt.Errorf("drop publication %s: %w", n.Publication, err)
			}
		}
		acts = append(acts, act)
	}
	if hasSlot {
		acts = append(acts, CleanupAction{Side: "source", Database: db, Kind: "slot", Name: n.Slot})
		if !dryRun {
			if _, err := DropSlot(ctx, src, db, n.Slot); err != nil {
				return acts, err
			}
		}
	}
	if syncPattern != "" {
		slots, err := queryStrings(ctx, conn, "SELECT slot_name FROM pg_replication_slots WHERE slot_name ~ $1 AND NOT active ORDER BY 1", syncPattern)
		if err != nil {
			return acts, err
		}
		for _, slot := range slots {
			acts = append(acts, CleanupAction{Side: "source", Database: db, Kind: "slot", Name: slot, Note: "a table synchronisation's, left by the subscription"})
			if !dryRun {
				if _, err := dropSlotOn(ctx, conn, slot); err != nil {
					return acts, err
				}
			}
		}
	}
	return acts, nil
}

// subscriptionOn reports whether subscription sub exists in target
// database db and, if so, the pattern of the slots a 14+ target's table
// synchronisation makes for it on the source (pg_<suboid>_sync_<relid>_<the
// target's system identifier>): dropping the subscription drops them when
// the target reaches the source, and leaves them holding WAL when it
// cannot. The pattern is "" when the target does not say (before 14 those
// slots are temporary).
func subscriptionOn(ctx context.Context, dst *pg.Endpoint, db, sub string) (exists bool, syncPattern string, err error) {
	conn, err := dst.Connect(ctx, db, pg.Options{ReadOnly: true})
	if err != nil {
		if missingDatabase(err) {
			return false, "", nil
		}
		return false, "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, subscriptionExistsSQL, sub).Scan(&exists); err != nil || !exists {
		return false, "", err
	}
	var oid, sysid string
	if err := conn.QueryRow(ctx, `SELECT s.oid::text, (SELECT system_identifier::text FROM pg_control_system())
		FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE s.subname = $1 AND d.datname = current_database()`, sub).Scan(&oid, &sysid); err != nil {
		return true, "", nil
	}
	return true, "^pg_" + oid + "_sync_[0-9]+_" + sysid + "$", nil
}

// missingDatabase reports a connection refused because the database does
// not exist.
func missingDatabase(err error) bool { return pg.HasCode(err, pg.InvalidCatalogName) }

// orphanSlotsSQL lists the source's pghaul_* logical slots with the WAL
// each retains.
const orphanSlotsSQL = `SELECT slot_name, COALESCE(database, ''), active,
	CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END
FROM pg_replication_slots WHERE slot_type = 'logical' AND starts_with(slot_name, 'pghaul_') ORDER BY 1`

// CleanupOrphans drops the pghaul_* slots on the source that are not
// this migration's (own) and have no walsender: a rebuilt target's, a
// failed run's, whose WAL nothing will ever read. A slot something streams
// from is another migration's at work: it is kept and listed.
func CleanupOrphans(ctx context.Context, src *pg.Endpoint, own map[string]bool, dryRun bool) ([]CleanupAction, error) {
	conn, err := src.Connect(ctx, "", pg.Options{})
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, orphanSlotsSQL)
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	type slot struct {
		name, db string
		active   bool
		retained *int64
	}
	var slots []slot
	var s slot
	if _, err := pgx.ForEachRow(rows, []any{&s.name, &s.db, &s.active, &s.retained}, func() error { slots = append(slots, s); return nil }); err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	var acts []CleanupAction
	for _, s := range slots {
		if own[s.name] {
			continue
		}
		act := CleanupAction{Side: "source", Database: s.db, Kind: "orphan slot", Name: s.name}
		if s.retained != nil {
			act.Note = "retained " + byteString(*s.retained) + " of WAL"
		}
		if s.active {
			act.Note = "not dropped: something streams from it, another migration at work"
		} else if !dryRun {
			if _, err := dropSlotOn(ctx, conn, s.name); err != nil {
				return append(acts, act), err
			}
		}
		acts = append(acts, act)
	}
	return acts, nil
}
