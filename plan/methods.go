package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/dsn"

	"github.com/pghaul/pghaul/internal/words"
)

// chooseMethods gives every database its method. A failed replication
// prerequisite is a blocker under method: replication; under auto it moves
// the database to dump, reported as info; under dump it is not checked.
func (in *input) chooseMethods() []Finding {
	if in.cfg.Method == config.MethodDump {
		for _, db := range in.dbs {
			db.method, db.reason = MethodDump, "method: dump"
		}
		return nil
	}
	var out []Finding
	cluster := in.clusterPrereqs()
	var replicating []*dbInput
	for _, db := range in.dbs {
		if db.replicating {
			db.method, db.reason = MethodReplication, "replicating: this migration's publication, slot and subscription exist"
			continue
		}
		if nothingToReplicate(db) {
			db.method, db.reason = MethodDump, "no tables, sequences or large objects: nothing to replicate"
			out = append(out, finding("nothing-to-replicate", Info, "database "+db.name,
				"it has no tables, sequences or large objects: it gets no publication, slot or subscription, is moved once by the dump method (its schema, functions, types) and is done at once; a table created there after the plan is not migrated", ""))
			continue
		}
		fails := append(slices.Clone(cluster), in.dbPrereqs(db)...)
		out = append(out, in.settle(db, fails)...)
		if db.method == MethodReplication {
			replicating = append(replicating, db)
		}
	}
	if f := in.checkSlots(len(replicating)); f != nil {
		for _, db := range replicating {
			out = append(out, in.settle(db, []Finding{*f})...)
		}
	}
	return out
}

// nothingToReplicate reports a database whose data nothing could change
// while it migrates: no table, sequence or large object (the bootstrap
// database, often). Replicating it would cost a slot and a subscription,
// and the cut-over's wait for an apply worker, for no row.
func nothingToReplicate(db *dbInput) bool {
	c := db.src
	return c != nil && c.Inspected && len(c.Tables) == 0 && len(c.Sequences) == 0 && c.LargeObjects == 0
}

// settle decides db's method from its failed prerequisites and returns
// them with the severity the config's method gives them.
func (in *input) settle(db *dbInput, fails []Finding) []Finding {
	if in.cfg.Method == config.MethodReplication {
		db.method, db.reason = MethodReplication, "method: replication"
		for i := range fails {
			fails[i].Severity = Blocker
		}
		return fails
	}
	if len(fails) == 0 {
		if db.method == "" {
			db.method, db.reason = MethodReplication, "method: auto, replication prerequisites hold"
		}
		return nil
	}
	db.method, db.reason = MethodDump, "method: auto, replication not possible: "+fails[0].Code
	for i := range fails {
		fails[i].Severity = Info
		fails[i].Message += "; method auto uses dump for " + db.name
	}
	return fails
}

// clusterPrereqs are the replication prerequisites of the servers.
func (in *input) clusterPrereqs() []Finding {
	var out []Finding
	if wl := in.src.Settings["wal_level"]; wl != "logical" {
		out = append(out, finding("wal-level-not-logical", "", "source", fmt.Sprintf("wal_level is %q; logical replication needs \"logical\"", wl),
			cmp.Or(in.srcProvider.LogicalWALFix(), "ALTER SYSTEM SET wal_level = logical, then restart the source")))
	}
	me := in.src.Me
	if !me.Superuser && !me.Replication && !slices.Contains(me.MemberOf, "rds_replication") {
		out = append(out, finding("no-replication-privilege", "", "source", fmt.Sprintf("role %s has no REPLICATION attribute: it can create neither the slot nor the subscription's connection", me.Name),
			cmp.Or(in.srcProvider.ReplicationFix(me.Name), fmt.Sprintf("ALTER ROLE %s REPLICATION (GRANT rds_replication TO %s on RDS)", me.Name, me.Name))))
	}
	if in.src.InRecovery {
		out = append(out, finding("source-is-standby", "", "source", "the source is a standby (pg_is_in_recovery): a publication cannot be created on it",
			"point source.uri at the primary"))
	}
	if in.src.Pooled {
		out = append(out, finding("source-behind-pooler", "", "source",
			"source.uri leads to a connection pooler (it dropped the startup setting default_transaction_read_only): a pooler carries no replication connection, which the slot and its snapshot need",
			"point source.uri at the PostgreSQL server itself, not the pooler"))
	}
	if in.env.SubscriptionRefused != "" {
		out = append(out, finding("subscription-connection-refused", "", "target", in.env.SubscriptionRefused,
			"set source.uri_from_target to an address, credentials and CA file (sslrootcert=) the target server has"))
	}
	if in.env.ReplicationRefused != "" && in.cfg.Replication.InitialCopy == config.InitialCopySnapshot {
		out = append(out, finding("replication-connection-refused", "", "source",
			"the source refuses pghaul a replication connection ("+in.env.ReplicationRefused+"): the slot that exports the copy's snapshot needs one",
			"allow replication connections for the role in the source's pg_hba.conf (a line for the 'replication' database), point source.uri at the server rather than a pooler, or set replication.initial_copy: subscription"))
	}
	return out
}

// dbPrereqs are the replication prerequisites of one database.
func (in *input) dbPrereqs(db *dbInput) []Finding {
	var out []Finding
	out = append(out, in.checkPublicationPrivilege(db)...)
	out = append(out, in.checkSubscriptionPrivilege(db)...)
	for _, t := range published(db) {
		out = append(out, replicaIdentity(db.name, t)...)
	}
	return out
}

// published are the tables the publication carries: permanent copied tables.
func published(db *dbInput) []Table {
	var out []Table
	for _, t := range db.copy {
		if t.Persistence == "p" {
			out = append(out, t)
		}
	}
	return out
}

// hasAivenExtras reports aiven_extras in the database: the extension, or
// its functions.
func hasAivenExtras(d *Database) bool {
	return d != nil && (d.AivenExtras || slices.ContainsFunc(d.Extensions, func(e Extension) bool { return e.Name == "aiven_extras" }))
}

// allTables reports whether the publication can be FOR ALL TABLES: nothing
// is filtered and the role may create one (superuser or aiven_extras).
func (in *input) allTables(db *dbInput) bool {
	t := in.cfg.Tables
	unfiltered := len(t.Skip) == 0 && len(t.Only) == 0 && t.ExtensionTables
	return unfiltered && (in.src.Me.Superuser || hasAivenExtras(db.src))
}

func (in *input) checkPublicationPrivilege(db *dbInput) []Finding {
	me := in.src.Me
	if me.Superuser || hasAivenExtras(db.src) || !db.src.Inspected {
		return nil
	}
	// Every reason at once: fixing one to meet the next costs a round.
	var why, fixes []string
	if !db.src.CanCreate {
		why = append(why, fmt.Sprintf("role %s lacks CREATE on database %s", me.Name, db.name))
		fixes = append(fixes, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s", db.name, me.Name))
	}
	if n := notOwned(published(db)); len(n) > 0 {
		why = append(why, fmt.Sprintf("FOR TABLE needs ownership and role %s does not own %s", me.Name, words.Some(n, 3)))
		fixes = append(fixes, "connect as the tables' owner")
	}
	if len(why) == 0 {
		return nil
	}
	return []Finding{finding("publication-privilege", "", "database "+db.name, "cannot create the publication: "+strings.Join(why, "; and "),
		strings.Join(append(fixes, "or connect as a superuser, or install aiven_extras"), ", "))}
}

func notOwned(ts []Table) []string {
	var out []string
	for _, t := range ts {
		if !t.OwnedByMe {
			out = append(out, t.Ref().String())
		}
	}
	return out
}

func (in *input) checkSubscriptionPrivilege(db *dbInput) []Finding {
	me := in.dst.Me
	// A database pghaul creates gets aiven_extras from the source's schema
	// when the target offers it.
	inherits := db.dst == nil && hasAivenExtras(db.src) && in.available("aiven_extras")
	if me.Superuser || hasAivenExtras(db.dst) || inherits {
		return nil
	}
	if in.env.SubscriptionCreatable && (db.dst == nil || db.dst.CanCreate || in.dst.Server.Major < 16) {
		return nil // the probe created one
	}
	var why string
	switch {
	case in.dst.Server.Major < 16:
		why = fmt.Sprintf("role %s is not a superuser (before PostgreSQL 16 only superusers create subscriptions)", me.Name)
	case !slices.Contains(me.MemberOf, "pg_create_subscription"):
		why = fmt.Sprintf("role %s is not a member of pg_create_subscription", me.Name)
	case db.dst != nil && !db.dst.CanCreate:
		why = fmt.Sprintf("role %s lacks CREATE on database %s", me.Name, db.name)
	case !dsn.HasPassword(in.cfg.Source.SubscriptionURI()) && !in.env.SubscriptionPassword:
		why = "a non-superuser subscription must authenticate with a password, and none is in the source URI, PGPASSWORD or a passfile"
	default:
		return nil
	}
	fix := fmt.Sprintf("GRANT pg_create_subscription TO %s and GRANT CREATE ON DATABASE %s TO %s, connect as a superuser, or install aiven_extras", me.Name, db.name, me.Name)
	if in.dst.Server.Major < 16 {
		// pg_create_subscription exists from 16 on.
		fix = cmp.Or(in.dstProvider.SubscriptionFix(), "connect to the target as a superuser (or the service's own way: aiven_extras on Aiven), upgrade the target to PostgreSQL 16+, or use method: dump")
	}
	return []Finding{finding("no-subscription-privilege", "", "target database "+db.name, "cannot create the subscription: "+why, fix)}
}

// replicaIdentity checks that UPDATE and DELETE of a published table can
// be replicated, and do not start failing on the source once published.
func replicaIdentity(db string, t Table) []Finding {
	obj := fmt.Sprintf("table %s.%s", db, t.Ref())
	switch {
	case t.ReplicaIdentity == "n" || t.ReplicaIdentity == "d" && !t.HasPrimaryKey:
		return []Finding{finding("no-replica-identity", "", obj,
			"no primary key or replica identity: once published, its UPDATE and DELETE fail on the source",
			fmt.Sprintf("add a primary key, ALTER TABLE %s REPLICA IDENTITY USING INDEX <unique index> or FULL, or skip the table", t.Ref()))}
	case t.ReplicaIdentity == "f":
		var bad []string
		for _, c := range t.Columns {
			if !c.Equality && !c.Generated {
				bad = append(bad, fmt.Sprintf("%s (%s)", c.Name, c.Type))
			}
		}
		if len(bad) > 0 {
			return []Finding{finding("replica-identity-full-unusable", "", obj,
				"REPLICA IDENTITY FULL with columns of types without equality: "+strings.Join(bad, ", ")+"; the subscriber cannot apply UPDATE or DELETE",
				"add a primary key or a unique index and use REPLICA IDENTITY USING INDEX, or skip the table")}
		}
	}
	return nil
}

// checkSlots compares what n replicating databases need with what both
// servers have free: slots and WAL senders on the source, replication
// origins and apply workers on the target.
func (in *input) checkSlots(n int) *Finding {
	if n == 0 {
		return nil
	}
	origins := "max_replication_slots"
	if in.dst.Server.Major >= 18 {
		origins = "max_active_replication_origins"
	}
	needs := []struct {
		side     string
		setting  string
		used     int
		snapshot *Snapshot
	}{
		{"source", "max_replication_slots", len(in.src.Slots), &in.src},
		{"source", "max_wal_senders", in.src.Activity.WALSenders, &in.src},
		{"target", origins, in.dst.SubscriptionCount, &in.dst},
		{"target", "max_logical_replication_workers", in.dst.SubscriptionCount, &in.dst},
	}
	for _, need := range needs {
		total, err := strconv.Atoi(need.snapshot.Settings[need.setting])
		if err != nil {
			continue
		}
		if free := total - need.used; free < n {
			f := finding("replication-slots-exhausted", "", need.side,
				fmt.Sprintf("%s %s is %d with %d in use: %d free, %d databases to replicate", need.side, need.setting, total, need.used, free, n),
				fmt.Sprintf("raise %s on the %s (restart needed), or set parallel/databases filters to replicate fewer", need.setting, need.side))
			return &f
		}
	}
	return nil
}
