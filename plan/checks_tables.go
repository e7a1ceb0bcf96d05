package plan

import (
	"fmt"

	"github.com/pghaul/pghaul/config"
)

// checkDependencies reports table filters that break what depends on the
// filtered tables: foreign keys (post-data would fail; a replicated
// TRUNCATE fails) and views (they would show no rows).
func (in *input) checkDependencies(db *dbInput) []Finding {
	if len(db.skipped) == 0 {
		return nil
	}
	skipped := refSet(db.skipped)
	copied := refSet(db.copy)
	var out []Finding
	for _, t := range db.src.Tables {
		for _, fk := range t.ForeignKeys {
			ref := TableRef{Schema: fk.RefSchema, Name: fk.RefTable}
			obj := fmt.Sprintf("table %s.%s", db.name, t.Ref())
			switch {
			case copied[t.Ref()] && skipped[ref]:
				out = append(out, finding("filter-breaks-dependency", Blocker, obj,
					fmt.Sprintf("foreign key %s references %s, whose rows are skipped: restoring the key would fail", fk.Name, ref),
					"copy "+ref.String()+" too, or skip "+t.Ref().String()))
			case skipped[t.Ref()] && copied[ref] && db.method == MethodReplication:
				out = append(out, finding("filter-breaks-dependency", Blocker, obj,
					fmt.Sprintf("skipped, but its foreign key %s references %s: a replicated TRUNCATE of %s would fail on the target", fk.Name, ref, ref),
					"copy "+t.Ref().String()+" too, or use method: dump for this database"))
			}
		}
	}
	for _, v := range db.src.Views {
		for _, dep := range v.DependsOn {
			if skipped[dep] {
				out = append(out, finding("filter-breaks-dependency", Warning, fmt.Sprintf("view %s.%s.%s", db.name, v.Schema, v.Name),
					fmt.Sprintf("reads %s, whose rows are skipped", dep), "skip the view's readers too, or copy "+dep.String()))
				break
			}
		}
	}
	return out
}

func refSet(ts []Table) map[TableRef]bool {
	m := make(map[TableRef]bool, len(ts))
	for _, t := range ts {
		m[t.Ref()] = true
	}
	return m
}

// checkFilterPartitions reports table patterns that name a partition but
// not its root: filters apply to whole partition trees.
func (in *input) checkFilterPartitions() []Finding {
	var out []Finding
	for _, list := range []struct {
		key      string
		patterns config.TablePatterns
	}{{"tables.skip", in.cfg.Tables.Skip}, {"tables.only", in.cfg.Tables.Only}} {
		for _, p := range list.patterns {
			out = append(out, in.partitionsNamed(list.key, p)...)
		}
	}
	return out
}

func (in *input) partitionsNamed(key string, p config.Pattern) []Finding {
	var out []Finding
	for _, db := range in.dbs {
		for _, t := range db.src.Tables {
			if t.ParentName == "" || !p.MatchTable(db.name, t.Schema, t.Name) {
				continue
			}
			root := rootOf(db.src, t)
			if p.MatchTable(db.name, root.Schema, root.Name) {
				continue
			}
			out = append(out, finding("filter-names-partition", Blocker, fmt.Sprintf("%s %q", key, p),
				fmt.Sprintf("names partition %s.%s of %s; filters apply to whole partition trees", db.name, t.Ref(), root),
				fmt.Sprintf("name the root table %s instead", root)))
		}
	}
	return out
}
