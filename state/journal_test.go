package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pghaul/pghaul/plan"
)

func newStore(t *testing.T) *FileStore {
	t.Helper()
	f := &FileStore{Dir: t.TempDir()}
	if err := f.Open(); err != nil {
		t.Fatal(err)
	}
	return f
}

func save(t *testing.T, f *FileStore, s *State) Record {
	t.Helper()
	r, err := f.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// loaded is what Load gives, compared as JSON (times keep no monotonic
// reading there).
func loaded(t *testing.T, f *FileStore) string {
	t.Helper()
	s, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	s.Seq = 0
	b, _ := json.Marshal(s)
	return string(b)
}

func asJSON(s *State) string {
	c := *s
	c.Seq = 0
	b, _ := json.Marshal(&c)
	return string(b)
}

// TestJournal: after the first save, a save writes a journal line with
// what changed (steps and databases changed, added or removed, the head
// when it changed), and Load gives back the state as of the last save,
// while state.json alone stays as of the first.
func TestJournal(t *testing.T) {
	f := newStore(t)
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	s := &State{Version: StateVersion, Key: "k", StartedAt: now, UpdatedAt: now,
		Steps:     map[string]StepState{"a": {Status: StatusRunning}, "b": {Status: StatusPending}},
		Databases: map[string]*DatabaseState{"shop": {Tables: map[string]TableState{"public.t": {Status: StatusRunning}}}, "old": {Bytes: 1}}}
	if r := save(t, f, s); !r.whole {
		t.Fatal("the first save is not the whole state")
	}
	base, _ := os.ReadFile(f.Path("state.json"))

	s.Steps["a"] = StepState{Status: StatusDone, Message: "done", Finished: now.Add(time.Second)}
	s.Steps["c"] = StepState{Status: StatusRunning}
	delete(s.Steps, "b")
	s.Databases["shop"].Tables["public.t"] = TableState{Status: StatusDone, Rows: 3, Bytes: 100}
	s.Databases["shop"].Bytes = 100
	delete(s.Databases, "old")
	s.Databases["new"] = &DatabaseState{CopyRuns: 1}
	s.UpdatedAt = now.Add(2 * time.Second)
	r := save(t, f, s)
	if r.whole {
		t.Fatal("the second save wrote the whole state")
	}
	var line journalLine
	if err := json.Unmarshal(r.b, &line); err != nil {
		t.Fatal(err)
	}
	if line.Head != nil || len(line.Steps) != 3 || line.Steps["b"] != nil || len(line.Databases) != 3 || line.Databases["old"] != nil {
		t.Errorf("the journal line holds %s, want steps a, b (removed) and c, databases shop, old (removed) and new", r.b)
	}
	if got, want := loaded(t, f), asJSON(s); got != want {
		t.Errorf("loaded\n%s\nwant\n%s", got, want)
	}
	if now, _ := os.ReadFile(f.Path("state.json")); string(now) != string(base) {
		t.Error("a journal save rewrote state.json")
	}

	// Nothing changed: nothing to write. The head changed: it is written.
	if r := save(t, f, s); r.b != nil {
		t.Errorf("a save without changes wrote %s", r.b)
	}
	s.Roles = []RoleResult{{Name: "app", Status: "created"}}
	r = save(t, f, s)
	line = journalLine{}
	if err := json.Unmarshal(r.b, &line); err != nil || line.Head == nil || line.Steps != nil || line.Databases != nil {
		t.Errorf("a save of a new role wrote %s (%v)", r.b, err)
	}
	if got, want := loaded(t, f), asJSON(s); got != want {
		t.Errorf("loaded\n%s\nwant\n%s", got, want)
	}

	// A plan replaced (a lag policy changed) makes the save whole.
	s.Plan = plan.Plan{Steps: []plan.Step{{ID: "db:shop/wait-for-lag", Kind: plan.StepWaitForLag}}}
	if r := save(t, f, s); !r.whole {
		t.Errorf("a save of a replaced plan wrote %s", r.b)
	}
	if got, want := loaded(t, f), asJSON(s); got != want {
		t.Errorf("loaded\n%s\nwant\n%s", got, want)
	}

	// A last line cut short by a crash (its second half still the zeros
	// written ahead) is left out: the save it was never returned.
	before := loaded(t, f)
	s.Steps["c"] = StepState{Status: StatusDone}
	r = save(t, f, s)
	j, _ := os.ReadFile(f.Path(journalName))
	end := bytes.IndexByte(j, 0)
	if end < 0 || len(j)%journalChunk != 0 || !bytes.HasSuffix(j[:end], r.b) {
		t.Fatalf("the journal does not end with the last record and zeros to a whole chunk: %d bytes, records end at %d", len(j), end)
	}
	clear(j[end-len(r.b)/2 : end])
	if err := os.WriteFile(f.Path(journalName), j, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loaded(t, f); got != before {
		t.Errorf("with the last line cut short, loaded\n%s\nwant\n%s", got, before)
	}
}

// TestJournalCompacts: once the journal outgrows state.json the next save
// writes the whole state and empties the journal; a crash between the two
// leaves lines Load skips by their number; the next process's first save
// is whole; Reset removes the journal too.
func TestJournalCompacts(t *testing.T) {
	f := newStore(t)
	s := &State{Version: StateVersion, Key: "k", Steps: map[string]StepState{}, Databases: map[string]*DatabaseState{}}
	save(t, f, s)
	whole := 0
	for i := range 2000 {
		s.Steps["db:x/step"] = StepState{Status: StatusRunning, Message: strings.Repeat("m", i%200)}
		if r := save(t, f, s); r.whole {
			whole++
			if fi, err := os.Stat(f.Path(journalName)); err != nil || fi.Size() != 0 {
				t.Fatalf("after a whole save the journal is %v, %v", fi, err)
			}
		}
	}
	if whole == 0 {
		t.Fatal("the journal was never compacted")
	}
	if got, want := loaded(t, f), asJSON(s); got != want {
		t.Errorf("loaded\n%s\nwant\n%s", got, want)
	}

	// A crash after state.json was replaced and before the journal was
	// emptied: its lines are older than state.json and must not undo it.
	s.Steps["db:x/step"] = StepState{Status: StatusRunning, Message: "old"}
	save(t, f, s)
	stale, _ := os.ReadFile(f.Path(journalName))
	s.Steps["db:x/step"] = StepState{Status: StatusDone}
	g := &FileStore{Dir: f.Dir} // another process: its first save is whole
	if r := save(t, g, s); !r.whole {
		t.Fatal("a new store's first save is not whole")
	}
	if err := os.WriteFile(f.Path(journalName), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Load(); err != nil || got.Steps["db:x/step"].Status != StatusDone {
		t.Errorf("the stale journal undid state.json: %+v, %v", got.Steps, err)
	}
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path(journalName)); !os.IsNotExist(err) {
		t.Errorf("Reset left the journal: %v", err)
	}
}

// TestJournalWriteFailure: after a record could not be written, the lines
// encoded after it are refused (they lack its changes) and the next
// record is the whole state.
func TestJournalWriteFailure(t *testing.T) {
	f := newStore(t)
	s := &State{Version: StateVersion, Key: "k", Steps: map[string]StepState{"a": {Status: StatusPending}}}
	save(t, f, s)
	s.Steps["a"] = StepState{Status: StatusRunning}
	lost, err := f.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Steps["b"] = StepState{Status: StatusRunning}
	next, err := f.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.Dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		// root writes anyway: make the journal a directory instead.
		os.Chmod(f.Dir, 0o700)
		os.Remove(f.Path(journalName))
		os.Mkdir(f.Path(journalName), 0o700)
	}
	if err := f.Write(lost); err == nil {
		t.Fatal("the write did not fail: the test proves nothing")
	}
	os.Chmod(f.Dir, 0o700)
	os.Remove(f.Path(journalName))
	if err := f.Write(next); err == nil {
		t.Error("a line encoded after an unwritten one was written")
	}
	r := save(t, f, s)
	if !r.whole {
		t.Error("the save after a failure is not whole")
	}
	got, err := f.Load()
	if err != nil || !reflect.DeepEqual(got.Steps, s.Steps) {
		t.Errorf("loaded %v, %v; want %v", got.Steps, err, s.Steps)
	}
}

// TestDatabaseStateCloneAndEqual: clone and equal cover every field of
// DatabaseState (a field either misses would be shared with the journal's
// copy, or its change never written). Each field in turn holds one value
// and is changed on a clone: the two must differ, and the original must
// keep its value.
func TestDatabaseStateCloneAndEqual(t *testing.T) {
	typ := reflect.TypeOf(DatabaseState{})
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		d := &DatabaseState{}
		f := reflect.ValueOf(d).Elem().Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
		case reflect.Slice:
			f.Set(reflect.Append(f, reflect.New(f.Type().Elem()).Elem()))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
			f.SetMapIndex(reflect.New(f.Type().Key()).Elem(), reflect.New(f.Type().Elem()).Elem())
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", name, f.Kind())
		}
		orig := d.clone()
		c := d.clone()
		g := reflect.ValueOf(c).Elem().Field(i)
		switch g.Kind() {
		case reflect.Int, reflect.Int64:
			g.SetInt(7)
		case reflect.Slice:
			g.Index(0).Set(nonZero(g.Type().Elem()))
		case reflect.Map:
			g.SetMapIndex(g.MapKeys()[0], nonZero(g.Type().Elem()))
		}
		if d.equal(c) {
			t.Errorf("equal misses field %s", name)
		}
		if !d.equal(orig) || !reflect.DeepEqual(d, orig) {
			t.Errorf("clone shares field %s", name)
		}
	}
}

// nonZero is a value of type typ that is not its zero value.
func nonZero(typ reflect.Type) reflect.Value {
	v := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Struct:
		v.Field(0).Set(nonZero(typ.Field(0).Type))
	case reflect.Array:
		v.Index(0).Set(nonZero(typ.Elem()))
	default:
		panic("nonZero: " + typ.String())
	}
	return v
}

// TestJournalFile: records go over zeros written ahead a chunk at a time;
// a new process finds where they end, and writes over a record cut short.
func TestJournalFile(t *testing.T) {
	dir := t.TempDir()
	f := &FileStore{Dir: dir}
	line := append(bytes.Repeat([]byte("x"), 300<<10), '\n')
	for range 5 {
		if err := f.appendJournal(line); err != nil {
			t.Fatal(err)
		}
	}
	j, _ := os.ReadFile(f.Path(journalName))
	if end := bytes.IndexByte(j, 0); len(j)%journalChunk != 0 || end != 5*len(line) {
		t.Fatalf("journal of %d bytes, records end at %d; want whole chunks, records ending at %d", len(j), end, 5*len(line))
	}
	cut := f.jf.end
	if _, err := f.jf.f.WriteAt([]byte(`{"seq":9,"cut sh`), cut); err != nil {
		t.Fatal(err)
	}
	f.closeJournal()
	g := &FileStore{Dir: dir}
	if err := g.appendJournal([]byte("next\n")); err != nil {
		t.Fatal(err)
	}
	j, _ = os.ReadFile(g.Path(journalName))
	if got := string(j[cut : cut+6]); got != "next\n\"" {
		t.Errorf("after the records: %q, want the next record over the one cut short", got)
	}
	if err := g.emptyJournal(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(g.Path(journalName)); err != nil || fi.Size() != 0 {
		t.Errorf("emptied journal: %v, %v", fi, err)
	}
	if err := g.appendJournal([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if j, _ = os.ReadFile(g.Path(journalName)); !bytes.HasPrefix(j, []byte("first\n\x00")) || len(j) != journalChunk {
		t.Errorf("after emptying: %q... (%d bytes)", j[:min(len(j), 8)], len(j))
	}
	g.closeJournal()
}

// TestJournalTracksTouched: a tracking state's save records the steps and
// databases touched since the last one, after a first save that compares
// all; with PGHAUL_CHECK_STATE_TOUCH a change not touched fails the save.
func TestJournalTracksTouched(t *testing.T) {
	f := newStore(t)
	s := &State{Version: StateVersion, Key: "k", Steps: map[string]StepState{"a": {Status: StatusPending}},
		Databases: map[string]*DatabaseState{"shop": {CopyRuns: 1}}}
	save(t, f, s)
	s.TrackChanges()
	s.Steps["a"] = StepState{Status: StatusRunning} // before tracking: the next save compares all
	if r := save(t, f, s); !strings.Contains(string(r.b), `"a":{"status":"running"`) {
		t.Fatalf("the first save after TrackChanges missed an untouched change: %s", r.b)
	}
	s.Steps["a"] = StepState{Status: StatusDone}
	s.Steps["b"] = StepState{Status: StatusRunning}
	s.TouchStep("b")
	s.Databases["shop"].CopyRuns = 2
	s.TouchDatabase("shop")
	r := save(t, f, s)
	if line := string(r.b); strings.Contains(line, `"a"`) || !strings.Contains(line, `"b":{"status":"running"`) || !strings.Contains(line, `"copy_runs":2`) {
		t.Fatalf("a tracked save recorded %s, want b and shop only", line)
	}
	delete(s.Steps, "b")
	s.TouchStep("b")
	if r := save(t, f, s); !strings.Contains(string(r.b), `"b":null`) {
		t.Fatalf("a touched removal was not recorded: %s", r.b)
	}
	s.TouchStep("a") // a's change, untouched above, goes in now
	if r := save(t, f, s); !strings.Contains(string(r.b), `"a":{"status":"done"`) {
		t.Fatalf("a touched step was not recorded: %s", r.b)
	}
	t.Setenv("PGHAUL_CHECK_STATE_TOUCH", "1")
	s.Databases["shop"].CopyRuns = 3
	if _, err := f.Encode(s); err == nil || !strings.Contains(err.Error(), "database shop changed and was not touched") {
		t.Errorf("an untouched change with the check on: %v", err)
	}
}

// BenchmarkEncodeManyDatabases: a save's encoding on a state of many
// databases, where one step changed (what each step's end saves), when
// every step and database is compared and when the state tracks changes.
func BenchmarkEncodeManyDatabases(b *testing.B) {
	for _, c := range []struct {
		n       int
		tracked bool
	}{{100, false}, {1000, false}, {100, true}, {1000, true}} {
		n := c.n
		b.Run(fmt.Sprintf("databases=%d,tracked=%v", n, c.tracked), func(b *testing.B) {
			s := &State{Version: StateVersion, Key: "k", Steps: map[string]StepState{}, Databases: map[string]*DatabaseState{}}
			for i := range n {
				db := fmt.Sprintf("small%04d", i)
				for _, step := range []string{"snapshot", "create-database", "configure-database", "dump-schema", "pre-data", "copy-data", "post-data", "sequences"} {
					s.Steps["db:"+db+"/"+step] = StepState{Status: StatusDone, Message: "done", Started: time.Now(), Finished: time.Now()}
				}
				d := &DatabaseState{Tables: map[string]TableState{}}
				for j := range 20 {
					d.Tables[fmt.Sprintf("public.m%05d", j)] = TableState{Status: StatusDone, Rows: 200, Bytes: 14 << 10}
				}
				s.Databases[db] = d
			}
			f := &FileStore{Dir: b.TempDir()}
			if err := f.Open(); err != nil {
				b.Fatal(err)
			}
			if _, err := f.Encode(s); err != nil {
				b.Fatal(err)
			}
			if c.tracked {
				s.TrackChanges()
			}
			f.j.size = 0
			if _, err := f.Encode(s); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				s.Steps["db:small0000/copy-data"] = StepState{Status: StatusRunning, Message: strconv.Itoa(i)}
				s.TouchStep("db:small0000/copy-data")
				if _, err := f.Encode(s); err != nil {
					b.Fatal(err)
				}
				f.j.size = 0 // keep it from compacting into a whole save
			}
		})
	}
}
