package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/session"
	"github.com/pghaul/pghaul/internal/view"
)

// VerifyCmd compares the copied tables on both sides.
type VerifyCmd struct {
	Config     string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	CountsOnly bool   `help:"Compare row counts only (quick), not an order-independent hash of every row."`
	Format     string `enum:"table,json" default:"table" help:"Output format: table or json."`
}

// Run prints one row per table, materialized view, and database's
// sequences and large objects; exit 1 when any differs.
func (cmd *VerifyCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, src, dst, err := loadEndpoints(cmd.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	objects, err := session.VerifiedObjects(ctx, cfg, src, dst, log)
	if err != nil {
		return err
	}
	checks, err := inspect.Verify(ctx, src, dst, objects, !cmd.CountsOnly)
	if err != nil {
		return err
	}
	v := view.NewVerify(checks)
	if err := view.Render(stdout, v, view.Format(cmd.Format), outputWidth(stdout, env)); err != nil {
		return err
	}
	if v.Different > 0 {
		tables, different := v.Tables()
		return &exitError{code: 1, err: fmt.Errorf("%d of %d tables differ, %d checks in all", different, tables, v.Different)}
	}
	return nil
}
