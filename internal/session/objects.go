package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// sourceDatabasesSQL lists the source databases a migration may select.
const sourceDatabasesSQL = `SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1`

// Names computes the replication object names of every database
// the file selects on the source.
func Names(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint) (map[string]plan.ReplicationNames, error) {
	dstID, err := systemID(ctx, dst)
	if err != nil {
		return nil, err
	}
	conn, err := src.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, sourceDatabasesSQL)
	if err != nil {
		return nil, err
	}
	out := map[string]plan.ReplicationNames{}
	var db string
	for rows.Next() {
		if err := rows.Scan(&db); err != nil {
			return nil, err
		}
		if cfg.Databases.Selects(db) {
			out[db] = plan.NamesFor(db, dstID)
		}
	}
	return out, errors.Join(rows.Err())
}

// VerifiedObjects are the objects verify compares, by database: the
// tables the migration moves rows of (verifiedTables) and their
// databases' materialized views, sequences and large objects.
func VerifiedObjects(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (map[string]inspect.Objects, error) {
	tables, dbs, err := verifiedTables(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, err
	}
	out := map[string]inspect.Objects{}
	for _, d := range dbs {
		if d.Tables > 0 && len(tables[d.Name]) == 0 {
			// Comparing nothing would say "0 of 0 tables equal".
			return nil, fmt.Errorf("database %s: the migration lists none of the %d tables it copies, so there is nothing to compare; run apply first (or remove the state directory %s to verify against a fresh plan)", d.Name, d.Tables, cfg.State)
		}
		out[d.Name] = inspect.Objects{Tables: tables[d.Name], MatViews: d.MatViews, Sequences: true, LargeObjects: true}
	}
	if len(out) == 0 {
		return nil, errors.New("the migration selects no database: there is nothing to verify")
	}
	return out, nil
}

// verifiedTables are the tables the migration moves rows of, by database:
// those of the state directory's plan (what apply carried out) when there
// is one, with those of a fresh plan it does not list (and its databases),
// else a fresh plan's. A state written before the subscription
// step listed the tables it copies (initial_copy: subscription) lacks
// them: those databases take a fresh plan's list.
func verifiedTables(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (map[string][]plan.TableRef, []plan.DatabasePlan, error) {
	st, err := (&state.FileStore{Dir: cfg.State}).Load()
	if err != nil && !errors.Is(err, state.ErrNoState) {
		return nil, nil, err
	}
	var tables map[string][]plan.TableRef
	var unlisted []string
	if err == nil {
		if frozen := slices.Sorted(maps.Keys(st.Freezes)); len(frozen) > 0 {
			return nil, nil, fmt.Errorf("source database %s is frozen by the cut-over, which verified it before switching; pghaul cleanup -c FILE --unfreeze lifts the freeze to verify again", frozen[0])
		}
		tables = st.Plan.CopiedTables()
		unlisted = unlistedCopies(&st.Plan)
	}
	pl, err := Plan(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, nil, err
	}
	fresh := pl.Plan.CopiedTables()
	if tables == nil {
		return fresh, pl.Plan.Databases, nil
	}
	for _, db := range unlisted {
		tables[db] = fresh[db]
	}
	// A planned table apply found dropped on the source after the plan
	// (state's Gone) was not migrated: not compared while the source
	// still lacks it.
	for db, ds := range st.Databases {
		if ds == nil {
			continue
		}
		for _, r := range ds.Gone {
			if slices.Contains(tables[db], r) && !slices.Contains(fresh[db], r) {
				tables[db] = slices.DeleteFunc(tables[db], func(t plan.TableRef) bool { return t == r })
				log.Info("not compared: dropped on the source after the plan", "database", db, "table", r.String())
			}
		}
	}
	// A table the filters select that the source holds now and the stored
	// plan does not list was created since: the migration may not have
	// moved its rows (a replication copies no new table), so it is
	// compared too, and differs when the target lacks it.
	for db, refs := range tables {
		for _, r := range fresh[db] {
			if !slices.Contains(refs, r) {
				tables[db] = append(tables[db], r)
			}
		}
	}
	// So is a database the filters select that was created since: the
	// target lacks it, and each of its objects differs.
	dbs := slices.Clone(st.Plan.Databases)
	for _, d := range pl.Plan.Databases {
		if !slices.ContainsFunc(dbs, func(o plan.DatabasePlan) bool { return o.Name == d.Name }) {
			dbs = append(dbs, d)
			tables[d.Name] = fresh[d.Name]
		}
	}
	return tables, dbs, nil
}

// unlistedCopies are the databases whose subscription copies tables its
// step does not list (a plan written before it did).
func unlistedCopies(p *plan.Plan) []string {
	var out []string
	for _, st := range p.Steps {
		if st.Kind == plan.StepCreateSubscription && st.Params.CopyData && len(st.Params.Tables) == 0 {
			for _, d := range p.Databases {
				if d.Name == st.Params.Database && d.Tables > 0 {
					out = append(out, d.Name)
				}
			}
		}
	}
	return out
}
