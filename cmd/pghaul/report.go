package main

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/view"
	"github.com/pghaul/pghaul/state"
)

// eventLogger renders apply's events as log lines on stderr.
func eventLogger(log *slog.Logger) func(apply.Event) {
	return func(e apply.Event) {
		switch e := e.(type) {
		case apply.StepStarted:
			log.Info("step started", "step", e.Step.ID, "detail", e.Step.Detail)
		case apply.StepDone:
			log.Info("step done", "step", e.Step.ID, "took", e.Took.Round(time.Millisecond), "result", e.Message)
		case apply.StepSkipped:
			log.Debug("step skipped", "step", e.Step.ID, "reason", e.Reason)
		case apply.StepFailed:
			log.Error("step failed", "step", e.Step.ID, "error", e.Err)
		case apply.TableCopied:
			log.Info("table copied", "database", e.Database, "table", e.Table.String(), "rows", e.Rows,
				"bytes", config.ByteSize(e.Bytes).String(), "took", e.Took.Round(time.Millisecond), "format", e.Format)
		case apply.IndexesBuilt:
			log.Info("indexes built", "database", e.Database, "table", e.Table.String(), "indexes", e.Count, "took", e.Took.Round(time.Millisecond))
		case apply.CopyProgress:
			active := make([]string, 0, len(e.Active))
			for t, b := range e.Active {
				active = append(active, fmt.Sprintf("%s %s", t, config.ByteSize(b)))
			}
			slices.Sort(active)
			log.Info("copying", "database", e.Database, "tables", fmt.Sprintf("%d/%d", e.Done, e.Total),
				"copied", config.ByteSize(e.Bytes).String(), "active", active)
		case apply.Notice:
			log.Warn(e.Message)
		case apply.LagSample:
			log.Info("replication lag", "database", e.Database, "lag_bytes", e.Lag, "max", e.Max, "apply_worker", e.Running)
		case apply.SyncSample:
			log.Info("subscription copying", "database", e.Database, "tables", e.Tables, "not_ready", e.Pending)
		}
	}
}

// result prints apply's result (view.ApplyResult) in the chosen format.
func (c *ApplyCmd) result(w io.Writer, st *state.State, passwords state.Passwords, took time.Duration, copied int64) error {
	return view.Render(w, view.NewApplyResult(st, passwords, c.ShowPasswords, took, copied), view.Format(c.Format), c.width)
}
