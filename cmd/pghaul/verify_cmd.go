package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/internal/session"
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
	objects, err := session.VerifiedObjects(ctx, cfg, src, dst, log)
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
