package pgdump

import (
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

var (
	// restrictLine is pg_dump 15.14+'s guard against psql meta-commands
	// in a dump: psql's business, not the server's.
	restrictLine = regexp.MustCompile(`^\\(un)?restrict [0-9A-Za-z]+$`)
	// encodingLine is pg_restore's own client_encoding, the archive's.
	encodingLine = regexp.MustCompile(`^SET client_encoding = '([A-Za-z0-9_]+)';$`)
)

// RestoreScript is pg_restore's output without its \restrict lines, with
// the archive's encoding; ok is false when it holds another line starting
// with a backslash, which only psql would understand.
func RestoreScript(out []byte) (script, encoding string, ok bool) {
	lines := strings.Split(string(out), "\n")
	kept := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, `\`) {
			if restrictLine.MatchString(l) {
				continue
			}
			return "", "", false
		}
		if m := encodingLine.FindStringSubmatch(l); m != nil && encoding == "" {
			encoding = m[1]
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n"), encoding, true
}

// WithoutOwners drops the script's "ALTER ... OWNER TO <owner>;" lines
// of the owners the target user cannot hand objects to: those objects keep
// it as owner, every other object gets its own.
func WithoutOwners(script string, disowned map[string]bool) string {
	if len(disowned) == 0 {
		return script
	}
	var suffixes []string
	for o := range disowned {
		// pg_restore quotes an owner only when it must; ident always does.
		suffixes = append(suffixes, " OWNER TO "+o+";", " OWNER TO "+pgx.Identifier{o}.Sanitize()+";")
	}
	lines := strings.Split(script, "\n")
	kept := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "ALTER ") && slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(l, s) }) {
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

// ID is the entry's dump ID, the number its list line starts with.
func (e Entry) ID() string {
	id, _, _ := strings.Cut(e.Line, ";")
	return strings.TrimSpace(id)
}

// tocEntryLine starts the header pg_restore --verbose writes before each
// entry it renders: "-- TOC entry <id> (class <c> OID <o>)".
var tocEntryLine = regexp.MustCompile(`^-- TOC entry ([0-9]+) `)

// splitEntries splits the script pg_restore --verbose renders at the
// header it writes before each archive entry ("--", "-- TOC entry <id>
// ...", ..., "--"): preamble is what comes before the first entry, ids
// are the entries' dump IDs in their order, and pieces holds each entry's
// text by its dump ID (an entry of another section renders nothing, and
// has none). The SET lines pg_restore writes
// between two entries for the next one (default_tablespace,
// default_table_access_method) go with the next piece, so a piece run
// after a restart finds its settings; the closing comments are left out.
// ok is false when an ID comes twice (a header inside an entry's own
// text, a function body): the script cannot be split safely.
func splitEntries(script string) (preamble string, ids []string, pieces map[string]string, ok bool) {
	lines := strings.Split(script, "\n")
	// off[i] is where line i starts in script: a piece is a substring of
	// it, not a copy (the pre-data of 10,000 tables renders megabytes).
	off := make([]int, len(lines)+1)
	for i, l := range lines {
		off[i+1] = off[i] + len(l) + 1
	}
	join := func(from, to int) string {
		if from >= to {
			return ""
		}
		return script[off[from] : off[to]-1]
	}
	var starts []int
	for i := 0; i+1 < len(lines); i++ {
		if m := tocEntryLine.FindStringSubmatch(lines[i+1]); lines[i] == "--" && m != nil {
			starts, ids = append(starts, i), append(ids, m[1])
		}
	}
	pieces = map[string]string{}
	if len(starts) == 0 {
		return script, nil, pieces, true
	}
	// Each piece begins with the SET and blank lines just above its header.
	begin := make([]int, len(starts))
	for k, s := range starts {
		b := s
		for b > 0 && (lines[b-1] == "" || strings.HasPrefix(lines[b-1], "SET ")) {
			b--
		}
		if k > 0 && b <= starts[k-1] {
			b = s
		}
		begin[k] = b
	}
	end := len(lines)
	for i := starts[len(starts)-1] + 2; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "-- Completed on ") || lines[i] == "--" && lines[i+1] == "-- PostgreSQL database dump complete" {
			end = i
			break
		}
	}
	for k, id := range ids {
		stop := end
		if k+1 < len(starts) {
			stop = begin[k+1]
		}
		if _, dup := pieces[id]; dup {
			return "", nil, nil, false
		}
		pieces[id] = join(begin[k], stop)
	}
	return join(0, begin[0]), ids, pieces, true
}

// Dependencies are the dump IDs of the entries a piece's entry depends on,
// from the "-- Dependencies: <id> ..." line pg_restore --verbose writes in
// its header; none when the header has no such line.
func Dependencies(piece string) []string {
	header := false
	for line := range strings.Lines(piece) {
		line = strings.TrimRight(line, "\n")
		switch {
		case tocEntryLine.MatchString(line):
			header = true
		case !header:
		case strings.HasPrefix(line, "-- Dependencies:"):
			return strings.Fields(strings.TrimPrefix(line, "-- Dependencies:"))
		case !strings.HasPrefix(line, "-- ") || line == "--":
			return nil
		}
	}
	return nil
}

// Settings are the lines of a piece that set what pg_restore changes
// between entries (default_tablespace, default_table_access_method): a
// session that runs later pieces needs the last of each.
func Settings(piece string) []string {
	var out []string
	for line := range strings.Lines(piece) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "SET default_tablespace = ") || strings.HasPrefix(line, "SET default_table_access_method = ") {
			out = append(out, line)
		}
	}
	return out
}
