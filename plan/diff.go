package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Diff names the structural differences between two snapshots of one
// server (what a stale plan missed): at most limit lines, most general first.
func Diff(old, cur Snapshot, limit int) []string {
	a, b := old.structural(), cur.structural()
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if a.Server.Version != b.Server.Version {
		add("server version %s -> %s", a.Server.Version, b.Server.Version)
	}
	for _, k := range unionKeys(a.Settings, b.Settings) {
		if a.Settings[k] != b.Settings[k] {
			add("setting %s %q -> %q", k, a.Settings[k], b.Settings[k])
		}
	}
	diffNamed(a.Roles, b.Roles, func(r Role) string { return r.Name }, "role", add)
	diffNamed(shallow(a.Databases), shallow(b.Databases), func(d Database) string { return d.Name }, "database", add)
	for _, da := range a.Databases {
		if db := b.Database(da.Name); db != nil {
			diffContents(da.Name, da.Contents, db.Contents, add)
		}
	}
	if len(out) == 0 && a.Fingerprint() != b.Fingerprint() {
		add("other catalog details")
	}
	if limit > 0 && len(out) > limit {
		out = append(out[:limit], fmt.Sprintf("and %d more", len(out)-limit))
	}
	return out
}

func diffContents(db string, a, b Contents, add func(string, ...any)) {
	diffNamed(a.Schemas, b.Schemas, func(s Schema) string { return s.Name }, "schema "+db+".", add)
	diffNamed(a.Extensions, b.Extensions, func(e Extension) string { return e.Name + " " + e.Version }, "extension in "+db+":", add)
	diffNamed(a.Tables, b.Tables, func(t Table) string { return t.Ref().String() }, "table "+db+".", add)
	diffNamed(a.Types, b.Types, func(o Object) string { return o.Schema + "." + o.Name }, "type "+db+".", add)
	diffNamed(a.Views, b.Views, func(v View) string { return v.Schema + "." + v.Name }, "view "+db+".", add)
	diffNamed(a.Sequences, b.Sequences, func(s Sequence) string { return s.Schema + "." + s.Name }, "sequence "+db+".", add)
}

// diffNamed reports items added, removed, or changed under the same name.
func diffNamed[T any](a, b []T, name func(T) string, what string, add func(string, ...any)) {
	am, bm := byName(a, name), byName(b, name)
	sep := " "
	if what[len(what)-1] == '.' || what[len(what)-1] == ':' {
		sep = ""
		if what[len(what)-1] == ':' {
			sep = " "
		}
	}
	for _, k := range unionKeys(am, bm) {
		x, inA := am[k]
		y, inB := bm[k]
		switch {
		case !inA:
			add("%s%s%s added", what, sep, k)
		case !inB:
			add("%s%s%s removed", what, sep, k)
		case !sameJSON(x, y):
			add("%s%s%s changed", what, sep, k)
		}
	}
}

func byName[T any](items []T, name func(T) string) map[string]T {
	m := make(map[string]T, len(items))
	for _, it := range items {
		m[name(it)] = it
	}
	return m
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// shallow drops the databases' contents, compared table by table instead.
func shallow(dbs []Database) []Database {
	out := make([]Database, len(dbs))
	for i, d := range dbs {
		d.Contents = Contents{}
		out[i] = d
	}
	return out
}
