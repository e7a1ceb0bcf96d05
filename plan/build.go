package plan

import (
	"cmp"
	"slices"
	"strings"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/dsn"
	"github.com/pghaul/pghaul/internal/provider"
)

// input is what the checks and the step builder read: the config, both
// snapshots in canonical order, and the selected databases.
type input struct {
	cfg      *config.Config
	src, dst Snapshot
	env      Env
	dbs      []*dbInput
	// srcProvider is the managed service the source runs on, or nil.
	srcProvider *provider.Provider
	// dstProvider is the managed service the target runs on, or nil.
	dstProvider *provider.Provider
}

// dbInput is one selected database as the planner sees it.
type dbInput struct {
	name string
	src  *Database
	// dst is nil when the database is missing on the target.
	dst *Database
	// copy holds the tables whose rows are copied (plain tables and leaf
	// partitions), largest first; skipped those the table filters leave out.
	copy, skipped []Table
	method        Method
	reason        string
	names         ReplicationNames
	// replicating: this migration's publication, slot and enabled
	// subscription all exist; only the cut-over steps remain.
	replicating bool
}

// Build turns a config and two inspected clusters into a plan. It is pure
// and deterministic: the same inputs give byte-identical plans, whatever
// order the snapshots list things in.
func Build(cfg *config.Config, src, dst Snapshot, env Env) Plan {
	in := &input{cfg: cfg, src: src.normalized(), dst: dst.normalized(), env: env}
	in.srcProvider = provider.Detect(in.src.RoleNames())
	in.dstProvider = provider.Detect(in.dst.RoleNames())
	in.selectDatabases()
	findings := in.chooseMethods()
	findings = append(findings, in.checks()...)
	p := Plan{
		FormatVersion:     FormatVersion,
		ConfigHash:        cfg.File.Hash,
		SourceFingerprint: src.Fingerprint(),
		TargetFingerprint: dst.Fingerprint(),
		Source:            Endpoint{URI: dsn.Redact(cfg.Source.URI), Version: in.src.Server.Version, SystemID: in.src.Server.SystemID},
		Target:            Endpoint{URI: dsn.Redact(cfg.Target.URI), Version: in.dst.Server.Version, SystemID: in.dst.Server.SystemID},
		Findings:          sortFindings(findings),
		Steps:             in.steps(),
	}
	for _, db := range in.dbs {
		dp := in.databasePlan(db)
		p.Databases = append(p.Databases, dp)
		p.Totals.Tables += dp.Tables
		p.Totals.Bytes += dp.Bytes
	}
	p.Totals.Databases = len(p.Databases)
	p.Totals.Blockers = len(p.Blockers())
	p.Totals.Warnings = len(p.Warnings())
	p.Totals.Steps = len(p.Steps)
	return p
}

// databasePlan sums up one database for the plan.
func (in *input) databasePlan(db *dbInput) DatabasePlan {
	dp := DatabasePlan{Name: db.name, Method: db.method, Reason: db.reason, Create: db.dst == nil, Tables: len(db.copy),
		Sequences: len(db.src.Sequences), MatViews: matviews(db.src), Replicating: db.replicating}
	if db.method == MethodReplication {
		dp.Names = db.names
		dp.Copied = refs(db.copy)
		for _, t := range db.copy {
			if t.Persistence == "u" {
				dp.Unlogged = append(dp.Unlogged, t.Ref())
			}
		}
	}
	for _, t := range db.copy {
		dp.Bytes += t.Bytes
	}
	return dp
}

// selectDatabases picks the source databases the config selects and sorts
// each one's tables into copied and skipped.
func (in *input) selectDatabases() {
	for i := range in.src.Databases {
		d := &in.src.Databases[i]
		if d.IsTemplate || !in.cfg.Databases.Selects(d.Name) {
			continue
		}
		db := &dbInput{name: d.Name, src: d, dst: in.dst.Database(d.Name), names: NamesFor(d.Name, in.dst.Server.SystemID)}
		db.copy, db.skipped = in.classifyTables(d)
		db.replicating = in.cfg.Method != config.MethodDump && in.completeSet(db)
		in.dbs = append(in.dbs, db)
	}
}

// classifyTables returns the tables whose rows move and those the filters
// skip. Only plain tables and leaf partitions hold rows; a partition
// follows the filter of its root; extension tables move only when they are
// configuration tables and extension_tables is on.
func (in *input) classifyTables(d *Database) (copy, skipped []Table) {
	for _, t := range d.Tables {
		if !movesRows(in.cfg.Tables, t) {
			continue
		}
		root := rootOf(d, t)
		if in.cfg.Tables.Selects(d.Name, root.Schema, root.Name) {
			copy = append(copy, t)
		} else {
			skipped = append(skipped, t)
		}
	}
	slices.SortStableFunc(copy, func(a, b Table) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), compareRefs(a.Ref(), b.Ref()))
	})
	return copy, skipped
}

// movesRows reports whether t's rows are the migration's to move unless
// a table filter leaves them out: it holds rows, and it is no extension's,
// or an extension configuration table with extension_tables on.
func movesRows(f config.Tables, t Table) bool {
	return holdsRows(t) && (t.Extension == "" || t.ExtConfig && f.ExtensionTables)
}

// CopiesRows reports whether the migration copies the rows of t in
// database db, whose partition tree's root is root (t itself when it is
// no partition): what the plan decides for the tables it lists, for a
// table the copy finds under its snapshot.
func CopiesRows(cfg *config.Config, db string, t Table, root TableRef) bool {
	return movesRows(cfg.Tables, t) && cfg.Tables.Selects(db, root.Schema, root.Name)
}

// holdsRows reports whether the table stores rows itself: plain tables and
// leaf partitions, not partitioned parents, foreign or temporary tables.
func holdsRows(t Table) bool { return t.Kind == KindTable && t.Persistence != "t" }

// rootOf follows partition parents up to the root of t's tree.
func rootOf(d *Database, t Table) TableRef {
	ref := t.Ref()
	for range 64 { // partition trees are shallow; the bound guards a cycle in bad input
		p := findTable(d, ref)
		if p == nil || p.ParentName == "" {
			return ref
		}
		ref = TableRef{Schema: p.ParentSchema, Name: p.ParentName}
	}
	return ref
}

func findTable(d *Database, ref TableRef) *Table {
	i, ok := slices.BinarySearchFunc(d.Tables, ref, func(t Table, r TableRef) int { return compareRefs(t.Ref(), r) })
	if !ok {
		return nil
	}
	return &d.Tables[i]
}

func sortFindings(fs []Finding) []Finding {
	rank := map[Severity]int{Blocker: 0, Warning: 1, Info: 2}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(rank[a.Severity], rank[b.Severity]), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Object, b.Object), cmp.Compare(a.Message, b.Message))
	})
	return slices.CompactFunc(fs, func(a, b Finding) bool { return a == b })
}

// finding builds a Finding with its documentation link.
func finding(code string, sev Severity, object, message, fix string) Finding {
	return Finding{Code: code, Severity: sev, Object: object, Message: message, Fix: fix, Doc: DocLink(code)}
}

// DocLink is where docs/findings.md explains a finding code.
func DocLink(code string) string { return "docs/findings.md#" + code }

// DocLinkAt is code's documentation under base, the URL of pghaul's docs/
// folder (for a link that must work outside the repository).
func DocLinkAt(base, code string) string {
	return strings.TrimSuffix(base, "/") + "/findings.md#" + code
}
