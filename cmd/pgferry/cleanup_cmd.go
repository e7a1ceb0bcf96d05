package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/pgferry/pgferry/apply"
	"github.com/pgferry/pgferry/config"
	"github.com/pgferry/pgferry/internal/pg"
	"github.com/pgferry/pgferry/plan"
)

// CleanupCmd drops this migration's replication objects on both sides.
type CleanupCmd struct {
	Config string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	DryRun bool   `help:"Only list what would be dropped."`
}

const sourceDatabasesSQL = `SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1`

// Run drops (or lists) the subscription, publication and slot of every
// selected database, by the names this migration computes.
func (c *CleanupCmd) Run(ctx context.Context, stdout io.Writer, env Env, log *slog.Logger) error {
	cfg, src, dst, err := loadEndpoints(c.Config, env)
	if err != nil {
		return err
	}
	defer closeIdle(ctx, src, dst)
	names, err := migrationNames(ctx, cfg, src, dst)
	if err != nil {
		return err
	}
	acts, err := apply.Cleanup(ctx, src, dst, names, c.DryRun)
	verb := "dropped"
	if c.DryRun {
		verb = "would drop"
	}
	for _, a := range acts {
		fmt.Fprintf(stdout, "%s %s\n", verb, a)
	}
	if err != nil {
		return err
	}
	if len(acts) == 0 {
		fmt.Fprintln(stdout, "nothing to clean up: no replication object of this migration exists")
	}
	return nil
}

// migrationNames computes the replication object names of every database
// the file selects on the source.
func migrationNames(ctx context.Context, cfg *config.Config, src, dst *pg.Endpoint) (map[string]plan.ReplicationNames, error) {
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
