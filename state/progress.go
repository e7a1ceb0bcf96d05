package state

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/plan"
)

// Freeze is what a cut-over's write freeze changed on one source database.
// It is saved in the state before the change, so that an abort, a rerun
// after a crash or cleanup restores exactly what was there.
//
// The freeze sets ALLOW_CONNECTIONS false on the database and ends its
// other client sessions. Measured on PostgreSQL 15: that refuses every new
// connection, superusers' included, while an established WAL sender keeps
// streaming; revoking CONNECT does not stop superusers or owners, and
// default_transaction_read_only on the database can be set back by any
// session. So datallowconn is the one thing changed, and restoring it is
// exact.
type Freeze struct {
	// AllowConnections is datallowconn before the freeze.
	AllowConnections bool      `json:"allow_connections"`
	SavedAt          time.Time `json:"saved_at"`
	// FrozenAt is when the database first refused connections.
	FrozenAt time.Time `json:"frozen_at,omitzero"`
	// SessionsEnded counts the client sessions the freeze ended.
	SessionsEnded int `json:"sessions_ended,omitempty"`
	// FenceLSN is the source's WAL position once nothing could write.
	FenceLSN string `json:"fence_lsn,omitempty"`
	// Switching: the switch began, so the cut-over no longer aborts; a
	// rerun finishes it.
	Switching  bool      `json:"switching,omitempty"`
	SwitchedAt time.Time `json:"switched_at,omitzero"`
	// PublicationLeft: a switch finished after a crash could not reach the
	// frozen database to drop its publication; cleanup --unfreeze does.
	PublicationLeft bool `json:"publication_left,omitempty"`
}

// Window is how long the source refused writes before the switch.
func (f *Freeze) Window() time.Duration {
	if f.FrozenAt.IsZero() || f.SwitchedAt.IsZero() {
		return 0
	}
	return f.SwitchedAt.Sub(f.FrozenAt)
}

// Describe says what the freeze means for a person.
func (f *Freeze) Describe() string {
	if f.Switched() {
		return fmt.Sprintf("frozen since %s by the cut-over (writes stopped for %s): pghaul cleanup --unfreeze lifts it",
			f.FrozenAt.Format(time.RFC3339), f.Window().Round(time.Millisecond))
	}
	if f.FrozenAt.IsZero() {
		return fmt.Sprintf("a cut-over was interrupted while freezing it (saved %s; it may refuse connections): rerun apply to finish the cut-over, or pghaul cleanup to restore it",
			f.SavedAt.Format(time.RFC3339))
	}
	return fmt.Sprintf("FROZEN since %s by a cut-over that was interrupted: rerun apply to finish the cut-over, or pghaul cleanup to lift the freeze",
		f.FrozenAt.Format(time.RFC3339))
}

// Switched reports a freeze whose cut-over switched: the source stays
// frozen on purpose.
func (f *Freeze) Switched() bool { return !f.SwitchedAt.IsZero() }

// Complete reports a migration with nothing left to do: every step done
// and no condition (a lag wait) of a database that has not cut over,
// which every run evaluates again.
func (s *State) Complete() bool {
	if s.Done() != len(s.Plan.Steps) {
		return false
	}
	for _, st := range s.Plan.Steps {
		if plan.IsCondition(st.Kind) && !s.CutOver(st.Params.Database) {
			return false
		}
	}
	return true
}

// Replicating reports a database whose replication runs: its objects
// exist in the plan and its cut-over has not switched.
func (s *State) Replicating() bool {
	for _, d := range s.Plan.Databases {
		if d.Names.Slot != "" && !s.CutOver(d.Name) {
			if st, _ := s.DatabaseStatus(d.Name); st != StatusRemoved {
				return true
			}
		}
	}
	return false
}

// CutOver reports a database whose cut-over switched.
func (s *State) CutOver(db string) bool {
	for _, st := range s.Plan.Steps {
		if st.Params.Database == db && st.Kind == plan.StepStopReplication {
			return s.Steps[st.ID].Status == StatusDone
		}
	}
	return false
}

// DatabaseStatus says how far a database got, for the result table.
func (s *State) DatabaseStatus(name string) (Status, string) {
	if at, ok := s.Removed[name]; ok && !s.CutOver(name) {
		return StatusRemoved, fmt.Sprintf("replication removed by cleanup at %s: apply --reset-state migrates it again", at.Format(time.RFC3339))
	}
	total, done, stops := 0, 0, false
	for _, st := range s.Plan.Steps {
		if st.Params.Database != name || st.Scope == plan.ClusterScope {
			continue
		}
		total++
		stops = stops || st.Kind == plan.StepStopReplication
		switch ss := s.Steps[st.ID]; ss.Status {
		case StatusDone:
			done++
		case StatusFailed, StatusWaiting:
			return ss.Status, fmt.Sprintf("%s: %s", st.ID, ss.Message)
		}
	}
	var warnings []string
	if ds := s.Databases[name]; ds != nil {
		warnings = ds.Warnings
	}
	if done == total && !stops && s.Plan.DatabaseNames(name).Slot != "" {
		return StatusRunning, strings.Join(append([]string{"replication left running"}, warnings...), "; ")
	}
	if done == total && len(warnings) > 0 {
		return StatusDoneWithWarnings, strings.Join(warnings, "; ")
	}
	if done == total {
		return StatusDone, ""
	}
	return StatusPending, fmt.Sprintf("%d of %d steps done", done, total)
}

// ApplyPolicy brings the stored plan in line with the current lag policy
// (plan.Replan): a cut-over step replaced must run again, so its done
// status goes. It returns the databases replanned.
func (s *State) ApplyPolicy(r config.Replication) []string {
	p, replaced := plan.Replan(s.Plan, r, s.CutOver)
	s.Plan = p
	for _, ids := range replaced {
		for _, id := range ids {
			if s.Steps[id].Status == StatusDone {
				delete(s.Steps, id) // nothing of a cut-over stays done before its switch
				s.TouchStep(id)
			}
		}
	}
	return slices.Sorted(maps.Keys(replaced))
}
