package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	"github.com/pgferry/pgferry/apply"
	"github.com/pgferry/pgferry/config"
	"github.com/pgferry/pgferry/internal/pg"
	"github.com/pgferry/pgferry/plan"
)

// VerifyCmd compares the copied tables on both sides.
type VerifyCmd struct {
	Config    string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	Checksums bool   `help:"Also compare an order-independent hash of every table's rows."`
}

// Run prints one row per table; exit 1 when any differs.
func (v *VerifyCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, src, dst, err := loadEndpoints(v.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	tables, err := verifiedTables(ctx, cfg, src, dst, log)
	if err != nil {
		return err
	}
	checks, err := apply.Verify(ctx, src, dst, tables, v.Checksums)
	if err != nil {
		return err
	}
	header := []string{"DATABASE", "TABLE", "SOURCE ROWS", "TARGET ROWS"}
	if v.Checksums {
		header = append(header, "SOURCE HASH", "TARGET HASH")
	}
	header = append(header, "RESULT")
	var rows [][]string
	bad := 0
	for _, c := range checks {
		row := []string{c.Database, c.Table.String(), strconv.FormatInt(c.SourceRows, 10), strconv.FormatInt(c.TargetRows, 10)}
		if v.Checksums {
			row = append(row, c.SourceHash, c.TargetHash)
		}
		result := "equal"
		if !c.Equal() {
			bad++
			result = "DIFFERENT"
			if c.Err != "" {
				result = "ERROR: " + c.Err
			}
		}
		rows = append(rows, append(row, result))
	}
	if err := plan.RenderTable(stdout, header, rows); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d of %d tables equal\n", len(checks)-bad, len(checks))
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d tables differ", bad, len(checks))}
	}
	return nil
}

// verifiedTables are the tables the migration moves rows of, by database:
// those of the state directory's plan (what apply carried out) when there
// is one, else a fresh plan's. A state written before the subscription
// step listed the tables it copies (initial_copy: subscription) lacks
// them: those databases take a fresh plan's list.
func verifiedTables(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (map[string][]plan.TableRef, error) {
	st, err := (&apply.FileStore{Dir: cfg.State}).Load()
	if err != nil && !errors.Is(err, apply.ErrNoState) {
		return nil, err
	}
	var tables map[string][]plan.TableRef
	var unlisted []string
	if err == nil {
		if frozen := slices.Sorted(maps.Keys(st.Freezes)); len(frozen) > 0 {
			return nil, fmt.Errorf("source database %s is frozen by the cut-over, which verified it before switching; pgferry cleanup -c FILE --unfreeze lifts the freeze to verify again", frozen[0])
		}
		tables = copiedTables(&st.Plan)
		unlisted = unlistedCopies(&st.Plan)
		if len(unlisted) == 0 {
			return tables, nil
		}
	}
	pl, err := buildPlan(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, err
	}
	fresh := copiedTables(&pl.plan)
	if tables == nil {
		return fresh, nil
	}
	for _, db := range unlisted {
		tables[db] = fresh[db]
	}
	return tables, nil
}

// copiedTables are the tables whose rows the plan moves (its copy, or the
// subscription's with initial_copy: subscription), by database.
func copiedTables(p *plan.Plan) map[string][]plan.TableRef {
	out := map[string][]plan.TableRef{}
	for _, st := range p.Steps {
		if st.Kind == plan.StepCopyData || st.Kind == plan.StepCreateSubscription && st.Params.CopyData {
			out[st.Params.Database] = append(out[st.Params.Database], st.Params.Tables...)
		}
	}
	return out
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
