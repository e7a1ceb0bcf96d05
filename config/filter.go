package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pattern is one name filter. Name patterns (databases, roles, extensions)
// have one part; table patterns have one to three, "[db.][schema.]table".
// In an unquoted part "*" matches any run of characters within that part;
// a "double-quoted" part matches literally and may hold dots ("" is a quote).
// Identifiers match exactly as stored: no case folding.
type Pattern struct {
	raw   string
	parts [][]token
}

type token struct {
	text string
	star bool
}

// ParseName parses a database, role or extension pattern: dots are literal.
func ParseName(s string) (Pattern, error) {
	parts, err := split(s, false)
	if err != nil {
		return Pattern{}, err
	}
	return Pattern{raw: s, parts: parts}, nil
}

// ParseTable parses a "[db.][schema.]table" pattern.
func ParseTable(s string) (Pattern, error) {
	parts, err := split(s, true)
	if err != nil {
		return Pattern{}, err
	}
	if len(parts) > 3 {
		return Pattern{}, fmt.Errorf("%q has %d dotted parts; a table pattern is [db.][schema.]table (quote a name that holds dots: \"my.table\")", s, len(parts))
	}
	return Pattern{raw: s, parts: parts}, nil
}

// split cuts s into parts at unquoted dots (when dots is set) and each part
// into literal and star tokens.
func split(s string, dots bool) ([][]token, error) {
	var parts [][]token
	var cur []token
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			cur = append(cur, token{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			end, text, err := quoted(s, i)
			if err != nil {
				return nil, err
			}
			lit.WriteString(text)
			i = end
		case c == '*':
			flush()
			cur = append(cur, token{star: true})
		case c == '.' && dots:
			flush()
			if len(cur) == 0 {
				return nil, fmt.Errorf("%q has an empty part", s)
			}
			parts, cur = append(parts, cur), nil
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	if len(cur) == 0 {
		if s == "" {
			return nil, errors.New("pattern is empty")
		}
		return nil, fmt.Errorf("%q has an empty part", s)
	}
	return append(parts, cur), nil
}

// quoted reads the quoted name starting at s[start] == '"' and returns the
// index of its closing quote and its text.
func quoted(s string, start int) (int, string, error) {
	var b strings.Builder
	for i := start + 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return i, b.String(), nil
	}
	return 0, "", fmt.Errorf("%q has an unterminated quote", s)
}

// String is the pattern as written.
func (p Pattern) String() string { return p.raw }

// Parts is how many dot-separated parts the pattern has.
func (p Pattern) Parts() int { return len(p.parts) }

// MatchName reports whether a one-part pattern matches name.
func (p Pattern) MatchName(name string) bool {
	return len(p.parts) == 1 && glob(p.parts[0], name)
}

// MatchTable reports whether the pattern matches table in schema of db. A
// one-part pattern names a table in every schema and database; two parts a
// schema and table in every database.
func (p Pattern) MatchTable(db, schema, table string) bool {
	names := []string{db, schema, table}[3-len(p.parts):]
	for i, part := range p.parts {
		if !glob(part, names[i]) {
			return false
		}
	}
	return true
}

// glob matches s against tokens, where a star matches any run of bytes.
func glob(toks []token, s string) bool {
	if len(toks) == 0 {
		return s == ""
	}
	t := toks[0]
	if !t.star {
		return strings.HasPrefix(s, t.text) && glob(toks[1:], s[len(t.text):])
	}
	for i := 0; i <= len(s); i++ {
		if glob(toks[1:], s[i:]) {
			return true
		}
	}
	return false
}

// Names is a list of name patterns.
type Names []Pattern

// Match reports whether any pattern matches name.
func (ns Names) Match(name string) bool {
	for _, p := range ns {
		if p.MatchName(name) {
			return true
		}
	}
	return false
}

// Strings returns the patterns as written.
func (ns Names) Strings() []string { return patternStrings(ns) }

// UnmarshalYAML reads a list of name patterns.
func (ns *Names) UnmarshalYAML(n *yaml.Node) error {
	ps, err := decodePatterns(n, ParseName)
	*ns = ps
	return err
}

// MarshalYAML writes the patterns as written.
func (ns Names) MarshalYAML() (any, error) { return ns.Strings(), nil }

// TablePatterns is a list of table patterns.
type TablePatterns []Pattern

// Match reports whether any pattern matches the table.
func (ts TablePatterns) Match(db, schema, table string) bool {
	for _, p := range ts {
		if p.MatchTable(db, schema, table) {
			return true
		}
	}
	return false
}

// Strings returns the patterns as written.
func (ts TablePatterns) Strings() []string { return patternStrings(ts) }

// UnmarshalYAML reads a list of table patterns.
func (ts *TablePatterns) UnmarshalYAML(n *yaml.Node) error {
	ps, err := decodePatterns(n, ParseTable)
	*ts = ps
	return err
}

// MarshalYAML writes the patterns as written.
func (ts TablePatterns) MarshalYAML() (any, error) { return ts.Strings(), nil }

func patternStrings(ps []Pattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.raw
	}
	return out
}

// decodePatterns parses every item of a sequence node, reporting each bad
// item at its own line and column.
func decodePatterns(n *yaml.Node, parse func(string) (Pattern, error)) ([]Pattern, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("expected a list like [a, b], got %s", show(n))
	}
	var ps []Pattern
	var errs []error
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode {
			errs = append(errs, at(item, fmt.Errorf("expected a name, got %s", show(item))))
			continue
		}
		p, err := parse(item.Value)
		if err != nil {
			errs = append(errs, at(item, err))
			continue
		}
		ps = append(ps, p)
	}
	return ps, errors.Join(errs...)
}

// Service databases and roles of managed providers, never migrated.
var (
	serviceDatabases = []string{"template0", "template1", "rdsadmin", "cloudsqladmin", "azure_maintenance", "azure_sys", "_dodb"}
	serviceRoles     = Names{mustName("pg_*"), mustName("rdsadmin"), mustName("rds_*"), mustName("cloudsql*"), mustName("azure_*")}
)

func mustName(s string) Pattern {
	p, err := ParseName(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Selects reports whether database name is migrated: included (or no
// include list), not excluded, and not a template or service database.
func (d Databases) Selects(name string) bool {
	for _, s := range serviceDatabases {
		if name == s {
			return false
		}
	}
	return (len(d.Include) == 0 || d.Include.Match(name)) && !d.Exclude.Match(name)
}

// Selects reports whether role name is migrated: not excluded, not a
// predefined pg_* role and not a known service role.
func (r Roles) Selects(name string) bool {
	return !serviceRoles.Match(name) && !r.Exclude.Match(name)
}

// Selects reports whether the rows of the table are copied and replicated.
func (t Tables) Selects(db, schema, table string) bool {
	if len(t.Only) > 0 && !t.Only.Match(db, schema, table) {
		return false
	}
	return !t.Skip.Match(db, schema, table)
}

// Selects reports whether extension name is migrated.
func (e Extensions) Selects(name string) bool { return !e.Exclude.Match(name) }
