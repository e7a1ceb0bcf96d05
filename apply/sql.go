package apply

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/plan"
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

// aclItem is one entry of aclexplode(): grantee (or PUBLIC), privilege.
type aclItem struct {
	Grantee   string `json:"grantee"`
	Privilege string `json:"privilege"`
	Grantable bool   `json:"grantable"`
}

// aclJSON reads an ACL column (%s) as JSON aclItems.
const aclJSON = `COALESCE((SELECT json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
		'privilege', a.privilege_type, 'grantable', a.is_grantable)) FROM aclexplode(%s) a), '[]')`

// grants replays an explicit ACL on object ("DATABASE x", "LARGE OBJECT
// 42"): the default PUBLIC privileges revoked, then each entry granted.
func grants(object string, acl []aclItem) []string {
	stmts := []string{"REVOKE ALL ON " + object + " FROM PUBLIC"}
	for _, a := range acl {
		grantee := "PUBLIC"
		if a.Grantee != "PUBLIC" {
			grantee = ident(a.Grantee)
		}
		g := "GRANT " + a.Privilege + " ON " + object + " TO " + grantee
		if a.Grantable {
			g += " WITH GRANT OPTION"
		}
		stmts = append(stmts, g)
	}
	return stmts
}

// queryStrings runs a query returning one text column.
func queryStrings(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]string, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// splitRefs spells tables as the two arrays the catalog queries unnest
// ($1::text[], $2::text[]): schemas and names.
func splitRefs(refs []plan.TableRef) (schemas, names []string) {
	for _, r := range refs {
		schemas, names = append(schemas, r.Schema), append(names, r.Name)
	}
	return schemas, names
}
