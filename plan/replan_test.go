package plan

import (
	"bytes"
	"slices"
	"testing"

	"github.com/pghaul/pghaul/internal/golden"
)

// TestGoldenReplan: a plan made with replication left running, replanned
// for a cut-over without a write freeze, gets the cut-over steps and the
// no-write-freeze warning; a database already cut over keeps its steps;
// replanning back takes both away again.
func TestGoldenReplan(t *testing.T) {
	src, dst := loadSnapshot(t, "rich-source"), loadSnapshot(t, "rich-target")
	running := Build(mustConfig(t, "method: replication\n"), src, dst, testEnv)
	var replicated []string
	for _, st := range running.Steps {
		if st.Kind == StepCreateSubscription {
			replicated = append(replicated, st.Params.Database)
		}
	}
	if len(replicated) < 2 {
		t.Fatalf("the fixture replicates %v; the test needs two databases", replicated)
	}
	done := replicated[0]
	cutOver := func(db string) bool { return db == done }
	stop := mustConfig(t, "method: replication\nreplication: {stop: true, max_lag_bytes: 0, write_freeze: false}\n").Replication
	before := slices.Clone(running.Steps)
	got, replaced := Replan(running, stop, cutOver)
	if !slices.EqualFunc(running.Steps, before, func(a, b Step) bool { return a.ID == b.ID && a.Detail == b.Detail }) {
		t.Error("Replan changed the plan it was given")
	}
	if _, ok := replaced[done]; ok {
		t.Errorf("database %s, cut over, was replanned", done)
	}
	if _, ok := replaced[replicated[1]]; !ok {
		t.Errorf("database %s was not replanned (replaced %v)", replicated[1], replaced)
	}
	if !slices.ContainsFunc(got.Findings, func(f Finding) bool { return f.Code == "no-write-freeze" }) || got.Totals.Warnings != running.Totals.Warnings+1 {
		t.Errorf("no-write-freeze: findings %v, warnings %d (was %d)", findingKeys(got.Findings), got.Totals.Warnings, running.Totals.Warnings)
	}
	var b bytes.Buffer
	if err := Render(&b, &got, FormatTable, 100); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "replan.table", b.Bytes())

	back, _ := Replan(got, mustConfig(t, "method: replication\n").Replication, cutOver)
	if slices.ContainsFunc(back.Findings, func(f Finding) bool { return f.Code == "no-write-freeze" }) || back.Totals.Warnings != running.Totals.Warnings {
		t.Errorf("replanned back: findings %v, warnings %d, want %d", findingKeys(back.Findings), back.Totals.Warnings, running.Totals.Warnings)
	}
	if back.Totals.Steps != running.Totals.Steps {
		t.Errorf("replanned back: %d steps, want %d", back.Totals.Steps, running.Totals.Steps)
	}
}
