package apply

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// ident quotes an identifier.
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// literal quotes a string constant for statements that take no bind
// parameters (CREATE ROLE ... PASSWORD, ALTER ... SET). Sessions run with
// standard_conforming_strings on, so only quotes need doubling.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// listGUCs are the settings whose value is a list: each element is quoted
// on its own, as pg_dumpall does, or the list would become one element.
var listGUCs = map[string]bool{
	"search_path": true, "temp_tablespaces": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "local_preload_libraries": true,
}

// setClause turns a stored "name=value" setting into "name TO value".
func setClause(setting string) string {
	name, value, _ := strings.Cut(setting, "=")
	if !listGUCs[strings.ToLower(name)] {
		return ident(name) + " TO " + literal(value)
	}
	var quoted []string
	for _, e := range splitGUCList(value) {
		quoted = append(quoted, literal(e))
	}
	if len(quoted) == 0 {
		return ident(name) + " TO ''"
	}
	return ident(name) + " TO " + strings.Join(quoted, ", ")
}

// splitGUCList splits a list setting at commas outside double quotes,
// removing the quotes ("" inside stands for one).
func splitGUCList(v string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' && inQuote && i+1 < len(v) && v[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		case (c == ' ' || c == '\t') && !inQuote && cur.Len() == 0:
		default:
			cur.WriteByte(c)
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" || len(out) > 0 {
		out = append(out, s)
	}
	return out
}
