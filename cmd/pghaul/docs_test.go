package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/config"
)

// TestReadmeConfigIsValid: the migration file the README shows is one
// validate accepts.
func TestReadmeConfigIsValid(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("the README shows no migration file")
	}
	env := func(string) (string, bool) { return "x", true }
	if _, err := config.Parse(m[1], "README.md", config.Options{LookupEnv: env}); err != nil {
		t.Errorf("the README's migration file is invalid: %v", err)
	}
}

// TestDocLinksResolve: every relative link of the README and docs/ names
// a file that exists.
func TestDocLinksResolve(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", filepath.Base(f), target)
			}
		}
	}
}
