package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/plan"
)

// stderr is where logs and the live view go (bound for commands).
type stderr struct{ io.Writer }

// isTerminal reports whether w is a terminal, for the live view.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// logFileName is where apply on a terminal writes its log lines, in the
// state directory.
const logFileName = "apply.log"

// liveView is apply on a terminal, in the way of `docker pull`: a line per
// database saying what it does now (its step, the copy's tables and bytes,
// the lag it waits out), a line per table being copied (bytes, rate, time
// left), and, above them, one line per step finished or failed and per
// notice. Log lines go to apply.log in the state directory (and to the
// terminal too with -d). It uses mpb for the redraw: cursor control and
// concurrent lines are its job.
type liveView struct {
	progress *mpb.Progress
	width    int
	mu       sync.Mutex
	dbs      map[string]*dbState
	tables   map[string]*tableState
	// nameWidth pads database names so the lines align; last is each
	// database's last step, after which its line says it is done.
	nameWidth int
	last      map[string]plan.Step
	// limit says the copy's rate limit, when there is one.
	limit   string
	logFile *os.File
	// log writes every event as a log line too, to apply.log.
	log    func(apply.Event)
	closed sync.Once
}

// dbState and tableState are read by mpb's render goroutine without the
// view's lock (which Event holds while it asks mpb for a new line): their
// changing parts are atomic.
type dbState struct {
	bar  *mpb.Bar
	line atomic.Pointer[[2]string] // step, detail
}

func (d *dbState) set(step, detail string) { d.line.Store(&[2]string{step, detail}) }
func (d *dbState) detail(detail string)    { d.set(d.line.Load()[0], detail) }

type tableState struct {
	bar   *mpb.Bar
	name  string
	size  int64
	bytes atomic.Int64
	start time.Time
}

// newLiveView returns the view and the logger apply logs to: the state
// directory's apply.log, and with debug the terminal as well.
func newLiveView(w io.Writer, p *plan.Plan, stateDir string, maxRate *config.ByteSize, width int, debug bool) (*liveView, *slog.Logger, error) {
	f, err := os.OpenFile(filepath.Join(stateDir, logFileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open the log file: %w", err)
	}
	progress := mpb.New(mpb.WithOutput(w), mpb.WithWidth(width), mpb.WithAutoRefresh(), mpb.WithRefreshRate(200*time.Millisecond))
	handlers := []slog.Handler{slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})}
	if debug {
		handlers = append(handlers, slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	v := &liveView{progress: progress, width: width, dbs: map[string]*dbState{}, tables: map[string]*tableState{}, logFile: f,
		nameWidth: len("cluster"), last: map[string]plan.Step{}}
	if maxRate != nil {
		v.limit = fmt.Sprintf(" (at most %s/s in all)", *maxRate)
	}
	for _, st := range p.Steps {
		if st.Scope != plan.ClusterScope {
			v.last[st.Params.Database] = st
			v.nameWidth = max(v.nameWidth, utf8.RuneCountInString(st.Params.Database))
		}
	}
	log := slog.New(slog.NewMultiHandler(handlers...))
	v.log = eventLogger(log)
	return v, log, nil
}

// Event updates the lines; finished steps and notices print above them.
// Every event is also a line of apply.log.
func (v *liveView) Event(e apply.Event) {
	v.log(e)
	v.mu.Lock()
	defer v.mu.Unlock()
	switch e := e.(type) {
	case apply.StepStarted:
		if e.Step.Scope != plan.ClusterScope {
			v.db(e.Step.Params.Database).set(string(e.Step.Kind), "")
		}
	case apply.StepDone:
		v.println(stepLine("done", e.Step, e.Message, e.Took, v.nameWidth, v.width))
		if db := e.Step.Params.Database; e.Step.Scope != plan.ClusterScope {
			switch {
			case v.last[db].ID != e.Step.ID:
				v.db(db).detail("")
			case e.Step.Kind == plan.StepWaitForLag:
				v.db(db).set("replicating", "caught up; replication left running")
			default:
				v.db(db).set("done", "")
			}
		}
	case apply.StepFailed:
		v.println(stepLine("FAILED", e.Step, e.Err.Error(), 0, v.nameWidth, v.width))
		if e.Step.Scope != plan.ClusterScope {
			v.db(e.Step.Params.Database).set("failed", string(e.Step.Kind))
		}
	case apply.Notice:
		v.println(fit("note    "+e.Message, v.width))
	case apply.TableStarted:
		// Its line appears at the first progress report: a table copied
		// in less time never shows.
		v.tables[e.Database+"/"+e.Table.String()] = &tableState{name: e.Table.String(), size: e.Size, start: time.Now()}
	case apply.CopyProgress:
		for table, bytes := range e.Active {
			if t := v.tables[e.Database+"/"+table]; t != nil {
				t.bytes.Store(bytes)
				if t.bar == nil {
					v.tableBar(t)
				}
			}
		}
		v.db(e.Database).detail(fmt.Sprintf("%d of %d tables, %s%s", e.Done, e.Total, config.ByteSize(e.Bytes), v.limit))
	case apply.TableCopied:
		key := e.Database + "/" + e.Table.String()
		if t := v.tables[key]; t != nil {
			if t.bar != nil {
				t.bar.Abort(true) // gone from the view
			}
			delete(v.tables, key)
		}
	case apply.LagSample:
		worker := "apply worker starting"
		if e.Running {
			worker = "apply worker running"
		}
		v.db(e.Database).detail(fmt.Sprintf("lag %s (at most %s), %s", config.ByteSize(e.Lag), config.ByteSize(e.Max), worker))
	case apply.SyncSample:
		v.db(e.Database).detail(fmt.Sprintf("the subscription copies: %d of %d tables left", e.Pending, e.Tables))
	}
}

// tableBar gives a table being copied its line.
func (v *liveView) tableBar(t *tableState) {
	width := v.width
	t.bar = v.progress.New(0, mpb.NopStyle(),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			return tableLine(t.name, t.bytes.Load(), t.size, time.Since(t.start), width)
		})))
}

// db is a database's line, made on its first event.
func (v *liveView) db(name string) *dbState {
	d := v.dbs[name]
	if d == nil {
		d = &dbState{}
		d.set("starting", "")
		width, pad := v.width, v.nameWidth
		d.bar = v.progress.New(0, mpb.NopStyle(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				l := d.line.Load()
				return dbLine(name, l[0], l[1], pad, width)
			})))
		v.dbs[name] = d
	}
	return d
}

// println prints a line above the live lines.
func (v *liveView) println(s string) { fmt.Fprintln(v.progress, s) }

// Close removes the live lines, waits for the last redraw and closes the
// log file.
func (v *liveView) Close() {
	v.closed.Do(func() {
		v.mu.Lock()
		for _, t := range v.tables {
			if t.bar != nil {
				t.bar.Abort(true)
			}
		}
		for _, d := range v.dbs {
			d.bar.Abort(true)
		}
		v.mu.Unlock()
		v.progress.Wait() // the last render flushes the lines printed above
		v.logFile.Close()
	})
}

// stepLine is a finished (or failed) step: "done    shop  copy_data:
// 5 tables, 16.3 MiB (275ms)".
func stepLine(verdict string, st plan.Step, message string, took time.Duration, pad, width int) string {
	where := "cluster"
	if st.Scope != plan.ClusterScope {
		where = st.Params.Database
	}
	s := fmt.Sprintf("%-7s %-*s  %s", verdict, pad, where, st.Kind)
	if message != "" {
		s += ": " + message
	}
	if took > 0 {
		s += fmt.Sprintf(" (%s)", took.Round(time.Millisecond))
	}
	return fit(s, width)
}

// dbLine is a database's live line: "shop            copy_data  3 of 5
// tables, 12.0 MiB".
func dbLine(name, step, detail string, pad, width int) string {
	s := fmt.Sprintf("%-*s  %-18s  %s", pad, name, step, detail)
	return fit(strings.TrimRight(s, " "), width)
}

// tableLine is a table being copied: its bytes of its planned size, the
// rate, and the time left at that rate.
func tableLine(name string, bytes, size int64, took time.Duration, width int) string {
	s := fmt.Sprintf("  %-28s %s", name, config.ByteSize(bytes))
	if size > 0 {
		s += " of " + config.ByteSize(size).String()
	}
	if secs := took.Seconds(); secs >= 1 && bytes > 0 {
		rate := float64(bytes) / secs
		s += fmt.Sprintf("  %s/s", config.ByteSize(int64(rate)))
		if size > bytes {
			s += fmt.Sprintf("  %s left", (time.Duration(float64(size-bytes)/rate) * time.Second).Round(time.Second))
		}
	}
	return fit(s, width)
}

// fit cuts s to width-1 characters (the last column of a terminal wraps),
// marking the cut.
func fit(s string, width int) string {
	if width <= 1 || utf8.RuneCountInString(s) < width {
		return s
	}
	r := []rune(s)
	return string(r[:width-2]) + "…"
}
