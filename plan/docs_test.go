package plan

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestEveryCodeDocumented keeps docs/findings.md and the checks in step:
// every code a check can emit has a section, and every section a check.
func TestEveryCodeDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "findings.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^## ([a-z-]+)$`).FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	files, _ := filepath.Glob("*.go")
	var used []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`finding\("([a-z-]+)"`).FindAllStringSubmatch(string(src), -1) {
			used = append(used, m[1])
		}
	}
	slices.Sort(documented)
	slices.Sort(used)
	used = slices.Compact(used)
	if !slices.Equal(documented, used) {
		t.Errorf("documented codes = %v\nused codes       = %v", documented, used)
	}
	if len(used) != 52 {
		t.Errorf("%d codes in use, want the 41 of DESIGN.md section 3 and 11 more (nothing-to-replicate, subscription-dials-localhost, write-freeze-privilege, target-in-recovery, filter-matches-nothing, membership-not-grantable, source-not-readable, source-behind-pooler, replication-connection-refused, subscription-connection-refused, owner-not-kept)", len(used))
	}
}
