package table

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFitsTheWidth: a table of long messages and an unbreakable URI is
// no wider than asked, keeps every word of its cells, and keeps its
// headers whole.
func TestFitsTheWidth(t *testing.T) {
	header := []string{"SEVERITY", "CODE", "FINDING"}
	rows := [][]string{
		{"blocker", "subscription-connection-refused", "target: the target server cannot connect to the source for the subscription (postgres://migrator:***@db.example.com:5432/postgres?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Froot.crt)\nfix: set source.uri_from_target to an address, credentials and CA file the target server has"},
		{"warning", "no-write-freeze", "source: replication.write_freeze is false\nfix: set replication.write_freeze: true"},
	}
	for _, width := range []int{60, 80, 100, 160} {
		var b bytes.Buffer
		if err := Write(&b, width, header, rows); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("width %d: a line of %d characters:\n%s", width, n, out)
				break
			}
		}
		for _, h := range header {
			if !strings.Contains(out, " "+h+" ") {
				t.Errorf("width %d: header %s is not whole:\n%s", width, h, out)
			}
		}
		whole := []string{"credentials"}
		if width >= 80 {
			whole = append(whole, "subscription-connection-refused", "replication.write_freeze:")
		}
		for _, word := range whole {
			if !strings.Contains(out, word) {
				t.Errorf("width %d: %q is not whole:\n%s", width, word, out)
			}
		}
	}
}

func TestWrap(t *testing.T) {
	for _, tt := range []struct {
		s     string
		width int
		want  string
	}{
		{"a bb ccc", 4, "a bb\nccc"},
		{"abcdefghij", 4, "abcd\nefgh\nij"},
		{"x abcdefghij y", 4, "x\nabcd\nefgh\nij y"},
		{"one\ntwo three", 20, "one\ntwo three"},
		{"", 5, ""},
	} {
		if got := Wrap(tt.s, tt.width); got != tt.want {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
}
