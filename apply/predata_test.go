package apply

import (
	"reflect"
	"testing"
)

func TestDoneRanges(t *testing.T) {
	for _, c := range []struct {
		done   string
		next   int
		ranges [][2]int
	}{
		{"", 0, nil},
		{"...", 0, nil},
		{"xxx", 3, nil},
		{"xx.x", 2, [][2]int{{3, 4}}},
		{"x..xx.x.", 1, [][2]int{{3, 5}, {6, 7}}},
		{".xxx", 0, [][2]int{{1, 4}}},
	} {
		done := make([]bool, len(c.done))
		for i, ch := range c.done {
			done[i] = ch == 'x'
		}
		next, ranges := doneRanges(done)
		if next != c.next || !reflect.DeepEqual(ranges, c.ranges) {
			t.Errorf("doneRanges(%s) = %d, %v; want %d, %v", c.done, next, ranges, c.next, c.ranges)
		}
	}
}
