package apply

import (
	"slices"
	"testing"
)

func TestSetClause(t *testing.T) {
	tests := map[string]string{
		"work_mem=8MB":                   `"work_mem" TO '8MB'`,
		`search_path="$user", public`:    `"search_path" TO '$user', 'public'`,
		`search_path=sales, "Odd, name"`: `"search_path" TO 'sales', 'Odd, name'`,
		"application_name=it's":          `"application_name" TO 'it''s'`,
		"search_path=":                   `"search_path" TO ''`,
	}
	for in, want := range tests {
		if got := setClause(in); got != want {
			t.Errorf("setClause(%q) = %s, want %s", in, got, want)
		}
	}
	if got := splitGUCList(`a, "b""c", d`); !slices.Equal(got, []string{"a", `b"c`, "d"}) {
		t.Errorf("splitGUCList = %q", got)
	}
}
