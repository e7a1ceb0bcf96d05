package pgdump

import (
	"bufio"
	"bytes"
	"strings"
)

// Entry is one line of `pg_restore -l`: "id; tableoid oid TYPE schema tag owner".
type Entry struct {
	Line, Kind, Schema, Tag, Owner string
}

// entryKinds are the TOC types, longest first so "FK CONSTRAINT" is not
// read as a "CONSTRAINT" of schema "FK".
var entryKinds = []string{
	"MATERIALIZED VIEW DATA", "PUBLICATION TABLES IN SCHEMA", "PUBLICATION TABLE", "SEQUENCE OWNED BY", "FOREIGN DATA WRAPPER",
	"PROCEDURAL LANGUAGE", "FK CONSTRAINT", "INDEX ATTACH", "TABLE ATTACH", "DEFAULT ACL", "EVENT TRIGGER", "BLOB METADATA",
	"LARGE OBJECT", "SEQUENCE SET", "TABLE DATA", "MATERIALIZED VIEW", "FOREIGN TABLE", "USER MAPPING", "SHELL TYPE",
	"CONSTRAINT", "PUBLICATION", "EXTENSION", "TRIGGER", "INDEX", "TABLE", "POLICY", "RULE", "DEFAULT",
	"COMMENT", "ACL", "BLOBS", "BLOB", "SCHEMA", "TYPE", "DOMAIN", "FUNCTION", "SEQUENCE", "VIEW",
}

// ParseTOC reads the output of pg_restore -l, leaving out comments.
func ParseTOC(list []byte) []Entry {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(list))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ";") || strings.TrimSpace(line) == "" {
			continue
		}
		out = append(out, parseEntry(line))
	}
	return out
}

// parseEntry reads "id; tableoid oid KIND schema tag owner". The owner is
// after the last space (empty for entries without one, which end in a
// space); the tag may hold spaces ("orders orders_pkey").
func parseEntry(line string) Entry {
	e := Entry{Line: line}
	_, rest, _ := strings.Cut(line, "; ")
	fields := strings.SplitN(rest, " ", 3)
	if len(fields) < 3 {
		return e
	}
	body := fields[2]
	if i := strings.LastIndexByte(body, ' '); i >= 0 {
		body, e.Owner = body[:i], body[i+1:]
	}
	for _, k := range entryKinds {
		if strings.HasPrefix(body, k+" ") {
			e.Kind, body = k, strings.TrimPrefix(body, k+" ")
			break
		}
	}
	e.Schema, e.Tag, _ = strings.Cut(body, " ")
	return e
}
