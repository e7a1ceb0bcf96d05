package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/words"
)

// checkReplicationCaveats reports what the replication method does not
// carry for one database.
func (in *input) checkReplicationCaveats(db *dbInput) []Finding {
	if db.method != MethodReplication {
		return nil
	}
	var out []Finding
	obj := "database " + db.name
	frozen := in.cfg.Replication.WriteFreeze
	if n := db.src.LargeObjects; n > 0 {
		if frozen {
			out = append(out, finding("large-objects", Info, obj,
				words.Count(int(n), "large object")+" not replicated: copied with the data, and those made, changed or removed since are brought over at cut-over with the source frozen", ""))
		} else {
			out = append(out, finding("large-objects", Warning, obj,
				words.Count(int(n), "large object")+" not replicated: brought over again at cut-over, but without a write freeze a change made meanwhile can be missed",
				"avoid changing large objects until cut-over, set replication.write_freeze: true, or use method: dump"))
		}
	}
	var unlogged, partitioned []string
	for _, t := range db.copy {
		if t.Persistence == "u" {
			unlogged = append(unlogged, t.Ref().String())
		}
	}
	for _, t := range db.src.Tables {
		if t.Kind == KindPartitioned && t.ParentName == "" {
			partitioned = append(partitioned, t.Ref().String())
		}
	}
	switch {
	case len(unlogged) > 0 && frozen:
		out = append(out, finding("unlogged-table", Info, obj,
			"unlogged tables are not replicated: copied again at cut-over with the source frozen: "+words.Some(unlogged, 5), ""))
	case len(unlogged) > 0:
		out = append(out, finding("unlogged-table", Warning, obj,
			"unlogged tables are not replicated: copied again at cut-over, but without a write freeze rows written meanwhile can be missed: "+words.Some(unlogged, 5),
			"make them logged (ALTER TABLE ... SET LOGGED) to replicate them, or set replication.write_freeze: true"))
	}
	if len(partitioned) > 0 {
		out = append(out, finding("partition-truncate", Warning, obj,
			"TRUNCATE of a single partition is not replicated (publish_via_partition_root): "+words.Some(partitioned, 5),
			"truncate the whole partitioned table, or repeat a partition's TRUNCATE on the target"))
	}
	if len(db.src.Sequences) > 0 {
		if in.cfg.Replication.SyncSequences {
			out = append(out, finding("sequences", Info, obj,
				words.Count(len(db.src.Sequences), "sequence")+" not replicated: their values are copied at cut-over", ""))
		} else {
			out = append(out, finding("sequences", Warning, obj,
				words.Count(len(db.src.Sequences), "sequence")+" not replicated and replication.sync_sequences is false: the target's sequences stay behind",
				"set replication.sync_sequences: true, or set them yourself before switching writes"))
		}
	}
	return out
}

// checkReplicationPolicy reports cluster-wide facts of the replication
// method: cut-over without a write freeze, DDL during replication, WAL
// kept by the slots.
func (in *input) checkReplicationPolicy() []Finding {
	var total int64
	n := 0
	for _, db := range in.dbs {
		if db.method == MethodReplication {
			n++
			for _, t := range db.copy {
				total += t.Bytes
			}
		}
	}
	if n == 0 {
		return nil
	}
	out := []Finding{finding("ddl-breaks-replication", Info, "source",
		"schema changes on the source are not replicated and stop replication of the changed tables; apply checks for drift", "")}
	if in.cfg.Replication.Stop && !in.cfg.Replication.WriteFreeze {
		out = append(out, NoWriteFreeze())
	}
	if in.cfg.Replication.Freezes() {
		out = append(out, in.checkFreezePrivilege()...)
	}
	if in.env.SubscriptionLocal && !in.env.TargetLocal {
		out = append(out, finding("subscription-dials-localhost", Warning, "source",
			"the target's subscriptions would dial the source at an address of this machine (localhost, a loopback address or a Unix socket), which from the target server is another machine",
			"set source.uri_from_target to an address of the source the target server can reach (apply tries it before any copy)"))
	}
	return append(out, in.checkWALRetention(total)...)
}

// NoWriteFreeze is the warning of a cut-over without a write freeze;
// Replan adds it to a stored plan when the policy changed to stop.
func NoWriteFreeze() Finding {
	return finding("no-write-freeze", Warning, "source",
		"replication.write_freeze is false: the cut-over does not stop writes on the source, and rows written after the last lag check are lost",
		"set replication.write_freeze: true (the default), or stop every writer yourself before the cut-over")
}

// checkFreezePrivilege reports what keeps the source role from freezing
// writes: ALTER DATABASE ... ALLOW_CONNECTIONS needs the database's owner
// (or membership in it), and ending other roles' sessions needs
// pg_signal_backend (a superuser's sessions only a superuser can end).
func (in *input) checkFreezePrivilege() []Finding {
	me := in.src.Me
	if me.Superuser {
		return nil
	}
	var out []Finding
	for _, db := range in.dbs {
		if db.method != MethodReplication || db.src.Owner == me.Name || slices.Contains(me.MemberOf, db.src.Owner) {
			continue
		}
		out = append(out, finding("write-freeze-privilege", Blocker, "database "+db.name,
			fmt.Sprintf("the source role %s cannot freeze writes on %s: ALTER DATABASE ... ALLOW_CONNECTIONS needs its owner %s", me.Name, db.name, db.src.Owner),
			fmt.Sprintf("GRANT %s TO %s on the source, or set replication.write_freeze: false and stop every writer yourself", db.src.Owner, me.Name)))
	}
	if !slices.Contains(me.MemberOf, "pg_signal_backend") {
		out = append(out, finding("write-freeze-privilege", Warning, "source",
			fmt.Sprintf("the source role %s is not a member of pg_signal_backend: at cut-over it can end only its own sessions, and the freeze aborts while another role's session stays connected", me.Name),
			"GRANT pg_signal_backend TO "+me.Name+" on the source (a superuser's sessions must still be ended by hand)"))
	}
	return out
}

// checkWALRetention warns that the slots hold WAL for the copy and the
// catch-up: unbounded, or bounded below the data to copy (a rough proxy
// for the WAL written meanwhile), when the slot would be lost.
func (in *input) checkWALRetention(copyBytes int64) []Finding {
	v, ok := in.src.Settings["max_slot_wal_keep_size"]
	if !ok {
		return nil
	}
	mb, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	if mb < 0 {
		return []Finding{finding("wal-retention", Warning, "source",
			"max_slot_wal_keep_size is -1: the replication slots keep WAL without bound while the copy runs and until cut-over",
			"watch the source's disk (pghaul status shows WAL retained), or set max_slot_wal_keep_size")}
	}
	if mb<<20 < copyBytes {
		return []Finding{finding("wal-retention", Warning, "source",
			fmt.Sprintf("max_slot_wal_keep_size is %d MB, less than the %s to copy: a slot may be lost before replication catches up", mb, config.ByteSize(copyBytes)),
			"raise max_slot_wal_keep_size for the migration")}
	}
	return nil
}

// checkLeftovers reports pghaul_* replication objects that are not a
// complete set of this migration: a failed run elsewhere, or another
// target's migration.
func (in *input) checkLeftovers() []Finding {
	ours := map[string]bool{}
	for _, db := range in.dbs {
		if in.completeSet(db) {
			ours[db.names.Publication], ours[db.names.Slot], ours[db.names.Subscription] = true, true, true
		}
	}
	var found []string
	for _, s := range in.src.Slots {
		if strings.HasPrefix(s.Name, "pghaul_") && !ours[s.Name] {
			found = append(found, describeSlot(s))
		}
	}
	for _, d := range in.src.Databases {
		for _, p := range d.Publications {
			if strings.HasPrefix(p, "pghaul_") && !ours[p] {
				found = append(found, fmt.Sprintf("publication %s in %s", p, d.Name))
			}
		}
	}
	for _, d := range in.dst.Databases {
		for _, s := range d.Subscriptions {
			if strings.HasPrefix(s.Name, "pghaul_") && !ours[s.Name] {
				found = append(found, fmt.Sprintf("subscription %s in target %s", s.Name, d.Name))
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	return []Finding{finding("leftover-replication-objects", Warning, "source and target",
		fmt.Sprintf("%s not a complete set of this migration: %s", words.Count(len(found), "pghaul replication object"), words.Some(found, 4)),
		"pghaul cleanup -c FILE drops this migration's objects, and with --orphans the inactive pghaul_* slots no migration of this file owns (a rebuilt target's, a failed run's)")}
}

// describeSlot names a slot with what it costs the source: "slot
// pghaul_shop_1a2b3c4d_slot (shop, inactive, retains 1.2 GiB of WAL,
// wal_status extended)".
func describeSlot(s Slot) string {
	var facts []string
	if s.Database != "" {
		facts = append(facts, s.Database)
	}
	facts = append(facts, map[bool]string{true: "active", false: "inactive"}[s.Active])
	if s.RetainedBytes != nil {
		facts = append(facts, "retains "+byteString(*s.RetainedBytes)+" of WAL")
	}
	if s.WALStatus != "" {
		facts = append(facts, "wal_status "+s.WALStatus)
	}
	return fmt.Sprintf("slot %s (%s)", s.Name, strings.Join(facts, ", "))
}

// completeSet reports whether db's publication, slot and subscription all
// exist and the subscription is enabled: a migration replicating now.
func (in *input) completeSet(db *dbInput) bool {
	n := db.names
	if db.dst == nil || !slices.Contains(db.src.Publications, n.Publication) {
		return false
	}
	if !slices.ContainsFunc(in.src.Slots, func(s Slot) bool { return s.Name == n.Slot && s.WALStatus != "lost" }) {
		return false
	}
	return slices.ContainsFunc(db.dst.Subscriptions, func(s Subscription) bool { return s.Name == n.Subscription && s.Enabled })
}
