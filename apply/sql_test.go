package apply

import (
	"slices"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/internal/pgdump"
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

// TestDecodesAcrossDDL: the minor releases with the decoding fix, and
// none of 12.
func TestDecodesAcrossDDL(t *testing.T) {
	for version, want := range map[int]bool{120022: false, 130020: false, 130021: true, 140017: false, 140018: true,
		150012: false, 150013: true, 150018: true, 160008: false, 160009: true, 170004: false, 170005: true, 180000: true} {
		if got := decodesAcrossDDL(version); got != want {
			t.Errorf("decodesAcrossDDL(%d) = %v, want %v", version, got, want)
		}
	}
}

// TestExistingQuery: post-data reads the catalogs of the kinds it restores,
// and none when it restores no kind a catalog shows.
func TestExistingQuery(t *testing.T) {
	entries := []pgdump.Entry{{Kind: "INDEX"}, {Kind: "FK CONSTRAINT"}, {Kind: "COMMENT"}}
	q := existingQuery(entries)
	for kind, part := range existingSQL {
		if want := kind == "INDEX" || kind == "CONSTRAINT"; strings.Contains(q, part) != want {
			t.Errorf("the query for %v holds the part for %s: %t", entries, kind, !want)
		}
	}
	if q := existingQuery([]pgdump.Entry{{Kind: "ACL"}, {Kind: "COMMENT"}}); q != "" {
		t.Errorf("the query for no resumable kind is %q", q)
	}
	for kind := range resumable {
		if existingQuery([]pgdump.Entry{{Kind: kind}}) == "" {
			t.Errorf("the resumable kind %s is not read", kind)
		}
	}
}
