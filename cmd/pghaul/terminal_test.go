package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pghaul/pghaul/apply"
	"github.com/pghaul/pghaul/plan"
)

// TestTerminalCapture reads what a terminal 80 and 100 columns wide showed
// of `pghaul demo` (scripts/capture-terminal keeps it in
// testdata/terminal): no line is wider than the pane, no escape sequence
// is left over, no log line reached the terminal (they go to apply.log),
// and apply's live view showed its step lines and a copy under way.
func TestTerminalCapture(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/terminal/*.txt")
	if len(files) < 4 {
		t.Fatalf("%d captures in testdata/terminal; run scripts/capture-terminal", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		width, _ := strconv.Atoi(strings.Split(strings.TrimSuffix(name, ".txt"), "-")[1])
		text := string(b)
		for i, l := range strings.Split(text, "\n") {
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("%s:%d: %d characters in a %d-column pane: %q", name, i+1, n, width, l)
			}
		}
		for _, bad := range []string{"\x1b", "level=INFO", "level=WARN", "[1A", "[J"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s holds %q", name, bad)
			}
		}
		if strings.HasPrefix(name, "demo-") {
			for _, want := range []string{"applying; log lines go to", "done    shop", "copy_data: 5 tables", "demo-exit-0"} {
				if !strings.Contains(text, want) {
					t.Errorf("%s does not show %q", name, want)
				}
			}
		}
		if strings.HasPrefix(name, "apply-") && !regexp.MustCompile(`shop +copy_data +\d+ of 5 tables, `).MatchString(text) {
			t.Errorf("%s does not show shop's copy under way", name)
		}
	}
}

// TestLiveViewLines: the live view's lines fit the terminal, however long
// what they say.
func TestLiveViewLines(t *testing.T) {
	st := plan.Step{ID: "db:shop/copy-data", Kind: plan.StepCopyData, Scope: "database shop", Params: plan.Params{Database: "shop"}}
	long := strings.Repeat("a very long message ", 20)
	for _, width := range []int{40, 80, 100} {
		for _, l := range []string{
			stepLine("done", st, long, 1500*time.Millisecond, 12, width),
			dbLine("a database with a long name", "restore_post_data", long, 12, width),
			tableLine("public.a_table_with_a_long_name_indeed", 5<<20, 20<<20, 2*time.Second, width),
		} {
			if n := utf8.RuneCountInString(l); n >= width {
				t.Errorf("width %d: a line of %d characters: %q", width, n, l)
			}
		}
	}
	if got := tableLine("public.orders", 5<<20, 20<<20, 2*time.Second, 100); !strings.Contains(got, "5.0 MiB of 20.0 MiB") || !strings.Contains(got, "2.5 MiB/s") || !strings.Contains(got, "6s left") {
		t.Errorf("tableLine = %q", got)
	}
}

// TestLiveViewLogsEveryEvent: on a terminal the events are lines of the
// view and, every one, lines of apply.log in the state directory.
func TestLiveViewLogsEveryEvent(t *testing.T) {
	dir := t.TempDir()
	var term bytes.Buffer
	st := plan.Step{ID: "db:shop/copy-data", Kind: plan.StepCopyData, Scope: "database shop", Params: plan.Params{Database: "shop"}}
	v, _, err := newLiveView(&term, &plan.Plan{Steps: []plan.Step{st}}, dir, nil, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	v.Event(apply.StepStarted{Step: st})
	v.Event(apply.TableCopied{Database: "shop", Table: plan.TableRef{Schema: "public", Name: "orders"}, Rows: 3, Bytes: 42})
	v.Event(apply.StepDone{Step: st, Message: "1 table, 42 B", Took: time.Second})
	v.Close()
	b, err := os.ReadFile(filepath.Join(dir, logFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`msg="step started" step=db:shop/copy-data`, `msg="table copied" database=shop table=public.orders`, `msg="step done" step=db:shop/copy-data`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("apply.log lacks %s:\n%s", want, b)
		}
	}
	if !strings.Contains(term.String(), "done    shop     copy_data: 1 table, 42 B (1s)") {
		t.Errorf("the terminal lacks the step's line:\n%q", term.String())
	}
}
