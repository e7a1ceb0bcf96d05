package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that what it
// accepts satisfies the invariants Validate promises.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	invalid, _ := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	for _, p := range append(files, invalid...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, "fuzz.yaml", Options{AllowMissingEnv: true})
		if err != nil {
			return
		}
		if c.Version != 1 || c.Source.URI == "" || c.Target.URI == "" {
			t.Errorf("accepted a config without version 1 and both URIs: %+v", c)
		}
		if c.Replication.Stop && c.Replication.MaxLagBytes == nil {
			t.Error("accepted stop without max_lag_bytes")
		}
		if len(c.Tables.Skip) > 0 && len(c.Tables.Only) > 0 {
			t.Error("accepted skip with only")
		}
		for _, n := range []int{c.Parallel.Databases, c.Parallel.Tables, c.Parallel.Indexes} {
			if n < 1 || n > MaxParallel {
				t.Errorf("accepted parallel %d", n)
			}
		}
	})
}
