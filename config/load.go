package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Options change how a file is loaded.
type Options struct {
	// AllowMissingEnv lints a file without its secrets: missing ${VAR}s
	// are not problems (validate --allow-missing-env).
	AllowMissingEnv bool
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads, expands, decodes and validates the migration file at path.
// Every problem is reported in a *ValidationError, one per line.
func Load(path string, opt Options) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(raw, path, opt)
	if err != nil {
		return nil, err
	}
	c.State = statePath(path, c.State)
	return c, nil
}

// statePath resolves the state directory: relative to the config file's
// directory, "<config file>.state" when unset.
func statePath(configPath, state string) string {
	if state == "" {
		state = filepath.Base(configPath) + ".state"
	}
	if !filepath.IsAbs(state) {
		state = filepath.Join(filepath.Dir(configPath), state)
	}
	if abs, err := filepath.Abs(state); err == nil {
		return abs
	}
	return state
}

// Parse decodes and validates a migration file held in memory; name is used
// in messages. It does not resolve the state directory (Load does).
func Parse(raw []byte, name string, opt Options) (*Config, error) {
	lookup := opt.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	root, err := parseNode(raw)
	if err != nil {
		return nil, &ValidationError{File: name, Problems: []Problem{*err}}
	}
	d := &decoder{pos: map[string]Problem{}, skip: map[string]bool{}}
	d.expandTree(root, "", lookup, opt.AllowMissingEnv)
	c := Default()
	d.decode(root.Content[0], reflect.ValueOf(&c).Elem(), "")
	d.validate(&c)
	if len(d.problems) > 0 {
		return nil, &ValidationError{File: name, Problems: d.problems}
	}
	sum := sha256.Sum256(raw)
	c.File = File{Path: name, Hash: hex.EncodeToString(sum[:]), Raw: raw}
	return &c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseNode parses raw into a single YAML document.
func parseNode(raw []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{Line: 1, Column: 1, Message: "the file is empty; start with `version: 1`"}
		}
		p := &Problem{Line: 1, Column: 1, Message: err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = m[2]
		}
		return nil, p
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Problem{Line: extra.Line, Column: extra.Column, Message: "a second YAML document; a migration file holds one"}
	}
	if root.Content[0].Kind != yaml.MappingNode {
		n := root.Content[0]
		return nil, &Problem{Line: n.Line, Column: n.Column, Message: "expected a mapping of keys starting with `version: 1`, got " + show(n)}
	}
	return &root, nil
}
