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
