package schemadoc

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

// TestConfigurationDoc: docs/configuration.md is what schema.json says,
// and names every key of the schema.
func TestConfigurationDoc(t *testing.T) {
	schema, err := os.ReadFile("../../schema.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(schema)
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../docs/configuration.md"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from schema.json; run go test ./internal/schemadoc -update and commit both", path)
	}
	for _, key := range []string{"`source.uri`", "`roles.passwords`", "`replication.hooks.before_freeze`", "`parallel.stall_timeout`", "`state`", "`pg_bin`"} {
		if !strings.Contains(string(got), key) {
			t.Errorf("the page does not name %s", key)
		}
	}
}
