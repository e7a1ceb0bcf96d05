package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// VerifyCmd compares the copied tables on both sides.
type VerifyCmd struct {
	Config     string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	CountsOnly bool   `help:"Compare row counts only (quick), not an order-independent hash of every row."`
	Format     string `enum:"table,json" default:"table" help:"Output format: table or json."`
}

// Run prints one row per table, materialized view, and database's
// sequences and large objects; exit 1 when any differs.
func (v *VerifyCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, src, dst, err := loadEndpoints(v.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	objects, err := verifiedObjects(ctx, cfg, src, dst, log)
	if err != nil {
		return err
	}
	checks, err := apply.Verify(ctx, src, dst, objects, !v.CountsOnly)
	if err != nil {
		return err
	}
	bad, tables, badTables := 0, 0, 0
	for _, c := range checks {
		if !c.Equal() {
			bad++
		}
		if c.Kind == apply.KindTable {
			tables++
			if !c.Equal() {
				badTables++
			}
		}
	}
	if v.Format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Checks    []apply.TableCheck `json:"checks"`
			Different int                `json:"different"`
		}{checks, bad}); err != nil {
			return err
		}
	} else if err := v.render(stdout, checks, tables, badTables); err != nil {
		return err
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d tables differ, %d checks in all", badTables, tables, bad)}
	}
	return nil
}

func (v *VerifyCmd) render(stdout io.Writer, checks []apply.TableCheck, tables, badTables int) error {
	header := []string{"DATABASE", "OBJECT", "SOURCE", "TARGET", "RESULT"}
	var rows [][]string
	for _, c := range checks {
		result := "equal"
		if !c.Equal() {
			result = "DIFFERENT"
			if c.Err != "" {
				result = "ERROR: " + c.Err
			}
		}
		rows = append(rows, []string{c.Database, c.Name(), side(c.Kind, c.SourceRows, c.SourceHash), side(c.Kind, c.TargetRows, c.TargetHash), result})
	}
	if err := plan.RenderTable(stdout, header, rows); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d of %d tables equal\n", tables-badTables, tables)
	return nil
}

// side is one side of a check: its count and hash.
func side(kind string, n int64, hash string) string {
	noun := map[string]string{apply.KindSequences: "sequence", apply.KindLargeObjects: "object"}[kind]
	if noun == "" {
		noun = "row"
	}
	s := fmt.Sprintf("%d %s", n, noun)
	if n != 1 {
		s += "s"
	}
	if hash != "" {
		s += " " + hash
	}
	return s
}

// verifiedObjects are the objects verify compares, by database: the
// tables the migration moves rows of (verifiedTables) and their
// databases' materialized views, sequences and large objects.
func verifiedObjects(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (map[string]apply.Objects, error) {
	tables, p, err := verifiedTables(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, err
	}
	out := map[string]apply.Objects{}
	for _, d := range p.Databases {
		if d.Tables > 0 && len(tables[d.Name]) == 0 {
			// Comparing nothing would say "0 of 0 tables equal".
			return nil, fmt.Errorf("database %s: the migration lists none of the %d tables it copies, so there is nothing to compare; run apply first (or remove the state directory %s to verify against a fresh plan)", d.Name, d.Tables, cfg.State)
		}
		out[d.Name] = apply.Objects{Tables: tables[d.Name], MatViews: d.MatViews, Sequences: true, LargeObjects: true}
	}
	if len(out) == 0 {
		return nil, errors.New("the migration selects no database: there is nothing to verify")
	}
	return out, nil
}

// verifiedTables are the tables the migration moves rows of, by database:
// those of the state directory's plan (what apply carried out) when there
// is one, else a fresh plan's. A state written before the subscription
// step listed the tables it copies (initial_copy: subscription) lacks
// them: those databases take a fresh plan's list.
func verifiedTables(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (map[string][]plan.TableRef, *plan.Plan, error) {
	st, err := (&apply.FileStore{Dir: cfg.State}).Load()
	if err != nil && !errors.Is(err, apply.ErrNoState) {
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
		if len(unlisted) == 0 {
			return tables, &st.Plan, nil
		}
	}
	pl, err := buildPlan(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, nil, err
	}
	fresh := pl.plan.CopiedTables()
	if tables == nil {
		return fresh, &pl.plan, nil
	}
	for _, db := range unlisted {
		tables[db] = fresh[db]
	}
	return tables, &st.Plan, nil
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
