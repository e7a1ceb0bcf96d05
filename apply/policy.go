package apply

import (
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/plan"
)

// ApplyPolicy brings the stored plan's cut-over steps in line with the
// current lag policy (the policy keys may change without starting over:
// a migration applied with stop: false is cut over by setting stop: true
// and max_lag_bytes). A done step the new policy still wants as it was
// stays done; a changed one runs again. It returns the databases changed.
func (s *State) ApplyPolicy(r config.Replication) []string {
	var changed []string
	steps, byDB, order := groupSteps(s.Plan.Steps)
	for _, db := range order {
		merged, diff := s.mergeCutover(byDB[db], r, db)
		if diff {
			changed = append(changed, db)
		}
		steps = append(steps, merged...)
	}
	s.Plan.Steps = steps
	s.Plan.Totals.Steps = len(steps)
	return changed
}

func (s *State) mergeCutover(steps []plan.Step, r config.Replication, db string) ([]plan.Step, bool) {
	var dp plan.DatabasePlan
	for _, d := range s.Plan.Databases {
		if d.Name == db {
			dp = d
		}
	}
	if dp.Names.Slot == "" || s.cutOver(db) {
		return steps, false // not replicated, or cut over: the policy no longer matters
	}
	if len(dp.Copied) == 0 {
		dp.Copied = s.Plan.CopiedTables()[db] // a state written before plans listed them
	}
	var kept, old []plan.Step
	for _, st := range steps {
		if plan.IsCutover(st.Kind) {
			old = append(old, st)
		} else {
			kept = append(kept, st)
		}
	}
	want := plan.CutoverSteps(r, dp)
	same := len(want) == len(old)
	for i := 0; same && i < len(want); i++ {
		same = want[i].ID == old[i].ID && want[i].Detail == old[i].Detail
	}
	if same {
		return steps, false
	}
	for _, o := range old {
		if ss := s.Steps[o.ID]; ss.Status == StatusDone {
			delete(s.Steps, o.ID) // nothing of a cut-over stays done before its switch
		}
	}
	return append(kept, want...), true
}
