package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

func mustSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile(filepath.Join("..", "schema.json"))
	if err != nil {
		t.Fatalf("compile schema.json: %v", err)
	}
	return s
}

// validateSchema checks a YAML document against schema.json, as an editor would.
func validateSchema(t *testing.T, s *jsonschema.Schema, raw []byte) error {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

func TestExamplesPassSchemaAndLoad(t *testing.T) {
	s := mustSchema(t)
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if len(files) < 3 {
		t.Fatalf("found %d examples, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(raw, []byte("# yaml-language-server: $schema=../schema.json\n")) {
				t.Error("example does not start with the yaml-language-server schema line")
			}
			if err := validateSchema(t, s, raw); err != nil {
				t.Errorf("schema.json rejects it: %v", err)
			}
			if _, err := Load(f, Options{AllowMissingEnv: true}); err != nil {
				t.Errorf("Load with missing variables allowed: %v", err)
			}
			env := func(name string) (string, bool) {
				switch {
				case strings.Contains(name, "PASSWORD"):
					return `p@ss w/rd'\`, true
				case strings.Contains(name, "PORT"):
					return "5432", true
				}
				return "name1", true
			}
			c, err := Load(f, Options{LookupEnv: env})
			if err != nil {
				t.Fatalf("Load with every variable set: %v", err)
			}
			if strings.Contains(c.Source.URI, "${") || strings.Contains(c.Target.URI, "${") {
				t.Errorf("unexpanded variable left: %q, %q", c.Source.URI, c.Target.URI)
			}
		})
	}
}

// TestInvalidFailBoth loads every file of testdata/invalid. Each starts with
// "# want: <text>" (a piece of the expected message and its line:col) and,
// when JSON Schema cannot express the problem, "# schema-cannot-express".
func TestInvalidFailBoth(t *testing.T) {
	s := mustSchema(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if len(files) < 10 {
		t.Fatalf("found %d invalid files, want at least 10", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wants, schemaBlind := header(raw)
			if len(wants) == 0 {
				t.Fatal("file has no '# want:' line")
			}
			_, err = Load(f, Options{LookupEnv: func(string) (string, bool) { return "", false }})
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error = %q, want it to contain %q", err, w)
				}
			}
			schemaErr := validateSchema(t, s, raw)
			if schemaBlind && schemaErr == nil {
				return
			}
			if schemaBlind {
				t.Errorf("marked schema-cannot-express, but schema.json rejects it: %v", schemaErr)
			}
			if schemaErr == nil {
				t.Error("schema.json accepts it")
			}
		})
	}
}

func header(raw []byte) (wants []string, schemaBlind bool) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			wants = append(wants, w)
		}
		if strings.HasPrefix(line, "# schema-cannot-express") {
			schemaBlind = true
		}
	}
	return wants, schemaBlind
}

// TestSchemaKeysMatchYAMLTags keeps schema.json and the Go types the same set.
func TestSchemaKeysMatchYAMLTags(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	got := schemaKeys(t, schema, "")
	want := Keys()
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("schema.json keys = %v\nyaml tags        = %v", got, want)
	}
}

func schemaKeys(t *testing.T, node map[string]any, prefix string) []string {
	props, _ := node["properties"].(map[string]any)
	var out []string
	for k, v := range props {
		full := join(prefix, k)
		out = append(out, full)
		sub, _ := v.(map[string]any)
		if _, ok := sub["description"]; !ok {
			t.Errorf("schema.json: %s has no description", full)
		}
		out = append(out, schemaKeys(t, sub, full)...)
	}
	return out
}
