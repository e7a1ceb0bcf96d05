package apply

import (
	"context"
	"fmt"

	"github.com/pgferry/pgferry/internal/pg"
	"github.com/pgferry/pgferry/plan"
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
	for _, db := range sortedKeys(names) {
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
	hasSub, err := subscriptionExists(ctx, dst, db, n.Subscription)
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
	return acts, nil
}

func subscriptionExists(ctx context.Context, dst *pg.Endpoint, db, sub string) (bool, error) {
	conn, err := dst.Connect(ctx, db, pg.Options{ReadOnly: true})
	if err != nil {
		if missingDatabase(err) {
			return false, nil
		}
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, subscriptionExistsSQL, sub).Scan(&exists)
	return exists, err
}

// missingDatabase reports a connection refused because the database does
// not exist.
func missingDatabase(err error) bool { return pg.HasCode(err, pg.InvalidCatalogName) }
