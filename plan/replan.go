package plan

import (
	"slices"

	"github.com/pghaul/pghaul/config"
)

// Replan brings a stored plan in line with the current lag policy r: the
// policy keys may change without starting over (a migration applied with
// stop: false is cut over by setting stop: true and max_lag_bytes). Each
// replicated database that has not cut over (cutOver reports those that
// have) gets the cut-over steps r asks for; the no-write-freeze warning
// follows r. It returns the new plan and, by database replanned, the IDs
// of the cut-over steps it replaced (none when the database had none): a
// done step that r still wants as it was keeps its ID and detail, a
// replaced one must run again. Pure: p is not changed.
func Replan(p Plan, r config.Replication, cutOver func(db string) bool) (Plan, map[string][]string) {
	cluster, byDB, order := GroupSteps(p.Steps)
	replaced := map[string][]string{}
	steps := cluster
	for _, db := range order {
		merged, old := replanDatabase(&p, byDB[db], r, db, cutOver)
		if old != nil {
			replaced[db] = old
		}
		steps = append(steps, merged...)
	}
	out := p
	out.Steps = steps
	out.Totals.Steps = len(steps)
	out.Findings = slices.Clone(p.Findings)
	wantWarning := r.Stop && !r.WriteFreeze && slices.ContainsFunc(steps, func(s Step) bool { return s.Kind == StepStopReplication })
	has := slices.ContainsFunc(out.Findings, func(f Finding) bool { return f.Code == "no-write-freeze" })
	switch {
	case wantWarning && !has:
		out.Findings = append(out.Findings, NoWriteFreeze())
		out.Totals.Warnings++
	case !wantWarning && has:
		out.Findings = slices.DeleteFunc(out.Findings, func(f Finding) bool { return f.Code == "no-write-freeze" })
		out.Totals.Warnings--
	}
	return out, replaced
}

// GroupSteps splits steps into the cluster's and each database's, with
// the databases in plan order.
func GroupSteps(steps []Step) (cluster []Step, perDB map[string][]Step, order []string) {
	perDB = map[string][]Step{}
	for _, st := range steps {
		if st.Scope == ClusterScope {
			cluster = append(cluster, st)
			continue
		}
		db := st.Params.Database
		if _, seen := perDB[db]; !seen {
			order = append(order, db)
		}
		perDB[db] = append(perDB[db], st)
	}
	return cluster, perDB, order
}

// replanDatabase replaces db's cut-over steps with those r asks for,
// returning its steps and the IDs of the steps replaced (nil when none).
func replanDatabase(p *Plan, steps []Step, r config.Replication, db string, cutOver func(string) bool) ([]Step, []string) {
	var dp DatabasePlan
	for _, d := range p.Databases {
		if d.Name == db {
			dp = d
		}
	}
	if dp.Names.Slot == "" || cutOver(db) {
		return steps, nil // not replicated, or cut over: the policy no longer matters
	}
	if len(dp.Copied) == 0 {
		dp.Copied = p.CopiedTables()[db] // a plan written before plans listed them
	}
	var kept, old []Step
	for _, st := range steps {
		if IsCutover(st.Kind) {
			old = append(old, st)
		} else {
			kept = append(kept, st)
		}
	}
	want := CutoverSteps(r, dp)
	same := len(want) == len(old)
	for i := 0; same && i < len(want); i++ {
		same = want[i].ID == old[i].ID && want[i].Detail == old[i].Detail
	}
	if same {
		return steps, nil
	}
	ids := make([]string, 0, len(old))
	for _, o := range old {
		ids = append(ids, o.ID)
	}
	return append(kept, want...), ids
}
