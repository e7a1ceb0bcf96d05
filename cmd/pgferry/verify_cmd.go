package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	p, err := migrationPlan(ctx, cfg, src, dst, log)
	if err != nil {
		return err
	}
	checks, err := apply.Verify(ctx, src, dst, copiedTables(p), v.Checksums)
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

// migrationPlan is the plan of the state directory when there is one (what
// apply carried out), else a fresh plan.
func migrationPlan(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint, log *slog.Logger) (*plan.Plan, error) {
	st, err := (&apply.FileStore{Dir: cfg.State}).Load()
	switch {
	case err == nil:
		return &st.Plan, nil
	case !errors.Is(err, apply.ErrNoState):
		return nil, err
	}
	pl, err := buildPlan(ctx, cfg, src, dst, log)
	if err != nil {
		return nil, err
	}
	return &pl.plan, nil
}

// copiedTables are the tables whose rows the plan moves (its copy, or the
// subscription's initial copy), by database.
func copiedTables(p *plan.Plan) map[string][]plan.TableRef {
	out := map[string][]plan.TableRef{}
	for _, st := range p.Steps {
		if st.Kind == plan.StepCopyData || st.Kind == plan.StepCreateSubscription && st.Params.CopyData {
			out[st.Params.Database] = append(out[st.Params.Database], st.Params.Tables...)
		}
	}
	return out
}
