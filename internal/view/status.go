package view

import (
	"fmt"
	"io"
	"strconv"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/table"
)

// Status is what status prints: steps done, and a row per database with
// its live replication state.
type Status struct {
	StepsDone int                `json:"steps_done"`
	Steps     int                `json:"steps"`
	StateDir  string             `json:"-"`
	Databases []inspect.Progress `json:"databases"`
}

// Table writes the summary line, the databases table and a line per
// frozen source database.
func (s Status) Table(w io.Writer) error {
	var rows [][]string
	for _, p := range s.Databases {
		rows = append(rows, []string{p.Database, p.Method, p.Status, p.Step, p.Subscription + worker(p), tables(p),
			optBytes(p.LagBytes), p.ETA, optBytes(p.WALRetained), p.WALStatus})
	}
	fmt.Fprintf(w, "%d of %d steps done; state in %s\n", s.StepsDone, s.Steps, s.StateDir)
	if err := table.Write(w, []string{"DATABASE", "METHOD", "STATUS", "STEP", "SUBSCRIPTION", "TABLES SYNCED", "LAG", "ETA", "WAL RETAINED", "WAL STATUS"}, rows); err != nil {
		return err
	}
	for _, p := range s.Databases {
		if p.Frozen != "" {
			fmt.Fprintf(w, "source database %s: %s\n", p.Database, p.Frozen)
		}
	}
	return nil
}

func worker(p inspect.Progress) string {
	if p.Worker {
		return ", worker running"
	}
	return ""
}

func tables(p inspect.Progress) string {
	if p.TablesTotal == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", p.TablesReady, p.TablesTotal)
}

func optBytes(n *int64) string {
	if n == nil {
		return ""
	}
	return strconv.FormatInt(*n, 10) + " B"
}
