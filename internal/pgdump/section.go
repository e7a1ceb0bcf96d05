package pgdump

import (
	"fmt"
	"regexp"
	"strings"
)

// Section is one section of a schema archive as pg_restore --verbose
// renders it (-f -), split at each entry's header. One rendering per
// section gives what pg_restore -l would list (Listing) and every restore
// script of that section (Script), so a database's schema takes two
// pg_restore runs, not a listing and a script per step.
type Section struct {
	Encoding, Preamble string
	// IDs are the entries' dump IDs in the order rendered; Pieces their
	// text by ID.
	IDs    []string
	Pieces map[string]string
	// OK is false when the rendering holds a line only psql reads, or
	// cannot be split by entry, or an entry's header cannot be read: its
	// listing and scripts must come from pg_restore -l and -L then.
	OK bool
	// lines are the entries' lines in pg_restore -l's form, by ID.
	lines map[string]string
}

// ParseSection reads what pg_restore --verbose --section=<s> -f - wrote.
func ParseSection(out []byte) *Section {
	s := &Section{}
	script, encoding, ok := RestoreScript(out)
	if !ok {
		return s
	}
	preamble, ids, pieces, ok := splitEntries(script)
	if !ok {
		return s
	}
	s.Encoding, s.Preamble, s.IDs, s.Pieces = encoding, preamble, ids, pieces
	s.lines = make(map[string]string, len(ids))
	for _, id := range ids {
		line, ok := listLine(id, pieces[id])
		if !ok {
			return &Section{}
		}
		s.lines[id] = line
	}
	s.OK = true
	return s
}

var (
	// tocEntryHeader is the first line of an entry's header:
	// "-- TOC entry <id> (class <tableoid> OID <oid>)".
	tocEntryHeader = regexp.MustCompile(`^-- TOC entry ([0-9]+) \(class ([0-9]+) OID ([0-9]+)\)$`)
	// nameHeader is its "-- Name: <tag>; Type: <kind>; Schema: <schema>;
	// Owner: <owner>" line ("-" for no schema or owner).
	nameHeader = regexp.MustCompile(`^-- Name: (.*); Type: ([A-Z ]+); Schema: (.*); Owner: (.*)$`)
)

// listLine is the line pg_restore -l writes for the entry whose piece
// this is: "<id>; <tableoid> <oid> <KIND> <schema> <tag> <owner>", read from
// the piece's header.
func listLine(id, piece string) (string, bool) {
	var class, oid string
	for line := range strings.Lines(piece) {
		line = strings.TrimRight(line, "\n")
		if m := tocEntryHeader.FindStringSubmatch(line); m != nil {
			if m[1] != id {
				return "", false
			}
			class, oid = m[2], m[3]
			continue
		}
		if m := nameHeader.FindStringSubmatch(line); m != nil && class != "" {
			owner := m[4]
			if owner == "-" {
				owner = "" // -l writes nothing for an entry without an owner
			}
			return fmt.Sprintf("%s; %s %s %s %s %s %s", id, class, oid, m[2], m[3], m[1], owner), true
		}
	}
	return "", false
}

// Listing is the section's entries as pg_restore -l lists them, one line
// each, in the order rendered.
func (s *Section) Listing() string {
	var b strings.Builder
	for _, id := range s.IDs {
		b.WriteString(s.lines[id] + "\n")
	}
	return b.String()
}

// Script is the SQL pg_restore would run to restore entries (those of
// other sections are left out), in their order: the preamble, then each
// entry's piece with the ALTER ... OWNER TO lines of the disowned owners
// left out (WithoutOwners), in one transaction when single, as
// pg_restore --single-transaction writes it.
func (s *Section) Script(entries []Entry, single bool, disowned map[string]bool) string {
	var b strings.Builder
	if single {
		b.WriteString("BEGIN;\n\n")
	}
	b.WriteString(s.Preamble + "\n")
	for _, e := range entries {
		if piece, ok := s.Pieces[e.ID()]; ok {
			b.WriteString(WithoutOwners(piece, disowned) + "\n")
		}
	}
	if single {
		b.WriteString("COMMIT;\n")
	}
	return b.String()
}
