package plan

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureImports keeps plan and config free of I/O: no database driver,
// no network (net/url is fine), no subprocesses.
func TestPureImports(t *testing.T) {
	for _, dir := range []string{".", filepath.Join("..", "config")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", dir)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if impure(path) {
					t.Errorf("%s imports %s; plan and config must stay pure", f, path)
				}
			}
		}
	}
}

func impure(path string) bool {
	switch {
	case path == "database/sql", path == "os/exec", path == "net":
		return true
	case strings.HasPrefix(path, "net/"):
		return path != "net/url"
	}
	return strings.HasPrefix(path, "github.com/jackc/")
}

func TestImpure(t *testing.T) {
	for path, want := range map[string]bool{"net/url": false, "net/http": true, "net": true, "os/exec": true, "github.com/jackc/pgx/v5": true, "fmt": false, "database/sql": true} {
		if got := impure(path); got != want {
			t.Errorf("impure(%q) = %v, want %v", path, got, want)
		}
	}
}
