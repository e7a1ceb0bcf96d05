package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a config file, at a line and column.
type Problem struct {
	Line, Column int
	// Path is the dotted key the problem is about ("replication.stop").
	Path    string
	Message string
}

// ValidationError lists every problem found in a file, not just the first.
type ValidationError struct {
	File     string
	Problems []Problem
}

// Error prints one "file:line:col: key: message" line per problem.
func (e *ValidationError) Error() string {
	return strings.Join(e.Lines(), "\n")
}

// Lines returns one "file:line:col: key: message" line per problem.
func (e *ValidationError) Lines() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msg := p.Message
		if p.Path != "" {
			msg = p.Path + ": " + msg
		}
		out[i] = fmt.Sprintf("%s:%d:%d: %s", e.File, p.Line, p.Column, msg)
	}
	return out
}

// posError is an error located at a node inside the value being decoded (an
// item of a list), more precise than the value's own position.
type posError struct {
	line, col int
	err       error
}

func (e *posError) Error() string { return e.err.Error() }

func at(n *yaml.Node, err error) error { return &posError{line: n.Line, col: n.Column, err: err} }

// show describes a node for a message: a scalar's value, else its kind.
func show(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

// decoder walks a yaml.Node tree into a struct by its yaml tags, collecting
// every problem with its position instead of stopping at the first.
type decoder struct {
	problems []Problem
	// pos holds the position of every key's value, for later validation.
	pos map[string]Problem
	// skip holds keys whose value used a missing ${VAR} (validate
	// --allow-missing-env): their type problems are not reported.
	skip map[string]bool
}

func (d *decoder) add(n *yaml.Node, path, format string, args ...any) {
	if d.skip[path] {
		return
	}
	d.problems = append(d.problems, Problem{Line: n.Line, Column: n.Column, Path: path, Message: fmt.Sprintf(format, args...)})
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.pos[path] = Problem{Line: n.Line, Column: n.Column, Path: path}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) && v.Kind() != reflect.String {
		return // an empty value keeps the default
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		d.custom(n, v.Addr().Interface().(yaml.Unmarshaler), path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	default:
		d.scalar(n, v, path)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (d *decoder) custom(n *yaml.Node, u yaml.Unmarshaler, path string) {
	err := u.UnmarshalYAML(n)
	for _, e := range flatten(err) {
		var pe *posError
		if errors.As(e, &pe) {
			d.add(&yaml.Node{Line: pe.line, Column: pe.col}, path, "%v", pe.err)
			continue
		}
		d.add(n, path, "%v", e)
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(n, path, "expected a mapping of keys, got %s", show(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		idx, ok := fields[k.Value]
		switch {
		case !ok:
			d.add(k, "", "unknown key %q%s", key, d.didYouMean(k.Value, path, v.Type()))
		case seen[k.Value]:
			d.add(k, key, "key appears twice")
		default:
			seen[k.Value] = true
			d.decode(val, v.Field(idx), key)
		}
	}
}

func (d *decoder) didYouMean(key, path string, t reflect.Type) string {
	if s := suggest(key, keysOf(t)); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", join(path, s))
	}
	// A known key placed in the wrong section.
	for _, full := range allKeys(reflect.TypeFor[Config](), "") {
		if strings.HasSuffix(full, "."+key) {
			return fmt.Sprintf(" (did you mean %q?)", full)
		}
	}
	return ""
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, "expected %s, got %s", expected(v.Kind()), show(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if !isNull(n) {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		switch n.Value {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.add(n, path, "expected true or false, got %s", show(n))
		}
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			d.add(n, path, "expected a whole number, got %s", show(n))
			return
		}
		v.SetInt(i)
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

func expected(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	}
	return "a string"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the yaml key of each field of struct type t to its index.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for k := range yamlFields(t) {
		keys = append(keys, k)
	}
	return keys
}

// allKeys lists the dotted path of every key under struct type t.
func allKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		full := join(prefix, name)
		out = append(out, full)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(unmarshalerType) {
			out = append(out, allKeys(f.Type, full)...)
		}
	}
	return out
}

// Keys lists the dotted path of every config key, for tests and docs.
func Keys() []string { return allKeys(reflect.TypeFor[Config](), "") }

// Suggest returns the candidate closest to s when it is close enough to be
// a likely typo, else "" (the "did you mean" of unknown keys).
func Suggest(s string, candidates []string) string { return suggest(s, candidates) }

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo or a shortened form, else "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		d := distance(strings.ToLower(s), c)
		if d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	if bestDist <= max(1, len(s)/3) {
		return best
	}
	for _, c := range candidates {
		if len(s) >= 4 && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)) {
			return c
		}
	}
	return ""
}

// distance is the edit distance between a and b counting insertions,
// deletions, substitutions and swaps of neighbours (optimal string alignment).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
