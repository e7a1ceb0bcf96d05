package view

import (
	"fmt"
	"io"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/table"
	"github.com/pghaul/pghaul/state"
)

// ApplyResult is what apply prints when it ends, as aiven-db-migrate
// reports it: the roles, the databases, and this run's bytes and time.
type ApplyResult struct {
	Roles     []RoleResult     `json:"roles,omitempty"`
	Databases []DatabaseResult `json:"databases"`
	// Run is this run's copy (nil when nothing ran).
	Run *RunSummary `json:"run,omitempty"`
	// ShowPasswords adds the placeholder passwords set on new roles.
	ShowPasswords bool `json:"-"`
}

// RoleResult is one role's row; Password only with ShowPasswords.
type RoleResult struct {
	state.RoleResult
	Password string `json:"password,omitempty"`
}

// DatabaseResult is one database's row.
type DatabaseResult struct {
	Name        string `json:"name"`
	Method      string `json:"method"`
	Status      string `json:"status"`
	CopiedBytes int64  `json:"copied_bytes"`
	Message     string `json:"message,omitempty"`
}

// RunSummary is this run's copy.
type RunSummary struct {
	Took        time.Duration `json:"-"`
	TookSeconds float64       `json:"took_seconds"`
	CopiedBytes int64         `json:"copied_bytes"`
	// TotalBytes is what the migration copied in all its runs.
	TotalBytes int64 `json:"total_copied_bytes"`
}

// NewApplyResult fills the result from the state; took and copied are
// this run's (zero took: no run summary).
func NewApplyResult(st *state.State, passwords state.Passwords, showPasswords bool, took time.Duration, copied int64) ApplyResult {
	r := ApplyResult{ShowPasswords: showPasswords}
	for _, role := range st.Roles {
		row := RoleResult{RoleResult: role}
		if showPasswords {
			row.Password = passwords[role.Name]
		}
		r.Roles = append(r.Roles, row)
	}
	for _, d := range st.Plan.Databases {
		status, msg := st.DatabaseStatus(d.Name)
		var bytes int64
		if ds := st.Databases[d.Name]; ds != nil {
			bytes = ds.Bytes
		}
		r.Databases = append(r.Databases, DatabaseResult{Name: d.Name, Method: string(d.Method), Status: string(status), CopiedBytes: bytes, Message: msg})
	}
	if took > 0 {
		r.Run = &RunSummary{Took: took, TookSeconds: took.Round(time.Millisecond).Seconds(), CopiedBytes: copied, TotalBytes: st.CopiedBytes()}
	}
	return r
}

// Table writes the roles and databases tables and the run's line.
func (r ApplyResult) Table(w io.Writer, width int) error {
	if len(r.Roles) > 0 {
		header := []string{"ROLE", "STATUS", "MESSAGE"}
		if r.ShowPasswords {
			header = append(header, "PASSWORD")
		}
		var rows [][]string
		for _, role := range r.Roles {
			row := []string{role.Name, role.Status, role.Message}
			if r.ShowPasswords {
				row = append(row, role.Password)
			}
			rows = append(rows, row)
		}
		fmt.Fprintln(w, "Roles:")
		if err := table.Write(w, width, header, rows); err != nil {
			return err
		}
	}
	var rows [][]string
	for _, d := range r.Databases {
		rows = append(rows, []string{d.Name, d.Method, d.Status, config.ByteSize(d.CopiedBytes).String(), d.Message})
	}
	fmt.Fprintln(w, "Databases:")
	if err := table.Write(w, width, []string{"DATABASE", "METHOD", "STATUS", "COPIED", "MESSAGE"}, rows); err != nil {
		return err
	}
	if s := r.Run; s != nil {
		rate := float64(s.CopiedBytes) / s.Took.Seconds()
		fmt.Fprintf(w, "this run: copied %s in %s (%s/s); the migration has copied %s in all\n",
			config.ByteSize(s.CopiedBytes), s.Took.Round(100*time.Millisecond), config.ByteSize(int64(rate)), config.ByteSize(s.TotalBytes))
	}
	return nil
}
