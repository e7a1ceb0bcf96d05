package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/config"
	"gopkg.in/yaml.v3"
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

// TestCIExample: the GitHub Actions example is YAML, and every pghaul
// command and flag it uses exists.
func TestCIExample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../examples/ci/pghaul.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("examples/ci/pghaul.yml: %v", err)
	}
	call := regexp.MustCompile(`pghaul (validate|plan|apply|status|verify|cleanup)\b([^|>;\n]*)`)
	seen := 0
	for _, job := range wf.Jobs {
		for _, step := range job.Steps {
			for _, m := range call.FindAllStringSubmatch(step.Run, -1) {
				seen++
				help := runCLI(t, nil, m[1], "--help").stdout
				for _, word := range strings.Fields(m[2]) {
					if strings.HasPrefix(word, "-") && !strings.Contains(help, strings.SplitN(word, "=", 2)[0]) {
						t.Errorf("pghaul %s has no flag %s", m[1], word)
					}
				}
			}
		}
	}
	if seen < 3 {
		t.Errorf("found %d pghaul commands in the workflow, want validate, plan and apply", seen)
	}
}
