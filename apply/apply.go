package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// Tools are the external programs a migration runs.
type Tools struct {
	PGDump, PGRestore string
}

// Migration carries out a plan, checkpointing every step in State.
type Migration struct {
	Config         *config.Config
	Source, Target *pg.Endpoint
	Tools          Tools
	Store          state.Store
	State          *state.State
	// Events receives progress; it must not block for long.
	Events func(Event)
	Now    func() time.Time
	Log    *slog.Logger
	// ResumeTables keeps a database's finished tables when its copy restarts
	// (consistent only if the source took no writes meanwhile).
	ResumeTables bool
	// ProgressEvery is the interval of CopyProgress events (0: 2s).
	ProgressEvery time.Duration
	// LagPoll is how often waits poll the servers (0: 2s; a test knob).
	LagPoll time.Duration

	passwords state.Passwords
	// copyLimit paces the bytes every COPY stream of the copy moves
	// (parallel.max_rate), nil without a limit.
	copyLimit *rate.Limiter
	// bootstrapTurn is held by the database whose turn it is on the
	// bootstrap sessions (dbRun.sourceDBAndTarget).
	bootstrapTurn chan struct{}
	// mu guards State, which concurrent databases update, and saved.
	mu sync.Mutex
	// saved is when the state was last encoded to be written, encoded how
	// many encodings there were, pending the records encoded and not yet
	// taken to be written (under mu); written is the newest encoding on
	// disk, under writeMu.
	saved            time.Time
	encoded, written int
	pending          []state.Record
	// flush saves what saveSoon left if no save does first (under mu).
	flush   *time.Timer
	writeMu sync.Mutex
	// own are the backend PIDs of the cut-overs' sessions on the source,
	// which a write freeze of any database must not end (a cut-over's
	// session outside its database may sit in another one's); under mu.
	own map[uint32]bool
}

// StepError is a step that failed.
type StepError struct {
	Step plan.Step
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %s: %v", e.Step.ID, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Run executes every step not yet done: the cluster steps in order, then
// the databases, up to parallel.databases at once, each database's steps
// in order. A failed database does not stop the others; Run returns the
// failures joined. On cancellation it returns ctx's error once every
// running step has stopped and its state is saved.
func (m *Migration) Run(ctx context.Context) error {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	pw, err := m.Store.LoadPasswords()
	if err != nil {
		return fmt.Errorf("read placeholder passwords: %w", err)
	}
	m.passwords = pw
	m.copyLimit = copyLimiter(m.Config.Parallel.MaxRate)
	if m.State.Databases == nil {
		m.State.Databases = map[string]*state.DatabaseState{}
	}
	if m.State.Steps == nil {
		m.State.Steps = map[string]state.StepState{}
	}
	// Saves compare the steps and databases touched since the last one:
	// setStep, dbState's creation and updateDB touch them.
	m.State.TrackChanges()
	err = m.run(ctx)
	if serr := m.saveWhole(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func (m *Migration) run(ctx context.Context) error {
	cluster, perDB, order := plan.GroupSteps(m.State.Plan.Steps)
	for _, st := range cluster {
		if err := m.runStep(ctx, st, m.clusterStep); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
	if err := m.runDatabases(ctx, perDB, order); err != nil {
		return err
	}
	return m.revokeOwnerGrants(ctx)
}

// runDatabases runs parallel.databases databases at once, the largest
// first: the longest one starts as early as it can.
func (m *Migration) runDatabases(ctx context.Context, perDB map[string][]plan.Step, order []string) error {
	largestFirst(order, m.State.Plan.Databases)
	m.bootstrapTurn = make(chan struct{}, 1)
	sem := make(chan struct{}, m.Config.Parallel.Databases)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, name := range order {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			d := &dbRun{m: m, name: name, steps: perDB[name]}
			if err := d.run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// largestFirst sorts the database names by the bytes the plan copies,
// largest first, keeping the plan's order among equals.
func largestFirst(order []string, dbs []plan.DatabasePlan) {
	size := map[string]int64{}
	for _, db := range dbs {
		size[db.Name] = db.Bytes
	}
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(size[b], size[a]) })
}

// runStep runs fn for st unless the state says it is done, recording the
// outcome. The state is saved before and after, so a crash at any instant
// leaves the step pending or running, never falsely done.
func (m *Migration) runStep(ctx context.Context, st plan.Step, fn func(context.Context, plan.Step) (string, error)) error {
	if m.stepStatus(st.ID) == state.StatusDone && !plan.IsCondition(st.Kind) {
		m.emit(StepSkipped{Step: st, Reason: "done in an earlier run"})
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := m.Now()
	m.setStep(st.ID, state.StepState{Status: state.StatusRunning, Started: start})
	save := m.saveSoon
	if st.Kind == plan.StepRestorePreData {
		// A rerun reads this one (checkNotAnothers): on disk before the
		// restore begins.
		save = m.save
	}
	if err := save(); err != nil {
		return err
	}
	m.emit(StepStarted{Step: st})
	crashPoint("before:" + string(st.Kind))
	msg, err := fn(ctx, st)
	if err == nil {
		err = failPoint("step:" + st.ID)
	}
	if err != nil {
		if ctx.Err() != nil {
			m.setStep(st.ID, state.StepState{Status: state.StatusPending, Message: "interrupted"})
			if err := m.save(); err != nil {
				return errors.Join(ctx.Err(), err)
			}
			return ctx.Err()
		}
		status := state.StatusFailed
		var wait *WaitTimeoutError
		if errors.As(err, &wait) {
			status = state.StatusWaiting
		}
		m.setStep(st.ID, state.StepState{Status: status, Message: pg.Describe(err), Started: start, Finished: m.Now()})
		m.emit(StepFailed{Step: st, Err: err})
		// The step's failure comes first; a state that could not record it
		// is said too, not dropped.
		if serr := m.save(); serr != nil {
			err = errors.Join(err, serr)
		}
		return &StepError{Step: st, Err: err}
	}
	crashPoint("after:" + string(st.Kind))
	m.setStep(st.ID, state.StepState{Status: state.StatusDone, Message: msg, Started: start, Finished: m.Now()})
	if err := m.save(); err != nil {
		return err
	}
	m.emit(StepDone{Step: st, Took: m.Now().Sub(start), Message: msg})
	return nil
}

func (m *Migration) stepStatus(id string) state.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.State.Steps[id].Status
}

func (m *Migration) setStep(id string, s state.StepState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.State.Steps[id] = s
	m.State.TouchStep(id)
}

// dbState returns the database's copy state, creating it.
func (m *Migration) dbState(name string) *state.DatabaseState {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.State.Databases[name]
	if d == nil {
		d = &state.DatabaseState{Tables: map[string]state.TableState{}}
		m.State.Databases[name] = d
		m.State.TouchDatabase(name)
	}
	if d.Tables == nil {
		d.Tables = map[string]state.TableState{}
		m.State.TouchDatabase(name)
	}
	return d
}

// updateDB changes database db's state (f, on dbState's pointer) under
// the state's lock, and touches it for the next save.
func (m *Migration) updateDB(db string, f func()) {
	m.update(func() {
		f()
		m.State.TouchDatabase(db)
	})
}

// saveDBChange is saveChange for a change to database db's state.
func (m *Migration) saveDBChange(db string, change func()) error {
	return m.saveChange(func() {
		change()
		m.State.TouchDatabase(db)
	})
}

// warnDatabase records a warning of database db once.
func (m *Migration) warnDatabase(db, w string) {
	d := m.dbState(db)
	m.updateDB(db, func() {
		if !slices.Contains(d.Warnings, w) {
			d.Warnings = append(d.Warnings, w)
		}
	})
}

// update changes the state under its lock.
func (m *Migration) update(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

func (m *Migration) save() error { return m.saveChange(func() {}) }

// startSaveDelay is how long saveSoon leaves a change unsaved when no
// other save comes.
const startSaveDelay = time.Second

// saveSoon leaves the state's change to the next save, or saves it
// startSaveDelay later when none comes first: for a step's start, which
// no rerun reads but restore_pre_data's (a crash before the write leaves
// the step pending instead of running, which a rerun treats the same).
// pghaul status sees the start within startSaveDelay. It does not encode
// now: step starts were half of the encodings, each of which compared
// every database's state then (100 databases: 0.31 of pghaul's 1.5 CPU-s
// went to the comparisons, 0.22 after this change).
func (m *Migration) saveSoon() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flush != nil {
		return nil
	}
	var t *time.Timer
	t = time.AfterFunc(startSaveDelay, func() {
		m.mu.Lock()
		if m.flush != t {
			m.mu.Unlock()
			return // saveWhole stopped it
		}
		m.flush = nil
		w, err := m.encodeLocked()
		m.mu.Unlock()
		if err := m.write(w, err); err != nil {
			m.Log.Warn("save state", "error", err)
		}
	})
	m.flush = t
	return nil
}

// saveChange makes change to the state under its lock and saves the state
// with it in the same hold.
func (m *Migration) saveChange(change func()) error {
	m.mu.Lock()
	change()
	w, err := m.encodeLocked()
	m.mu.Unlock()
	return m.write(w, err)
}

// stateWrite is the number of an encoding: write returns once it is on
// disk.
type stateWrite struct{ seq int }

// encodeLocked, with m.mu held, encodes the state's changes (a record of
// the journal, state.Store) for write, which runs after m.mu is released:
// the other databases' and workers' updates do not wait for the file's
// fsync (a worker finishing a table waited for it up to once a second).
func (m *Migration) encodeLocked() (stateWrite, error) {
	m.State.UpdatedAt = m.Now().UTC()
	r, err := m.Store.Encode(m.State)
	if err != nil {
		return stateWrite{}, err
	}
	m.encoded++
	m.saved = m.Now()
	m.pending = append(m.pending, r)
	return stateWrite{seq: m.encoded}, nil
}

// write returns once encoding w is on disk: it writes every record
// encoded and not yet written, in order, unless a write since w's encoding
// took them (records hold their own changes only: none is skipped).
func (m *Migration) write(w stateWrite, err error) error {
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	if w.seq <= m.written {
		return nil
	}
	m.mu.Lock()
	recs, upto := m.pending, m.encoded
	m.pending = nil
	m.mu.Unlock()
	if err := m.Store.Write(recs...); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	m.written = upto
	return nil
}

// saveWhole writes the whole state, emptying the journal: at the end of a
// run, state.json alone holds it (jq reads it).
func (m *Migration) saveWhole() error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	if m.flush != nil {
		m.flush.Stop()
		m.flush = nil
	}
	m.State.UpdatedAt = m.Now().UTC()
	m.pending = nil
	m.encoded++
	upto := m.encoded
	err := m.Store.Save(m.State)
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	m.written = upto
	return nil
}

// progressSaveEvery is how often finished tables are written to the state
// while a copy runs. The state names the whole plan and every table, so
// writing it (marshal, fsync, rename) once per table made a database of
// 1000 small tables spend seconds on it. What a crash loses by the wait is
// safe: a rerun copies a database again from empty, and with
// --resume-tables a table not recorded as done is truncated and copied
// again; the step's end writes the state in any case.
const progressSaveEvery = time.Second

// saveProgress writes the state unless it was written within
// progressSaveEvery.
func (m *Migration) saveProgress() error {
	m.mu.Lock()
	if m.Now().Sub(m.saved) < progressSaveEvery {
		m.mu.Unlock()
		return nil
	}
	w, err := m.encodeLocked()
	m.mu.Unlock()
	return m.write(w, err)
}

func (m *Migration) emit(e Event) {
	if m.Events != nil {
		m.Events(e)
	}
}

// copyLimiter is the limiter of parallel.max_rate bytes per second, or
// nil. Its burst, what may pass at once, is an eighth of a second's worth
// (16 KiB to 256 KiB): the pace stays even, and a write of the relay's
// 1 MiB passes in pieces.
func copyLimiter(maxRate *config.ByteSize) *rate.Limiter {
	if maxRate == nil || *maxRate <= 0 {
		return nil
	}
	burst := min(max(int(*maxRate/8), 16<<10), 256<<10)
	return rate.NewLimiter(rate.Limit(*maxRate), burst)
}
