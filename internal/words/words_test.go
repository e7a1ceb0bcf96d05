package words

import "testing"

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int
		noun string
		want string
	}{
		{1, "table", "1 table"}, {0, "table", "0 tables"}, {2, "index", "2 indexes"}, {3, "entry", "3 entries"},
		{2, "key", "2 keys"}, {1, "statement", "1 statement"}, {5, "large object", "5 large objects"},
		{2, "match", "2 matches"}, {2, "class", "2 classes"}, {7, "job", "7 jobs"},
	} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}
