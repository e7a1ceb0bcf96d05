package apply

import (
	"time"

	"github.com/pghaul/pghaul/plan"
)

// Event is something apply reports while it runs; the CLI renders events
// as log lines or a live view. apply itself never prints.
type Event interface{ event() }

// StepStarted reports a step beginning.
type StepStarted struct{ Step plan.Step }

// StepDone reports a step finished, with what it did.
type StepDone struct {
	Step    plan.Step
	Took    time.Duration
	Message string
}

// StepSkipped reports a step found done already (resume).
type StepSkipped struct {
	Step   plan.Step
	Reason string
}

// StepFailed reports a step that failed; its database stops, others go on.
type StepFailed struct {
	Step plan.Step
	Err  error
}

// TableStarted reports a table's copy beginning.
type TableStarted struct {
	Database string
	Table    plan.TableRef
	// Size is the table's size on the source (heap and TOAST): what the
	// copy will move, roughly.
	Size int64
}

// TableCopied reports one table's copy committed.
type TableCopied struct {
	Database    string
	Table       plan.TableRef
	Rows, Bytes int64
	Took        time.Duration
	// Format is the COPY format it travelled in: binary or text.
	Format string
}

// IndexesBuilt reports a table's indexes built right after its copy,
// while other tables still copy.
type IndexesBuilt struct {
	Database string
	Table    plan.TableRef
	Count    int
	Took     time.Duration
}

// CopyProgress reports the bytes streamed so far by the active tables of
// a database, every few seconds.
type CopyProgress struct {
	Database string
	Active   map[string]int64 // bytes so far, by "schema.table"
	Done     int
	Total    int
	Bytes    int64
}

// LagSample reports the replication lag of a database while apply waits.
type LagSample struct {
	Database string
	Lag, Max int64
	// Running reports the subscription's apply worker seen on the target.
	Running bool
}

// SyncSample reports the subscription's own table copy while apply waits.
type SyncSample struct {
	Database        string
	Tables, Pending int
}

// Notice is a line worth telling the operator ("restarting the copy of
// shop under a new snapshot").
type Notice struct{ Message string }

func (StepStarted) event()  {}
func (StepDone) event()     {}
func (StepSkipped) event()  {}
func (StepFailed) event()   {}
func (TableStarted) event() {}
func (TableCopied) event()  {}
func (IndexesBuilt) event() {}
func (CopyProgress) event() {}
func (Notice) event()       {}
func (LagSample) event()    {}
func (SyncSample) event()   {}
