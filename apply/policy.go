package apply

import (
	"maps"
	"slices"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/plan"
)

// ApplyPolicy brings the stored plan in line with the current lag policy
// (plan.Replan): a cut-over step replaced must run again, so its done
// status goes. It returns the databases replanned.
func (s *State) ApplyPolicy(r config.Replication) []string {
	p, replaced := plan.Replan(s.Plan, r, s.cutOver)
	s.Plan = p
	for _, ids := range replaced {
		for _, id := range ids {
			if s.Steps[id].Status == StatusDone {
				delete(s.Steps, id) // nothing of a cut-over stays done before its switch
			}
		}
	}
	return slices.Sorted(maps.Keys(replaced))
}
