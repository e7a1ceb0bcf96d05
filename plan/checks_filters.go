package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pghaul/pghaul/config"
)

// checkFilters reports each pattern of the file's filters that matches
// nothing on the source. A typo in databases.include or tables.only would
// migrate nothing, or less than meant, without a word (a blocker); one in
// an exclude or tables.skip would move what was meant to stay (a warning).
func (in *input) checkFilters() []Finding {
	var dbs, roles, exts []string
	for _, d := range in.src.Databases {
		if !d.IsTemplate {
			dbs = append(dbs, d.Name)
		}
		for _, e := range d.Extensions {
			exts = append(exts, e.Name)
		}
	}
	for _, r := range in.src.Roles {
		roles = append(roles, r.Name)
	}
	name := func(p config.Pattern, n string) bool { return p.MatchName(n) }
	out := unmatched("databases.include", "database", in.cfg.Databases.Include, Blocker, dbs, name)
	out = append(out, unmatched("databases.exclude", "database", in.cfg.Databases.Exclude, Warning, dbs, name)...)
	out = append(out, unmatched("roles.exclude", "role", in.cfg.Roles.Exclude, Warning, roles, name)...)
	out = append(out, unmatched("extensions.exclude", "extension", in.cfg.Extensions.Exclude, Warning, exts, name)...)
	out = append(out, in.unmatchedTables("tables.only", in.cfg.Tables.Only, Blocker)...)
	return append(out, in.unmatchedTables("tables.skip", in.cfg.Tables.Skip, Warning)...)
}

// unmatched reports the patterns of key that match none of names.
func unmatched(key, what string, patterns []config.Pattern, sev Severity, names []string, match func(config.Pattern, string) bool) []Finding {
	var out []Finding
	for _, p := range patterns {
		if slices.ContainsFunc(names, func(n string) bool { return match(p, n) }) {
			continue
		}
		out = append(out, unmatchedFinding(key, what, p, sev, config.Suggest(p.String(), names)))
	}
	return out
}

// unmatchedTables reports the table patterns that match no table of the
// selected databases, suggesting a table spelled with as many parts.
func (in *input) unmatchedTables(key string, patterns []config.Pattern, sev Severity) []Finding {
	var out []Finding
	for _, p := range patterns {
		var names []string
		found := false
		for _, db := range in.dbs {
			for _, t := range db.src.Tables {
				found = found || p.MatchTable(db.name, t.Schema, t.Name)
				names = append(names, strings.Join([]string{db.name, t.Schema, t.Name}[3-p.Parts():], "."))
			}
		}
		if !found {
			out = append(out, unmatchedFinding(key, "table of the selected databases", p, sev, config.Suggest(p.String(), names)))
		}
	}
	return out
}

func unmatchedFinding(key, what string, p config.Pattern, sev Severity, closest string) Finding {
	msg := fmt.Sprintf("%s pattern %q matches no %s on the source", key, p, what)
	if closest != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", closest)
	}
	return finding("filter-matches-nothing", sev, "source", msg, "correct the pattern in "+key+", or remove it")
}
