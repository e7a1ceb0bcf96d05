package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pghaul/pghaul/internal/dsn"
)

// uriKeys hold connection strings: a variable expanded into a URI's user
// info, database name or a query parameter's value is percent-encoded, one
// forming a whole key=value value is quoted.
var uriKeys = map[string]bool{"source.uri": true, "source.uri_from_target": true, "target.uri": true}

// expandTree replaces ${VAR} in every scalar value under n (not in keys)
// and $$ by $. A missing variable is a problem, or with allowMissing a
// harmless stand-in whose key is then spared type checks.
func (d *decoder) expandTree(n *yaml.Node, path string, lookup func(string) (string, bool), allowMissing bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			d.expandTree(c, path, lookup, allowMissing)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.expandTree(n.Content[i+1], join(path, n.Content[i].Value), lookup, allowMissing)
		}
	case yaml.ScalarNode:
		if uriKeys[path] {
			defer func() { n.Value = dsn.Normalize(n.Value) }()
		}
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, missing := expand(n.Value, uriKeys[path], lookup)
		for _, m := range missing {
			if allowMissing {
				d.skip[path] = true
				continue
			}
			col := n.Column
			if !strings.Contains(n.Value, "\n") {
				col += m.offset
				if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
					col++
				}
			}
			d.add(&yaml.Node{Line: n.Line, Column: col}, path, "environment variable %s is not set", m.name)
		}
		n.Value = out
	}
}

type missingVar struct {
	name   string
	offset int
}

// expand substitutes ${NAME} references in s. In a connection string (uri)
// a value landing in a URI's user info, its database name or a query
// parameter's value is percent-encoded, and one that forms a whole
// key=value value is quoted, so passwords holding @, / or spaces and
// certificate paths holding & or # survive. Elsewhere (host, port, a
// parameter's name) a value is written as it is. Missing variables become
// "1", a stand-in that parses as a host, a port, a number and a name alike.
func expand(s string, uri bool, lookup func(string) (string, bool)) (string, []missingVar) {
	userinfoEnd := -1
	if uri {
		userinfoEnd = userinfoEndIn(s)
	}
	var b strings.Builder
	var missing []missingVar
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i++
		case strings.HasPrefix(s[i:], "${") && strings.Contains(s[i:], "}"):
			end := i + strings.Index(s[i:], "}")
			name := s[i+2 : end]
			val, ok := lookup(name)
			if !ok || !validVarName(name) {
				missing = append(missing, missingVar{name: name, offset: i})
				val = "1"
			}
			switch {
			case i < userinfoEnd || uri && inURIValue(s, i):
				val = escapeUserinfo(val)
			case uri && !dsn.IsURI(s) && isWholeValue(s, i, end):
				val = dsn.QuoteValue(val)
			}
			b.WriteString(val)
			i = end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), missing
}

func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		if c != '_' && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// userinfoEndIn returns the index of the "@" ending a URI's user info in the
// unexpanded string, or -1. Variable names hold no "@", "/" or "?", so the
// structure of the unexpanded string is the structure of the expanded one.
func userinfoEndIn(s string) int {
	if !dsn.IsURI(s) {
		return -1
	}
	start := strings.Index(s, "://") + 3
	auth := s[start:]
	if end := strings.IndexAny(auth, "/?#"); end >= 0 {
		auth = auth[:end]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return -1
	}
	return start + at
}

// inURIValue reports whether s[i] of a URI lies in its path (the database
// name) or in the value of a query parameter, where the expanded text must
// be percent-encoded to stay one value.
func inURIValue(s string, i int) bool {
	if !dsn.IsURI(s) {
		return false
	}
	start := strings.Index(s, "://") + 3
	rest := strings.IndexAny(s[start:], "/?#")
	if rest < 0 || i < start+rest {
		return false // user info, host or port
	}
	query := strings.IndexByte(s[start:], '?')
	if query < 0 || i < start+query {
		return true // the path
	}
	if frag := strings.IndexByte(s[start:], '#'); frag >= 0 && i > start+frag {
		return false
	}
	param := s[start+query+1 : i]
	if amp := strings.LastIndexByte(param, '&'); amp >= 0 {
		param = param[amp+1:]
	}
	return strings.Contains(param, "=")
}

// isWholeValue reports whether s[start:end+1] is an entire unquoted value of
// a key=value string: after "=" and before white space or the end.
func isWholeValue(s string, start, end int) bool {
	before := strings.TrimRight(s[:start], " \t")
	after := s[end+1:]
	return strings.HasSuffix(before, "=") && (after == "" || after[0] == ' ' || after[0] == '\t')
}

// escapeUserinfo percent-encodes everything but RFC 3986's unreserved set.
func escapeUserinfo(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
