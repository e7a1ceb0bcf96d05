package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
