package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pghaul/pghaul/plan"
)

// TestFileStoreRoundTrip: what is saved is what is loaded; placeholder
// passwords live apart, readable by the owner only; an empty directory
// has no state; a state of another format is refused.
func TestFileStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m.state")
	f := &FileStore{Dir: dir}
	if err := f.Open(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); !errors.Is(err, ErrNoState) {
		t.Fatalf("Load of an empty directory = %v, want ErrNoState", err)
	}
	s := &State{Version: StateVersion, Key: "k1", Steps: map[string]StepState{"cluster/roles": {Status: StatusDone, Message: "1 created"}},
		Databases: map[string]*DatabaseState{"shop": {Bytes: 42, Tables: map[string]TableState{"public.orders": {Status: StatusDone, Rows: 3}}}}}
	if err := f.Save(s); err != nil {
		t.Fatal(err)
	}
	if err := f.SavePasswords(Passwords{"app": "s3cret-placeholder"}); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "k1" || got.Steps["cluster/roles"].Message != "1 created" || got.Databases["shop"].Tables["public.orders"].Rows != 3 {
		t.Errorf("loaded %+v", got)
	}
	pw, err := f.LoadPasswords()
	if err != nil || pw["app"] != "s3cret-placeholder" {
		t.Errorf("passwords = %v, %v", pw, err)
	}
	b, _ := os.ReadFile(f.Path("state.json"))
	if strings.Contains(string(b), "s3cret") {
		t.Error("state.json holds a password")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, _ := e.Info(); info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", e.Name(), info.Mode().Perm())
		}
	}
	s.Version = StateVersion + 1
	if err := f.Save(s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("Load of another format = %v", err)
	}
}

// TestDatabaseStatus: how far a database got, from its steps' statuses.
func TestDatabaseStatus(t *testing.T) {
	steps := []plan.Step{
		{ID: "db:shop/copy", Kind: plan.StepCopyData, Params: plan.Params{Database: "shop"}},
		{ID: "db:shop/wait-for-lag", Kind: plan.StepWaitForLag, Params: plan.Params{Database: "shop"}},
		{ID: "db:shop/stop-replication", Kind: plan.StepStopReplication, Params: plan.Params{Database: "shop"}},
	}
	p := plan.Plan{Steps: steps, Databases: []plan.DatabasePlan{{Name: "shop", Names: plan.ReplicationNames{Slot: "pghaul_shop_1_slot"}}}}
	s := &State{Plan: p, Steps: map[string]StepState{"db:shop/copy": {Status: StatusDone}}}
	if st, msg := s.DatabaseStatus("shop"); st != StatusPending || msg != "1 of 3 steps done" {
		t.Errorf("one step done: %s %q", st, msg)
	}
	if !s.Replicating() || s.CutOver("shop") || s.Complete() {
		t.Errorf("before the switch: replicating %t, cut over %t, complete %t", s.Replicating(), s.CutOver("shop"), s.Complete())
	}
	s.Steps["db:shop/wait-for-lag"] = StepState{Status: StatusWaiting, Message: "lag 10 bytes"}
	if st, msg := s.DatabaseStatus("shop"); st != StatusWaiting || !strings.Contains(msg, "lag 10 bytes") {
		t.Errorf("lag wait timed out: %s %q", st, msg)
	}
	s.Steps["db:shop/wait-for-lag"] = StepState{Status: StatusDone}
	s.Steps["db:shop/stop-replication"] = StepState{Status: StatusDone}
	s.Databases = map[string]*DatabaseState{"shop": {Warnings: []string{"owner x kept"}}}
	if st, msg := s.DatabaseStatus("shop"); st != StatusDoneWithWarnings || msg != "owner x kept" {
		t.Errorf("switched with a warning: %s %q", st, msg)
	}
	if !s.Complete() || s.Replicating() || !s.CutOver("shop") {
		t.Errorf("after the switch: complete %t, replicating %t, cut over %t", s.Complete(), s.Replicating(), s.CutOver("shop"))
	}
	s.Removed = map[string]time.Time{"other": time.Now()}
	if err := s.CheckRemoved(); err == nil {
		t.Error("CheckRemoved accepted a database removed before its cut-over")
	}
}

// TestCopyNote: an interrupted copy under a slot's snapshot names the
// tables a rerun copies again; once the rerun decided, what it left to
// the subscription; nothing for a copy not interrupted or without a slot.
func TestCopyNote(t *testing.T) {
	orders, items := plan.TableRef{Schema: "public", Name: "orders"}, plan.TableRef{Schema: "public", Name: "items"}
	s := &State{
		Plan: plan.Plan{
			Databases: []plan.DatabasePlan{{Name: "shop", Names: plan.ReplicationNames{Slot: "pghaul_shop_slot"}}, {Name: "crm"}},
			Steps: []plan.Step{
				{ID: "db:shop/copy-data", Kind: plan.StepCopyData, Params: plan.Params{Database: "shop", Tables: []plan.TableRef{orders, items}}},
				{ID: "db:crm/copy-data", Kind: plan.StepCopyData, Params: plan.Params{Database: "crm", Tables: []plan.TableRef{orders, items}}},
			},
		},
		Steps: map[string]StepState{"db:shop/copy-data": {Status: StatusRunning}, "db:crm/copy-data": {Status: StatusRunning}},
		Databases: map[string]*DatabaseState{
			"shop": {Tables: map[string]TableState{"public.orders": {Status: StatusDone}}},
			"crm":  {Tables: map[string]TableState{"public.orders": {Status: StatusDone}}},
		},
	}
	if got := s.CopyNote("shop"); !strings.Contains(got, "1 of 2 tables kept") || !strings.HasSuffix(got, ": public.items") {
		t.Errorf("CopyNote(shop) = %q", got)
	}
	if got := s.CopyNote("crm"); got != "" {
		t.Errorf("CopyNote(crm), a dump without a slot, = %q, want none", got)
	}
	s.Databases["shop"].Recopy, s.Databases["shop"].RecopyBytes = []string{"public.items"}, 8192
	if got := s.CopyNote("shop"); got != "copied again by the subscription, each under its own snapshot (8.0 KiB): public.items" {
		t.Errorf("CopyNote(shop) after the rerun decided = %q", got)
	}
	s.Databases["shop"].Recopy = nil
	s.Steps["db:shop/copy-data"] = StepState{Status: StatusDone}
	if got := s.CopyNote("shop"); got != "" {
		t.Errorf("CopyNote(shop) of a finished copy = %q, want none", got)
	}
}
