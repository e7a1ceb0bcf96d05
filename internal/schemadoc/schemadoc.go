// Package schemadoc renders the migration file's JSON Schema
// (schema.json) as the reference page docs/configuration.md: one table per
// section, every key with its type, default and meaning, in the schema's
// order. The page is generated, never edited: TestConfigurationDoc fails
// when they differ, and -update rewrites it.
package schemadoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pghaul/pghaul/config"
)

// property is the part of a schema node the page shows.
type property struct {
	Ref         string               `json:"$ref"`
	Const       any                  `json:"const"`
	Type        any                  `json:"type"`
	Enum        []any                `json:"enum"`
	Description string               `json:"description"`
	Properties  ordered              `json:"properties"`
	Items       *property            `json:"items"`
	OneOf       []property           `json:"oneOf"`
	Minimum     *float64             `json:"minimum"`
	Maximum     *float64             `json:"maximum"`
	Defs        map[string]*property `json:"$defs"`
}

// ordered keeps an object's keys in the file's order.
type ordered struct {
	keys  []string
	props map[string]*property
}

func (o *ordered) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	o.props = map[string]*property{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		var p property
		if err := dec.Decode(&p); err != nil {
			return err
		}
		o.keys = append(o.keys, key)
		o.props[key] = &p
	}
	return nil
}

// rules are how values are read, which the schema cannot say.
const rules = `## How values are read

- Unknown keys are errors, with ` + "`" + `did you mean "replication.max_lag_bytes"?` + "`" + ` when a
  known key is close. Every problem is reported, each with ` + "`" + `file:line:col` + "`" + `.
- ` + "`" + `${VAR}` + "`" + ` is read from the environment; a missing variable is an error naming it
  (` + "`" + `validate --allow-missing-env` + "`" + ` lints without secrets). ` + "`" + `$$` + "`" + ` is a literal ` + "`" + `$` + "`" + `. A
  variable expanded into a URI's user info, its database name or a query parameter's
  value is percent-encoded, and one forming a whole ` + "`" + `key=value` + "`" + ` value is quoted, so
  passwords holding ` + "`" + `@` + "`" + `, ` + "`" + `/` + "`" + ` or spaces and certificate paths holding ` + "`" + `&` + "`" + ` or ` + "`" + `#` + "`" + ` just
  work (host, port and parameter names are taken as written).
- A password may also come from the environment, as for libpq: ` + "`" + `PGPASSWORD` + "`" + `, or a
  passfile (` + "`" + `PGPASSFILE` + "`" + `, ` + "`" + `~/.pgpass` + "`" + `). pg_dump and pg_restore get the same
  connection variables (` + "`" + `PGHOST` + "`" + `, ` + "`" + `PGSSLROOTCERT` + "`" + `, ...) as pghaul's own sessions,
  and no other ` + "`" + `PG*` + "`" + ` one. With ` + "`" + `method: replication` + "`" + ` the source's password found
  this way is written into the target's subscription, as one in ` + "`" + `source.uri` + "`" + ` would
  be: the target's worker cannot read pghaul's environment.
- Secrets never appear in output: connection strings are shown as
  ` + "`" + `postgres://user:***@host:5432/db` + "`" + `.
- Sizes are bytes or ` + "`" + `10GB` + "`" + `, ` + "`" + `512MiB` + "`" + ` (kB, MB, GB, TB are powers of 1000; KiB, MiB,
  GiB, TiB powers of 1024). Durations are Go syntax: ` + "`" + `30s` + "`" + `, ` + "`" + `15m` + "`" + `, ` + "`" + `24h` + "`" + `.
- Table patterns: ` + "`" + `a.b.c` + "`" + ` is database a, schema b, table c; ` + "`" + `b.c` + "`" + ` schema b, table c in
  every database; ` + "`" + `c` + "`" + ` table c everywhere. ` + "`" + `*` + "`" + ` matches any run of characters within
  one part; ` + "`" + `"quoted.names"` + "`" + ` hold dots (and match literally). Names match exactly as
  stored. A table left out keeps its definition on the target but gets no rows.
  Database, role and extension patterns are one part: dots in them are literal.

`

// Render writes the page for schema.
func Render(schema []byte) ([]byte, error) {
	var root property
	if err := json.Unmarshal(schema, &root); err != nil {
		return nil, fmt.Errorf("schema.json: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("<!-- Generated from schema.json by internal/schemadoc (go test ./internal/schemadoc -update); do not edit. -->\n\n")
	b.WriteString("# The migration file\n\n")
	b.WriteString(root.Description + "\n\n")
	b.WriteString("Editors validate the file with `schema.json` (add `# yaml-language-server: $schema=<path to schema.json>` at its top); `pghaul validate -c FILE` checks it without connecting.\n\n")
	var policy []string
	for _, k := range config.PolicyKeys() {
		policy = append(policy, "`"+k+"`")
	}
	fmt.Fprintf(&b, "These keys (or sections) may change between runs of one migration: %s. Changing any other key makes it another migration: apply then asks for `--reset-state`.\n\n", strings.Join(policy, ", "))
	var top []string
	for _, k := range root.Properties.keys {
		p := root.Properties.props[k]
		if len(p.Properties.keys) == 0 {
			top = append(top, k)
		}
	}
	b.WriteString(strings.TrimSpace(rules) + "\n\n")
	section(&b, "Top-level keys", "", top, root.Properties, root.Defs)
	for _, k := range root.Properties.keys {
		p := root.Properties.props[k]
		if len(p.Properties.keys) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## `%s`\n\n%s\n\n", k, p.Description)
		section(&b, "", k+".", p.Properties.keys, p.Properties, root.Defs)
		for _, sub := range p.Properties.keys {
			sp := p.Properties.props[sub]
			if len(sp.Properties.keys) > 0 {
				fmt.Fprintf(&b, "### `%s.%s`\n\n%s\n\n", k, sub, sp.Description)
				section(&b, "", k+"."+sub+".", sp.Properties.keys, sp.Properties, root.Defs)
			}
		}
	}
	return b.Bytes(), nil
}

func section(b *bytes.Buffer, title, prefix string, keys []string, props ordered, defs map[string]*property) {
	if title != "" {
		fmt.Fprintf(b, "## %s\n\n", title)
	}
	b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
	for _, k := range keys {
		p := props.props[k]
		if len(p.Properties.keys) > 0 {
			fmt.Fprintf(b, "| `%s%s` | object | | %s (below) |\n", prefix, k, cell(p.Description))
			continue
		}
		meaning, def := splitDefault(p.Description)
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, k, typeOf(p, defs), cell(def), cell(meaning))
	}
	b.WriteString("\n")
}

// splitDefault takes "… Default: X." off a description.
func splitDefault(desc string) (meaning, def string) {
	i := strings.LastIndex(desc, "Default: ")
	if i < 0 {
		return desc, ""
	}
	def = strings.TrimSuffix(strings.TrimSpace(desc[i+len("Default: "):]), ".")
	return strings.TrimSpace(desc[:i]), def
}

// typeOf says what a value may be.
func typeOf(p *property, defs map[string]*property) string {
	if p.Ref != "" {
		name := strings.TrimPrefix(p.Ref, "#/$defs/")
		if d := defs[name]; d != nil {
			switch name {
			case "duration":
				return "duration (`90s`, `5m`, `24h`)"
			case "size":
				return "size (bytes, or `512MB`, `1.5GiB`)"
			case "connection":
				return "connection string"
			case "names", "tables", "commands":
				return "list of strings"
			}
			return typeOf(d, defs)
		}
	}
	if p.Const != nil {
		return fmt.Sprintf("`%v`", p.Const)
	}
	if len(p.Enum) > 0 {
		var vals []string
		for _, v := range p.Enum {
			vals = append(vals, fmt.Sprintf("`%v`", v))
		}
		return "one of " + strings.Join(vals, ", ")
	}
	switch t := p.Type.(type) {
	case string:
		s := t
		if t == "integer" && p.Minimum != nil && p.Maximum != nil {
			s = fmt.Sprintf("integer %g–%g", *p.Minimum, *p.Maximum)
		} else if t == "array" && p.Items != nil {
			s = "list of " + typeOf(p.Items, defs) + "s"
		}
		return s
	case []any:
		var ts []string
		for _, x := range t {
			ts = append(ts, fmt.Sprint(x))
		}
		return strings.Join(ts, " or ")
	}
	if len(p.OneOf) > 0 {
		var ts []string
		for i := range p.OneOf {
			ts = append(ts, typeOf(&p.OneOf[i], defs))
		}
		return strings.Join(ts, " or ")
	}
	return "any"
}

// cell escapes a markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}
