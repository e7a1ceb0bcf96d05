package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pghaul/pghaul/config"

	"github.com/pghaul/pghaul/internal/words"
)

// checks runs every check that is not a replication prerequisite. It runs
// after chooseMethods: some findings depend on a database's method.
func (in *input) checks() []Finding {
	var out []Finding
	for _, check := range []func() []Finding{
		in.checkSameServer, in.checkTargetStandby, in.checkVersions, in.checkPGDump, in.checkConnections,
		in.checkTransactions, in.checkTooLarge, in.checkCreateDB, in.checkRoles, in.checkOwnersKept, in.checkMemberships,
		in.checkPasswords, in.checkFilters, in.checkFilterPartitions, in.checkLeftovers, in.checkReplicationPolicy,
	} {
		out = append(out, check()...)
	}
	for _, db := range in.dbs {
		for _, check := range []func(*dbInput) []Finding{
			in.checkConnectable, in.checkTargetDatabase, in.checkEncoding, in.checkTargetObjects,
			in.checkTargetRows, in.checkLanguages, in.checkExtensions, in.checkPreload,
			in.checkSuperuserObjects, in.checkReadable, in.checkRowSecurity, in.checkDependencies, in.checkReplicationCaveats,
		} {
			out = append(out, check(db)...)
		}
	}
	return out
}

func (in *input) checkSameServer() []Finding {
	s, d := in.src.Server, in.dst.Server
	if s.SystemID == "" || s.SystemID != d.SystemID || s.StartTime != d.StartTime {
		return nil
	}
	return []Finding{finding("same-server", Blocker, "target", "source and target are the same server (same system identifier and start time)",
		"point target.uri at the server to migrate to")}
}

// checkTargetStandby: a standby (pg_is_in_recovery) cannot be written to;
// apply would fail at its first statement with "cannot execute ... in a
// read-only transaction", after the source steps that run alongside made a
// slot and a publication.
func (in *input) checkTargetStandby() []Finding {
	if !in.dst.InRecovery {
		return nil
	}
	return []Finding{finding("target-in-recovery", Blocker, "target",
		"the target is a standby (pg_is_in_recovery): nothing can be written to it",
		"point target.uri at the primary (or promote the standby first)")}
}

func (in *input) checkVersions() []Finding {
	s, d := in.src.Server.Major, in.dst.Server.Major
	if d >= s {
		return nil
	}
	sev, fix := Blocker, "migrate to a target of PostgreSQL "+strconv.Itoa(s)+" or newer, or set limits.allow_older_target: true (--skip-db-version-check) if you know the schema fits"
	if in.cfg.Limits.AllowOlderTarget {
		sev, fix = Warning, "check that the schema uses nothing the older target lacks"
	}
	return []Finding{finding("target-older", sev, "target", fmt.Sprintf("the target runs PostgreSQL %d, older than the source's %d", d, s), fix)}
}

// dumpRange is the majors of pg_dump/pg_restore that fit: at least the
// source's (pg_dump refuses newer servers) and at most the target's (pg_dump
// 17+ emits settings older servers reject) unless the target is older.
func (in *input) dumpRange() (lo, hi int) {
	lo, hi = in.src.Server.Major, in.dst.Server.Major
	return lo, max(lo, hi)
}

func (in *input) checkPGDump() []Finding {
	if len(in.dbs) == 0 {
		return nil
	}
	lo, hi := in.dumpRange()
	var out []Finding
	for _, tool := range []struct {
		name  string
		found []Tool
	}{{"pg_dump", in.env.PGDump}, {"pg_restore", in.env.PGRestore}} {
		if len(tool.found) == 0 {
			out = append(out, finding("pg-dump-missing", Blocker, "pghaul", tool.name+" was not found",
				fmt.Sprintf("install the PostgreSQL %d client programs (Debian: postgresql-client-%d) or set pg_bin", hi, hi)))
			continue
		}
		if _, ok := PickTool(tool.found, lo, hi); !ok {
			var have []string
			for _, t := range tool.found {
				have = append(have, t.Version)
			}
			out = append(out, finding("pg-dump-too-old", Blocker, "pghaul",
				fmt.Sprintf("%s %s found; the source needs a major between %d and %d", tool.name, strings.Join(have, ", "), lo, hi),
				fmt.Sprintf("install the PostgreSQL %d client programs (Debian: postgresql-client-%d) or set pg_bin", hi, hi)))
		}
	}
	return out
}

// PickTool returns the newest tool whose major lies in [lo, hi].
func PickTool(tools []Tool, lo, hi int) (Tool, bool) {
	var best Tool
	for _, t := range tools {
		if t.Major >= lo && t.Major <= hi && t.Major > best.Major {
			best = t
		}
	}
	return best, best.Path != ""
}

// checkConnections compares the source's free connections with the
// sessions the copy opens: per database at once a coordinator, the
// snapshot or slot holder and parallel.tables workers.
func (in *input) checkConnections() []Finding {
	max, err := strconv.Atoi(in.src.Settings["max_connections"])
	if err != nil || len(in.dbs) == 0 || in.src.IsUnknown("pg_stat_activity") {
		return nil
	}
	reserved, _ := strconv.Atoi(in.src.Settings["superuser_reserved_connections"])
	if in.src.Me.Superuser {
		reserved = 0
	}
	free := max - reserved - in.src.Activity.Sessions
	need := min(in.cfg.Parallel.Databases, len(in.dbs)) * (in.cfg.Parallel.Tables + 2)
	if free >= need {
		return nil
	}
	return []Finding{finding("connections-exhausted", Blocker, "source",
		fmt.Sprintf("%d connections free (max_connections %d, %d in use), the copy needs %d", free, max, in.src.Activity.Sessions, need),
		"lower parallel.databases or parallel.tables, or raise max_connections on the source")}
}

func (in *input) checkTransactions() []Finding {
	a := in.src.Activity
	if a.OldTransactions == 0 && a.PreparedTransactions == 0 || len(in.dbs) == 0 {
		return nil
	}
	return []Finding{finding("long-running-transactions", Warning, "source",
		fmt.Sprintf("%d transactions open for more than 5 minutes and %d prepared transactions: snapshot and slot creation wait for them", a.OldTransactions, a.PreparedTransactions),
		"end them (pg_stat_activity, pg_prepared_xacts) before apply")}
}

func (in *input) checkTooLarge() []Finding {
	limit := in.cfg.Limits.MaxTotalSize
	if limit == nil {
		return nil
	}
	var total int64
	for _, db := range in.dbs {
		total += db.src.SizeBytes
	}
	if total <= int64(*limit) {
		return nil
	}
	return []Finding{finding("too-large", Blocker, "source",
		fmt.Sprintf("the selected databases hold %s, more than limits.max_total_size %s", config.ByteSize(total), limit),
		"raise limits.max_total_size or exclude databases")}
}

func (in *input) checkCreateDB() []Finding {
	me := in.dst.Me
	if !in.cfg.Databases.Create || me.Superuser || me.CreateDB {
		return nil
	}
	var missing []string
	for _, db := range in.dbs {
		if db.dst == nil {
			missing = append(missing, db.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []Finding{finding("no-createdb-privilege", Blocker, "target",
		fmt.Sprintf("role %s lacks CREATEDB and %s must be created", me.Name, words.Some(missing, 5)),
		fmt.Sprintf("ALTER ROLE %s CREATEDB, or create the databases first", me.Name))}
}
