// Package pgbin finds PostgreSQL client and server programs on this machine
// (pg_dump, pg_restore, initdb, pg_ctl) and reads their versions. It runs
// the programs with --version and nothing else.
package pgbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Tool is one program found, with its version.
type Tool struct {
	Path string
	// Major is the major version (12, 15, 18); Version the full one ("15.14").
	Major   int
	Version string
}

// SearchDirs lists, in order, the directories DESIGN.md's pg_bin search
// looks in: PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin and
// /usr/pgsql-*/bin.
func SearchDirs(ctx context.Context) []string {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	for _, g := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	var out []string
	for _, d := range dirs {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// Find returns every copy of program found in dirs, newest major first
// (the first found wins between equal versions). It skips copies whose
// version cannot be read.
func Find(ctx context.Context, program string, dirs []string, env []string) []Tool {
	var paths []string
	seen := map[string]bool{}
	for _, d := range dirs {
		p := filepath.Join(d, program)
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] || isWrapper(real) {
			continue
		}
		seen[real] = true
		paths = append(paths, p)
	}
	// Probe them at once: a --version can take 100 ms (Debian's wrappers
	// are Perl), and the order is restored below.
	found := make([]*Tool, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			if t, err := Probe(ctx, p, env); err == nil {
				found[i] = &t
			}
		})
	}
	wg.Wait()
	var tools []Tool
	for _, t := range found {
		if t != nil {
			tools = append(tools, *t)
		}
	}
	slices.SortStableFunc(tools, func(a, b Tool) int { return b.Major - a.Major })
	return tools
}

// isWrapper reports Debian's pg_wrapper (what /usr/bin/pg_dump links to):
// a Perl script choosing a version and running the binary from
// /usr/lib/postgresql/<major>/bin, which the search holds anyway. Skipping
// it spares every pg_dump and pg_restore run a Perl start-up (tens of
// milliseconds of CPU each) and keeps the version pghaul chose.
func isWrapper(real string) bool {
	return filepath.Base(real) == "pg_wrapper" && filepath.Base(filepath.Dir(real)) == "postgresql-common"
}

// Newest returns the newest copy of program whose major lies in [lo, hi];
// 0 leaves a bound open.
func Newest(tools []Tool, lo, hi int) (Tool, bool) {
	for _, t := range tools {
		if (lo == 0 || t.Major >= lo) && (hi == 0 || t.Major <= hi) {
			return t, true
		}
	}
	return Tool{}, false
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// Probe runs path --version and parses "pg_dump (PostgreSQL) 15.14 ...".
func Probe(ctx context.Context, path string, env []string) (Tool, error) {
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return Tool{}, fmt.Errorf("%s --version: %w", path, err)
	}
	major, full, err := ParseVersion(string(out))
	if err != nil {
		return Tool{}, fmt.Errorf("%s: %w", path, err)
	}
	return Tool{Path: path, Major: major, Version: full}, nil
}

// ParseVersion reads the major and full version from a --version line.
func ParseVersion(s string) (int, string, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return 0, "", fmt.Errorf("no PostgreSQL version in %q", strings.TrimSpace(s))
	}
	major, _ := strconv.Atoi(m[1])
	full := m[1]
	if m[2] != "" {
		full += "." + m[2]
	}
	return major, full, nil
}
