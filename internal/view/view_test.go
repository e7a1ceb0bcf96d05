package view

import (
	"bytes"
	"testing"
	"time"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/golden"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// render renders v in both formats into golden files name.table and
// name.json.
func render(t *testing.T, name string, v View) {
	t.Helper()
	for _, f := range []Format{Table, JSON} {
		var b bytes.Buffer
		if err := Render(&b, v, f, 100); err != nil {
			t.Fatal(err)
		}
		golden.Assert(t, name+"."+string(f), b.Bytes())
	}
}

// fixtureState is a migration of two databases: shop replicated and cut
// over with a warning, crm copied by dump and failed at its post-data.
func fixtureState() *state.State {
	steps := []plan.Step{
		{ID: "db:shop/copy", Kind: plan.StepCopyData, Params: plan.Params{Database: "shop"}},
		{ID: "db:shop/stop-replication", Kind: plan.StepStopReplication, Params: plan.Params{Database: "shop"}},
		{ID: "db:crm/copy", Kind: plan.StepCopyData, Params: plan.Params{Database: "crm"}},
		{ID: "db:crm/post-data", Kind: plan.StepRestorePostData, Params: plan.Params{Database: "crm"}},
	}
	return &state.State{
		Plan: plan.Plan{Steps: steps, Databases: []plan.DatabasePlan{
			{Name: "shop", Method: plan.MethodReplication, Names: plan.ReplicationNames{Slot: "pghaul_shop_1a2b3c4d_slot"}},
			{Name: "crm", Method: plan.MethodDump},
		}},
		Steps: map[string]state.StepState{
			"db:shop/copy": {Status: state.StatusDone}, "db:shop/stop-replication": {Status: state.StatusDone},
			"db:crm/copy": {Status: state.StatusDone}, "db:crm/post-data": {Status: state.StatusFailed, Message: "ERROR: could not create unique index \"orders_pkey\""},
		},
		Databases: map[string]*state.DatabaseState{
			"shop": {Bytes: 12 << 20, Warnings: []string{"owner auditor is missing on the target: migrator owns it instead; 1 object keeps it as owner: TABLE sales audit"}},
			"crm":  {Bytes: 3 << 20},
		},
		Roles: []state.RoleResult{{Name: "app", Status: "created"}, {Name: "analyst (member of pg_monitor)", Status: "failed", Message: "permission denied to grant role \"pg_monitor\""}},
	}
}

func TestGoldenApplyResult(t *testing.T) {
	st := fixtureState()
	render(t, "apply", NewApplyResult(st, state.Passwords{"app": "placeholder-1"}, false, 2500*time.Millisecond, 5<<20))
	with := NewApplyResult(st, state.Passwords{"app": "placeholder-1"}, true, 0, 0)
	render(t, "apply-passwords", with)
	if with.Run != nil {
		t.Error("a result without a run has a run summary")
	}
}

func TestGoldenStatus(t *testing.T) {
	lag, retained := int64(4096), int64(1<<20)
	render(t, "status", Status{StepsDone: 9, Steps: 14, StateDir: "migration.yaml.state", Databases: []inspect.Progress{
		{Database: "shop", Method: "replication", Status: "running", Step: "db:shop/wait-for-lag", Subscription: "enabled", Worker: true,
			TablesReady: 4, TablesTotal: 5, LagBytes: &lag, ETA: "3s", WALRetained: &retained, WALStatus: "reserved", Message: "replication left running",
			Copy: "copied again by the subscription, each under its own snapshot (192.0 KiB): public.metrics, public.scratch"},
		{Database: "crm", Method: "dump", Status: "failed", Step: "db:crm/post-data", Message: "ERROR: could not create unique index \"orders_pkey\""},
		{Database: "inventory", Method: "replication", Status: "done", Step: "cut over at 2026-12-07T01:00:00Z",
			Frozen: "frozen since 2026-12-07T00:59:58Z by the cut-over (switched at 2026-12-07T01:00:00Z): pghaul cleanup --unfreeze lifts it"},
	}})
}

func TestGoldenVerify(t *testing.T) {
	orders := plan.TableRef{Schema: "public", Name: "orders"}
	v := NewVerify([]inspect.TableCheck{
		{Database: "shop", Kind: inspect.KindTable, Table: orders, SourceRows: 20000, TargetRows: 20000, SourceHash: "1f2e", TargetHash: "1f2e"},
		{Database: "shop", Kind: inspect.KindTable, Table: plan.TableRef{Schema: "public", Name: "events"}, SourceRows: 500, TargetRows: 499, SourceHash: "aa", TargetHash: "bb"},
		{Database: "shop", Kind: inspect.KindTable, Table: plan.TableRef{Schema: "public", Name: "gone"}, Err: "target: relation \"public.gone\" does not exist"},
		{Database: "shop", Kind: inspect.KindSequences, SourceRows: 1, TargetRows: 1, SourceHash: "c0", TargetHash: "c0"},
		{Database: "shop", Kind: inspect.KindLargeObjects, SourceRows: 2, TargetRows: 2, SourceHash: "d1", TargetHash: "d1"},
	})
	if v.Different != 2 {
		t.Errorf("%d checks differ, want 2", v.Different)
	}
	if tables, different := v.Tables(); tables != 3 || different != 2 {
		t.Errorf("Tables() = %d, %d; want 3, 2", tables, different)
	}
	render(t, "verify", v)
}

func TestGoldenCleanup(t *testing.T) {
	var c Cleanup
	render(t, "cleanup-nothing", c)
	c.Add("lifted the write freeze of", "source database shop", "(ALLOW_CONNECTIONS true, as saved)")
	c.Add("dropped", "subscription pghaul_shop_1a2b3c4d_sub in target database shop", "")
	c.Add("revoked the migration user's membership in", "role app_owner", "on the target (granted to hand it objects)")
	render(t, "cleanup", c)
}
