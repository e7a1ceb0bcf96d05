package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/pghaul/pghaul/apply"
)

// stderr is where logs and the live view go (bound for commands).
type stderr struct{ io.Writer }

// isTerminal reports whether w is a terminal, for the live view.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// liveView shows one line per table being copied (bytes so far and rate)
// under the log lines, on a terminal. It uses mpb rather than a
// hand-written redraw loop: cursor control and concurrent bars are its job.
type liveView struct {
	progress *mpb.Progress
	log      *slog.Logger
	next     func(apply.Event)
	mu       sync.Mutex
	bars     map[string]*mpb.Bar
	closed   sync.Once
}

// newLiveView returns the view and a logger writing above its bars.
func newLiveView(w io.Writer, format string, debug bool) (*liveView, *slog.Logger) {
	p := mpb.New(mpb.WithOutput(w), mpb.WithAutoRefresh())
	log := newLogger(p, debug, format)
	return &liveView{progress: p, log: log, next: eventLogger(log), bars: map[string]*mpb.Bar{}}, log
}

// Event updates the bars; other events become log lines.
func (v *liveView) Event(e apply.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch e := e.(type) {
	case apply.TableStarted:
		key := e.Database + "/" + e.Table.String()
		v.bars[key] = v.progress.New(0, mpb.NopStyle(), mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("%s %s", e.Database, e.Table), decor.WC{W: 40, C: decor.DindentRight})),
			mpb.AppendDecorators(decor.CurrentKibiByte("% .1f"), decor.Name("  "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
	case apply.CopyProgress:
		for table, bytes := range e.Active {
			if b := v.bars[e.Database+"/"+table]; b != nil {
				b.SetCurrent(bytes)
			}
		}
	case apply.TableCopied:
		key := e.Database + "/" + e.Table.String()
		if b := v.bars[key]; b != nil {
			b.SetCurrent(e.Bytes)
			b.SetTotal(-1, true)
			delete(v.bars, key)
		}
		v.next(e)
	default:
		v.next(e)
	}
}

// Close removes the remaining bars and waits for the last redraw.
func (v *liveView) Close() {
	v.closed.Do(func() {
		v.mu.Lock()
		for _, b := range v.bars {
			b.Abort(true)
		}
		v.mu.Unlock()
		v.progress.Shutdown()
	})
}
