// Package state is a migration's memory: the state directory (the plan
// apply started with and how far each step, table and database got,
// placeholder passwords apart), the lock that keeps two runs of one
// migration apart, and what a status is. It executes nothing.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/plan"
)

// StateVersion is the format of state.json.
const StateVersion = 1

// Status is a step's, table's or database's progress.
type Status string

// The statuses.
const (
	StatusPending Status = "pending"
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
	// StatusWaiting: the lag policy did not hold within wait_timeout;
	// replication runs on.
	StatusWaiting Status = "waiting"
	// StatusRemoved: cleanup dropped the database's replication objects
	// before its cut-over.
	StatusRemoved Status = "removed"
	// StatusDoneWithWarnings: done, with something not kept as on the
	// source (DatabaseState.Warnings).
	StatusDoneWithWarnings Status = "done with warnings"
)

// RemovedError refuses to resume a database whose replication objects
// cleanup dropped before its cut-over.
type RemovedError struct {
	Database string
	At       time.Time
}

func (e *RemovedError) Error() string {
	return fmt.Sprintf("the replication objects of %s were removed by pghaul cleanup at %s, before its cut-over: the target has missed the changes made since; rerun apply with --reset-state to migrate it again",
		e.Database, e.At.Format(time.RFC3339))
}

// TrackChanges has the encoding of a save compare only the steps and
// databases touched since the last one (TouchStep, TouchDatabase), not
// every one: with many databases, comparing all of them at each save made
// the saves' cost grow with the square of the databases (776 us a save
// with 1000 databases of 20 tables). Whoever changes a step or a
// database's state must then touch it; PGHAUL_CHECK_STATE_TOUCH=1 has
// each encoding check that (the tests set it). The next encoding still
// compares all: what changed before this call was not touched.
func (s *State) TrackChanges() {
	s.tracking, s.compareAll = true, true
	s.touchedSteps, s.touchedDBs = map[string]bool{}, map[string]bool{}
}

// TouchStep says step id changed (or went), when tracking.
func (s *State) TouchStep(id string) {
	if s.tracking {
		s.touchedSteps[id] = true
	}
}

// TouchDatabase says the state of database name changed, when tracking.
func (s *State) TouchDatabase(name string) {
	if s.tracking {
		s.touchedDBs[name] = true
	}
}

// untouch starts the touched sets over once an encoding compared them:
// the next compares the touched keys alone.
func (s *State) untouch() {
	clear(s.touchedSteps)
	clear(s.touchedDBs)
	s.compareAll = false
}

// CheckRemoved returns a RemovedError for the first database cleanup
// emptied of replication before its cut-over.
func (s *State) CheckRemoved() error {
	for _, db := range slices.Sorted(maps.Keys(s.Removed)) {
		if !s.CutOver(db) {
			return &RemovedError{Database: db, At: s.Removed[db]}
		}
	}
	return nil
}

// State is the memory of one migration: the plan apply started with and
// how far it got. It holds no secret (placeholder passwords live in their
// own 0600 file).
type State struct {
	Version int `json:"version"`
	// Key identifies the migration: config.StateKey of the file and both
	// servers. A state of another key is never resumed.
	Key  string    `json:"key"`
	Plan plan.Plan `json:"plan"`
	// Steps holds the status of every step started, by step ID.
	Steps map[string]StepState `json:"steps"`
	// Databases holds per-database copy progress, by database name.
	Databases map[string]*DatabaseState `json:"databases"`
	// Roles are the role results of the cluster steps.
	Roles []RoleResult `json:"roles,omitempty"`
	// Freezes holds, by database, what a cut-over's write freeze changed
	// on the source: saved before the change, removed when an abort or
	// cleanup restores it, kept after the switch (the source stays frozen).
	Freezes map[string]*Freeze `json:"freezes,omitempty"`
	// OwnerGrants are the roles the target user granted itself membership
	// in to hand them objects; revoked when the migration completes.
	OwnerGrants []string `json:"owner_grants,omitempty"`
	// Removed holds, by database, when cleanup dropped the replication
	// objects of a database that had not cut over: the target has missed
	// the changes since, and only --reset-state migrates it again.
	Removed   map[string]time.Time `json:"removed,omitempty"`
	StartedAt time.Time            `json:"started_at"`
	UpdatedAt time.Time            `json:"updated_at"`
	// Seq is the number of the last save state.json holds: the journal's
	// records after it are the saves since (journal.go).
	Seq int64 `json:"seq,omitempty"`
	// touched, when tracking, are the steps and databases changed since
	// the last encoding (TrackChanges).
	tracking, compareAll bool
	touchedSteps         map[string]bool
	touchedDBs           map[string]bool
}

// StepState is one step's progress.
type StepState struct {
	Status   Status    `json:"status"`
	Message  string    `json:"message,omitempty"`
	Started  time.Time `json:"started,omitempty"`
	Finished time.Time `json:"finished,omitempty"`
}

// DatabaseState is one database's copy progress.
type DatabaseState struct {
	// Tables holds the copy status of each table, by "schema.table".
	Tables map[string]TableState `json:"tables,omitempty"`
	// CopyRuns counts the snapshots the copy was started under.
	CopyRuns int `json:"copy_runs"`
	// Bytes copied by finished tables.
	Bytes int64 `json:"bytes"`
	// Warnings are what the database's migration could not keep as on the
	// source (an object's owner): its status is "done with warnings".
	Warnings []string `json:"warnings,omitempty"`
	// Recopy are the tables (as the publication names them: a partition
	// tree by its root) whose interrupted copy the subscription's own table
	// synchronisation makes again, each under its own snapshot, while the
	// tables finished under the slot's snapshot are kept (DESIGN.md
	// section 5); RecopyBytes is their size on the source then.
	Recopy      []string `json:"recopy,omitempty"`
	RecopyBytes int64    `json:"recopy_bytes,omitempty"`
	// Added are the tables created on the source after the plan that the
	// copy found under its snapshot and copied too; the cut-over compares
	// them with the planned ones.
	Added []plan.TableRef `json:"added,omitempty"`
	// Gone are the planned tables the copy did not find under its
	// snapshot: dropped on the source after the plan. Nothing copies or
	// compares them.
	Gone []plan.TableRef `json:"gone,omitempty"`
	// PreDataNext is set when the schema had to be restored in chunks
	// (lock limits): one more than the archive entries restored so far
	// from the first on. PreDataDone are the ranges [from, to) of entries
	// after those that chunks restored too: chunks run on several sessions
	// and commit in any order their dependencies allow.
	PreDataNext int      `json:"pre_data_next,omitempty"`
	PreDataDone [][2]int `json:"pre_data_done,omitempty"`
}

// TableState is one table's copy progress.
type TableState struct {
	Status Status `json:"status"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
}

// RoleResult is what happened to one role, as aiven-db-migrate reports it.
type RoleResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // created, exists or failed
	Message string `json:"message,omitempty"`
}

// Done counts the steps of the plan that are done.
func (s *State) Done() int {
	n := 0
	for _, st := range s.Plan.Steps {
		if s.Steps[st.ID].Status == StatusDone {
			n++
		}
	}
	return n
}

// CopiedBytes sums the bytes the migration's copies have committed.
func (s *State) CopiedBytes() int64 {
	var n int64
	for _, d := range s.Databases {
		n += d.Bytes
	}
	return n
}

// ErrNoState means the state directory holds no migration yet.
var ErrNoState = errors.New("no state")

// Store keeps a migration's state: apply.Migration saves through it.
type Store interface {
	Load() (*State, error)
	// Save writes the whole state.
	Save(*State) error
	// Encode and Write are a save in two parts: the caller encodes under
	// its own lock and writes after it, so the fsync does not hold it.
	// Encode gives what changed since the previous Encode (or the whole
	// state); Write writes records in the order they were encoded, every
	// one of them: a record holds only its own changes.
	Encode(*State) (Record, error)
	Write(...Record) error
	LoadPasswords() (Passwords, error)
	SavePasswords(Passwords) error
	// Path is where the migration keeps a file of its own (a schema
	// archive) named name.
	Path(name string) string
}

// FileStore keeps State in <dir>/state.json and <dir>/state.journal
// (journal.go): the whole state as of one save, written atomically (a temp
// file, fsync, rename, fsync of the directory), and a line for each save
// after it with what that save changed, appended and fsynced. Save is safe
// to call from concurrent databases.
type FileStore struct {
	Dir string
	mu  sync.Mutex // the files, and jf
	// jf is the journal open for writing (journal.go), nil until a write.
	jf *journalFile
	// j is what the journal's next record is compared with, under encMu.
	encMu sync.Mutex
	j     journal
}

// Open makes the state directory (0700) when missing.
func (f *FileStore) Open() error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return os.Chmod(f.Dir, 0o700)
}

func (f *FileStore) path() string { return f.Path("state.json") }

// Path is name's path in the state directory.
func (f *FileStore) Path(name string) string { return filepath.Join(f.Dir, name) }

// Load reads the state and the journal's records after it, or returns
// ErrNoState.
func (f *FileStore) Load() (*State, error) {
	// A save that compacts the journal meanwhile replaces state.json: read
	// again, or the journal's records before it would be missed.
	for try := 0; ; try++ {
		s, base, err := f.loadBase()
		if err != nil {
			return nil, err
		}
		if err := f.replay(s); err != nil {
			return nil, err
		}
		if now, err := os.Stat(f.path()); err == nil && os.SameFile(base, now) || try == 2 {
			return s, nil
		}
	}
}

func (f *FileStore) loadBase() (*State, os.FileInfo, error) {
	file, err := os.Open(f.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, ErrNoState
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read state: %w", err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read state: %w", err)
	}
	b, err := io.ReadAll(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, fmt.Errorf("read state %s: %w", f.path(), err)
	}
	if s.Version != StateVersion {
		return nil, nil, fmt.Errorf("state %s has format %d; this pghaul reads %d", f.path(), s.Version, StateVersion)
	}
	return &s, info, nil
}

// Save writes s whole, emptying the journal.
func (f *FileStore) Save(s *State) error {
	f.encMu.Lock()
	r, err := f.encodeWhole(s)
	f.encMu.Unlock()
	if err != nil {
		return err
	}
	return f.Write(r)
}

// writeAtomic replaces dir/name with b so that a crash leaves the old or
// the new content, never a mix.
func writeAtomic(dir, name string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := writeSync(tmp, name, b); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

// writeSync writes b to f, fsyncs and closes it (closing it on failure
// too); name is the file as errors say it.
func writeSync(f *os.File, name string, b []byte) error {
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return f.Close()
}

// syncDir fsyncs a directory: the names made or renamed in it persist.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Reset removes the state (apply --reset-state), keeping nothing.
func (f *FileStore) Reset() error {
	f.encMu.Lock()
	f.j = journal{}
	f.encMu.Unlock()
	f.mu.Lock()
	f.closeJournal()
	f.mu.Unlock()
	for _, name := range []string{"state.json", journalName, "passwords.json"} {
		if err := os.Remove(filepath.Join(f.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	dumps, _ := filepath.Glob(filepath.Join(f.Dir, "*.dump"))
	for _, d := range dumps {
		os.Remove(d)
	}
	return nil
}

// Passwords are the placeholder passwords set on new roles, by role name,
// kept 0600 beside the state so a rerun sets the same ones.
type Passwords map[string]string

// LoadPasswords reads the placeholder passwords (empty when none).
func (f *FileStore) LoadPasswords() (Passwords, error) {
	b, err := os.ReadFile(filepath.Join(f.Dir, "passwords.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Passwords{}, nil
	}
	if err != nil {
		return nil, err
	}
	p := Passwords{}
	return p, json.Unmarshal(b, &p)
}

// SavePasswords writes the placeholder passwords with mode 0600.
func (f *FileStore) SavePasswords(p Passwords) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(f.Dir, "passwords.json", b, 0o600)
}

// CopyNote says, for a database whose copy under a slot's snapshot was
// interrupted, what a rerun keeps and what it has the subscription copy
// again; and once the rerun decided, what it left to the subscription.
// It is "" for any other database (and for the dump method, whose copy
// restarts or, with --resume-tables, keeps tables without a snapshot).
func (s *State) CopyNote(db string) string {
	d := s.Databases[db]
	if d == nil || s.Plan.DatabaseNames(db).Slot == "" {
		return ""
	}
	if len(d.Recopy) > 0 {
		return fmt.Sprintf("copied again by the subscription, each under its own snapshot (%s): %s", config.ByteSize(d.RecopyBytes), strings.Join(d.Recopy, ", "))
	}
	var kept, again []string
	for _, st := range s.Plan.Steps {
		if st.Kind != plan.StepCopyData || st.Params.Database != db || s.Steps[st.ID].Status == StatusDone {
			continue
		}
		for _, t := range st.Params.Tables {
			if d.Tables[t.String()].Status == StatusDone {
				kept = append(kept, t.String())
			} else {
				again = append(again, t.String())
			}
		}
	}
	if len(kept) == 0 || len(again) == 0 {
		return ""
	}
	return fmt.Sprintf("interrupted: %d of %d tables kept (copied under the slot's snapshot); to be copied again by the subscription unless the rerun cannot resume: %s",
		len(kept), len(kept)+len(again), strings.Join(again, ", "))
}
