package view

import (
	"fmt"
	"io"
	"strings"

	"github.com/pghaul/pghaul/config"
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

// Table writes the summary line, the databases table, then a line per
// database with a message and per frozen source database.
func (s Status) Table(w io.Writer, width int) error {
	var rows [][]string
	for _, p := range s.Databases {
		rows = append(rows, []string{p.Database, p.Method, p.Status, p.Step, replication(p), lag(p), wal(p)})
	}
	fmt.Fprintf(w, "%d of %d steps done; state in %s\n", s.StepsDone, s.Steps, s.StateDir)
	if err := table.Write(w, width, []string{"DATABASE", "METHOD", "STATUS", "STEP", "REPLICATION", "LAG", "WAL RETAINED"}, rows); err != nil {
		return err
	}
	for _, p := range s.Databases {
		if p.Message != "" {
			fmt.Fprintf(w, "%s: %s\n", p.Database, p.Message)
		}
	}
	for _, p := range s.Databases {
		if p.Copy != "" {
			fmt.Fprintf(w, "%s: %s\n", p.Database, p.Copy)
		}
	}
	for _, p := range s.Databases {
		if p.Frozen != "" {
			fmt.Fprintf(w, "source database %s: %s\n", p.Database, p.Frozen)
		}
	}
	return nil
}

// replication is the subscription's state: enabled or not, its apply
// worker, the tables it synced.
func replication(p inspect.Progress) string {
	s := p.Subscription
	if p.Worker {
		s += ", worker running"
	}
	if p.TablesTotal > 0 {
		s += fmt.Sprintf(", %d/%d tables synced", p.TablesReady, p.TablesTotal)
	}
	return s
}

// lag is the unconfirmed WAL, with the time to catch up at the recent rate.
func lag(p inspect.Progress) string {
	if p.LagBytes == nil {
		return ""
	}
	s := config.ByteSize(*p.LagBytes).String()
	if p.ETA != "" {
		s += " (" + p.ETA + ")"
	}
	return s
}

// wal is what the slot holds back, and its wal_status.
func wal(p inspect.Progress) string {
	if p.WALRetained == nil {
		return p.WALStatus
	}
	return strings.TrimSpace(config.ByteSize(*p.WALRetained).String() + " " + p.WALStatus)
}
