package plan

import (
	"fmt"
	"strings"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/words"
)

// steps lays out the plan's steps in DESIGN.md section 4's order: cluster
// steps, then each database's in name order.
func (in *input) steps() []Step {
	steps := in.clusterSteps()
	for _, db := range in.dbs {
		steps = append(steps, in.databaseSteps(db)...)
	}
	return steps
}

func (in *input) clusterSteps() []Step {
	var steps []Step
	var create, members, settings []string
	for _, r := range in.selectedRoles() {
		if in.dst.Role(r.Name) == nil {
			create = append(create, r.Name)
		}
		for _, m := range r.MemberOf {
			if in.cfg.Roles.Selects(m.Role) || in.dst.Role(m.Role) != nil {
				members = append(members, r.Name+" in "+m.Role)
			}
		}
		if len(r.Config) > 0 || len(r.DatabaseConfig) > 0 {
			settings = append(settings, r.Name)
		}
	}
	if len(create) > 0 {
		steps = append(steps, Step{ID: "cluster/roles", Kind: StepCreateRoles, Scope: ClusterScope,
			Detail: fmt.Sprintf("create %s: %s (passwords: %s)", words.Count(len(create), "role"), words.Some(create, 5), in.cfg.Roles.Passwords), Params: Params{Roles: create}})
	}
	if len(members) > 0 {
		steps = append(steps, Step{ID: "cluster/memberships", Kind: StepGrantMemberships, Scope: ClusterScope,
			Detail: fmt.Sprintf("grant %s: %s", words.Count(len(members), "membership"), words.Some(members, 3))})
	}
	if len(settings) > 0 {
		steps = append(steps, Step{ID: "cluster/role-settings", Kind: StepSetRoleSettings, Scope: ClusterScope,
			Detail: fmt.Sprintf("set role settings of %s", words.Some(settings, 5)), Params: Params{Roles: settings}})
	}
	return steps
}

func (in *input) databaseSteps(db *dbInput) []Step {
	b := &stepList{db: db}
	if db.replicating {
		in.cutoverSteps(b)
		return b.steps
	}
	s := db.src
	if db.dst == nil {
		b.add("create-database", StepCreateDatabase, fmt.Sprintf("create database %s (%s, %s, owner %s)", db.name, s.Encoding, localeOf(s), s.Owner), Params{})
	}
	if db.dst == nil || len(s.Settings) > 0 || len(s.ACL) > 0 || s.Comment != "" {
		b.add("configure-database", StepConfigureDatabase, "set owner, settings, privileges and comment of the database", Params{})
	}
	if db.method == MethodDump {
		in.dumpSteps(b)
	} else {
		in.replicationSteps(b)
	}
	return b.steps
}

func localeOf(d *Database) string {
	if d.Locale != "" {
		return "locale " + d.Locale
	}
	if d.Collate == d.Ctype {
		return "locale " + d.Collate
	}
	return "collate " + d.Collate + ", ctype " + d.Ctype
}

func (in *input) dumpSteps(b *stepList) {
	b.add("snapshot", StepExportSnapshot, "export a snapshot (pg_export_snapshot) that the schema dump and the copy share", Params{})
	in.schemaAndCopySteps(b, true)
	if n := len(b.db.src.Sequences); n > 0 {
		b.add("sequences", StepSetSequences, fmt.Sprintf("set %s read after the copy", words.Count(n, "sequence value")), Params{})
	}
}

func (in *input) replicationSteps(b *stepList) {
	db, n := b.db, b.db.names
	pub := Params{Publication: n.Publication, AllTables: in.allTables(db)}
	pubDetail := "FOR ALL TABLES"
	if !pub.AllTables {
		pub.Tables = refs(published(db))
		pubDetail = fmt.Sprintf("FOR TABLE with %s", words.Count(len(pub.Tables), "table"))
	}
	b.add("publication", StepCreatePublication, fmt.Sprintf("create publication %s %s", n.Publication, pubDetail), pub)
	snapshot := in.cfg.Replication.InitialCopy == config.InitialCopySnapshot
	if snapshot {
		b.add("slot", StepCreateSlot, fmt.Sprintf("create slot %s (pgoutput) exporting its snapshot", n.Slot), Params{Slot: n.Slot})
	} else {
		b.add("slot", StepCreateSlot, fmt.Sprintf("create slot %s (pgoutput)", n.Slot), Params{Slot: n.Slot})
	}
	in.schemaAndCopySteps(b, snapshot)
	sub := Params{Subscription: n.Subscription, Publication: n.Publication, Slot: n.Slot, CopyData: !snapshot}
	if !snapshot {
		// The tables whose rows the subscription copies, for verify.
		sub.Tables = refs(published(db))
	}
	b.add("subscription", StepCreateSubscription, fmt.Sprintf("create subscription %s (copy_data = %t)", n.Subscription, !snapshot), sub)
	if !snapshot {
		b.add("wait-for-sync", StepWaitForSync, "wait until every table's initial copy is done (pg_subscription_rel state r)", Params{Subscription: n.Subscription})
	}
	in.cutoverSteps(b)
}

// schemaAndCopySteps are the schema dump and restore around the data copy;
// copy is false when the subscription copies the rows itself.
func (in *input) schemaAndCopySteps(b *stepList, copy bool) {
	db := b.db
	b.add("dump-schema", StepDumpSchema, "pg_dump pre-data and post-data under the snapshot", Params{})
	b.add("pre-data", StepRestorePreData, "restore pre-data (types, tables, functions) in one transaction", Params{ExcludeExtensions: in.excludedExtensions(db)})
	if copy && len(db.copy) > 0 {
		var bytes int64
		for _, t := range db.copy {
			bytes += t.Bytes
		}
		detail := fmt.Sprintf("copy %s (%s) with up to %s", words.Count(len(db.copy), "table"), byteString(bytes), words.Count(in.cfg.Parallel.Tables, "stream"))
		if r := in.cfg.Parallel.MaxRate; r != nil {
			detail += fmt.Sprintf(", at most %s/s in all", byteString(int64(*r)))
		}
		if len(db.skipped) > 0 {
			detail += fmt.Sprintf(", %d skipped", len(db.skipped))
		}
		b.add("copy-data", StepCopyData, detail, Params{Tables: refs(db.copy), Skipped: refs(db.skipped)})
	}
	if n := db.src.LargeObjects; n > 0 && copy {
		b.add("large-objects", StepCopyLargeObjects, fmt.Sprintf("copy %s with owners and privileges", words.Count(int(n), "large object")), Params{})
	}
	b.add("post-data", StepRestorePostData, fmt.Sprintf("restore post-data (indexes, constraints, triggers) with up to %s", words.Count(in.cfg.Parallel.Indexes, "job")), Params{})
}

func (in *input) cutoverSteps(b *stepList) {
	b.steps = append(b.steps, CutoverSteps(in.cfg.Replication, in.databasePlan(b.db))...)
}

// CutoverSteps are a replicating database's last steps under a lag policy:
// wait for the lag; then, with stop, the guarded cut-over (DESIGN.md
// section 5): freeze writes on the source and wait for the fence, carry
// what replication does not (sequences, unlogged tables, large objects,
// materialized views), verify, and switch. apply runs them as one unit:
// none of them is kept done until the switch is. It rebuilds them when
// only the policy changed since the migration started.
func CutoverSteps(r config.Replication, dp DatabasePlan) []Step {
	b := &stepList{db: &dbInput{name: dp.Name}}
	n := dp.Names
	if r.MaxLagBytes != nil {
		b.add("wait-for-lag", StepWaitForLag, fmt.Sprintf("wait until the lag is at most %d bytes (timeout %s), checking for schema drift; checked again on every run", *r.MaxLagBytes, r.WaitTimeout),
			Params{Slot: n.Slot, Subscription: n.Subscription, Publication: n.Publication, MaxLagBytes: r.MaxLagBytes})
	}
	if !r.Stop {
		return b.steps
	}
	if r.Freezes() {
		b.add("freeze", StepFreezeWrites, fmt.Sprintf("freeze writes on the source database %s for at most %s: ALLOW_CONNECTIONS false (saved first; restored on abort, or by cleanup --unfreeze), its other sessions ended%s",
			dp.Name, r.FreezeTimeout, hookNote(hook{"before_freeze", r.Hooks.BeforeFreeze}, hook{"after_freeze", r.Hooks.AfterFreeze})), Params{Slot: n.Slot, Publication: n.Publication})
		b.add("fence", StepFence, "wait until the subscription confirms the frozen source's last WAL position, then check for schema drift",
			Params{Slot: n.Slot, Subscription: n.Subscription, Publication: n.Publication})
	}
	if dp.Sequences > 0 && r.SyncSequences {
		b.add("sync-sequences", StepSyncSequences, fmt.Sprintf("set %s read on the source%s", words.Count(dp.Sequences, "sequence value"), frozenNote(r)), Params{})
	}
	if len(dp.Unlogged) > 0 {
		b.add("unlogged", StepCopyUnlogged, fmt.Sprintf("copy %s again (replication does not carry them)", words.Count(len(dp.Unlogged), "unlogged table")), Params{Tables: dp.Unlogged})
	}
	b.add("large-objects", StepSyncLargeObjects, "bring over the large objects made, changed or removed since the copy", Params{})
	if len(dp.MatViews) > 0 {
		b.add("refresh-matviews", StepRefreshMatViews, fmt.Sprintf("refresh %s", words.Count(len(dp.MatViews), "materialized view")), Params{Tables: dp.MatViews})
	}
	if r.Verify != config.VerifyNone && len(dp.Copied) > 0 {
		what := "row counts"
		if r.Verify == config.VerifyChecksums {
			what = "row counts and checksums"
		}
		b.add("verify", StepVerifyCutover, fmt.Sprintf("compare the %s of %s on the source%s and the target; a difference aborts", what, words.Count(len(dp.Copied), "table"), frozenNote(r)),
			Params{Tables: dp.Copied, Checksums: r.Verify == config.VerifyChecksums})
	}
	stays := ""
	if r.Freezes() {
		stays = "; the source stays frozen"
	}
	b.add("stop-replication", StepStopReplication, fmt.Sprintf("switch: drop subscription %s, publication %s and slot %s%s%s", n.Subscription, n.Publication, n.Slot, stays,
		hookNote(hook{"after_cutover", r.Hooks.AfterCutover})), Params{Subscription: n.Subscription, Publication: n.Publication, Slot: n.Slot})
	return b.steps
}

func frozenNote(r config.Replication) string {
	if r.Freezes() {
		return " (frozen)"
	}
	return ""
}

// hook is a hook point and its commands.
type hook struct {
	name string
	cmds config.Commands
}

// hookNote names the hook points that have commands, with their counts:
// "; hooks: before_freeze (1), after_freeze (2)". The commands themselves
// are not shown: they may hold addresses or secrets that a plan in a pull
// request should not.
func hookNote(hooks ...hook) string {
	var parts []string
	for _, h := range hooks {
		if len(h.cmds) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d)", h.name, len(h.cmds)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; hooks: " + strings.Join(parts, ", ")
}

// IsCutover reports the kinds CutoverSteps makes.
func IsCutover(k StepKind) bool {
	switch k {
	case StepWaitForLag, StepFreezeWrites, StepFence, StepSyncSequences, StepCopyUnlogged, StepSyncLargeObjects,
		StepRefreshMatViews, StepVerifyCutover, StepStopReplication:
		return true
	}
	return false
}

// IsCondition reports the kinds that are conditions, never checkpoints:
// every run that reaches them evaluates them again.
func IsCondition(k StepKind) bool { return k == StepWaitForLag }

func (in *input) excludedExtensions(db *dbInput) []string {
	var out []string
	for _, e := range db.src.Extensions {
		if !in.cfg.Extensions.Selects(e.Name) {
			out = append(out, e.Name)
		}
	}
	return out
}

func matviews(d *Database) []TableRef {
	var out []TableRef
	for _, v := range d.Views {
		if v.Materialized {
			out = append(out, TableRef{Schema: v.Schema, Name: v.Name})
		}
	}
	return out
}

func refs(ts []Table) []TableRef {
	out := make([]TableRef, len(ts))
	for i, t := range ts {
		out[i] = t.Ref()
	}
	return out
}

func byteString(n int64) string { return config.ByteSize(n).String() }

// stepList appends a database's steps with IDs "db:<name>/<suffix>".
type stepList struct {
	db    *dbInput
	steps []Step
}

func (b *stepList) add(suffix string, kind StepKind, detail string, p Params) {
	p.Database = b.db.name
	b.steps = append(b.steps, Step{ID: "db:" + b.db.name + "/" + suffix, Kind: kind, Scope: "database " + b.db.name,
		Detail: strings.TrimSpace(detail), Params: p})
}
