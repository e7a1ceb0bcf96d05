package plan

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/config"
)

func mkTable(schema, name string, mods ...func(*Table)) Table {
	t := Table{Schema: schema, Name: name, Kind: KindTable, Owner: "app", Persistence: "p", ReplicaIdentity: "d", HasPrimaryKey: true,
		OwnedByMe: true, Columns: []Column{{Name: "id", Type: "bigint", Equality: true}}, EstRows: 10, Bytes: 8192}
	for _, m := range mods {
		m(&t)
	}
	return t
}

// healthy is a source and target between which nothing is wrong: PG 15,
// superusers, logical, one database "shop" missing on the target.
func healthy() (src, dst Snapshot) {
	settings := func() map[string]string {
		return map[string]string{"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10",
			"max_logical_replication_workers": "4", "max_connections": "100", "superuser_reserved_connections": "3",
			"max_slot_wal_keep_size": "10240", "shared_preload_libraries": ""}
	}
	src = Snapshot{
		Server:            Server{Version: "15.4", VersionNum: 150004, Major: 15, SystemID: "100", StartTime: "t1"},
		Settings:          settings(),
		Me:                Me{Name: "postgres", Superuser: true, Replication: true, CreateDB: true, CreateRole: true},
		PasswordsReadable: true,
		Roles:             []Role{{Name: "postgres", Superuser: true, Login: true}, {Name: "app", Login: true}, {Name: "pg_monitor"}},
		Databases: []Database{{Name: "shop", Owner: "app", Encoding: "UTF8", Collate: "C", Ctype: "C", LocaleProvider: "c",
			AllowConn: true, Inspected: true, SizeBytes: 1 << 20, Contents: Contents{
				CanCreate:  true,
				Schemas:    []Schema{{Name: "public", Owner: "pg_database_owner"}, {Name: "sales", Owner: "app"}},
				Extensions: []Extension{{Name: "plpgsql", Version: "1.0"}, {Name: "pg_trgm", Version: "1.6", Schema: "public"}},
				Languages:  []string{"c", "internal", "plpgsql", "sql"},
				Tables: []Table{
					mkTable("sales", "orders"),
					mkTable("sales", "items", func(t *Table) {
						t.ForeignKeys = []ForeignKey{{Name: "items_fk", RefSchema: "sales", RefTable: "orders"}}
					}),
				},
				Types: []Object{{Schema: "sales", Name: "status", Kind: "e"}},
			}}, {Name: "template1", AllowConn: true, IsTemplate: true}},
	}
	dst = Snapshot{
		Server:   Server{Version: "15.6", VersionNum: 150006, Major: 15, SystemID: "200", StartTime: "t2"},
		Settings: settings(),
		Me:       Me{Name: "postgres", Superuser: true, Replication: true, CreateDB: true, CreateRole: true},
		Roles:    []Role{{Name: "postgres", Superuser: true, Login: true}},
		Databases: []Database{{Name: "postgres", Owner: "postgres", Encoding: "UTF8", Collate: "C", Ctype: "C", AllowConn: true, Inspected: true,
			Contents: Contents{CanCreate: true}}},
		AvailableExtensions: []AvailableExtension{
			{Name: "plpgsql", Version: "1.0", Superuser: true},
			{Name: "pg_trgm", Version: "1.5", Trusted: true}, {Name: "pg_trgm", Version: "1.6", Trusted: true},
			{Name: "postgis", Version: "3.3.2", Superuser: true},
		},
		Collations: []string{"C", "POSIX", "en_US.utf8"},
	}
	return src, dst
}

func shopOf(s *Snapshot) *Database { return s.Database("shop") }

func mustTestConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte("version: 1\nsource: {uri: \"postgres://u:pw@src/postgres\"}\ntarget: {uri: \"postgres://u:pw@dst/postgres\"}\n"+extra), "m.yaml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func findingKeys(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Severity)+" "+f.Code)
	}
	return out
}

func TestHealthyPlanHasNoProblems(t *testing.T) {
	src, dst := healthy()
	p := Build(mustTestConfig(t, ""), src, dst, testEnv)
	for _, f := range p.Findings {
		if f.Severity != Info {
			t.Errorf("unexpected %s %s: %s", f.Severity, f.Code, f.Message)
		}
	}
	if len(p.Databases) != 1 || p.Databases[0].Method != MethodReplication || !p.Databases[0].Create {
		t.Fatalf("databases = %+v, want shop by replication, created", p.Databases)
	}
	var ids []string
	for _, s := range p.Steps {
		ids = append(ids, s.ID)
	}
	want := []string{"cluster/roles", "db:shop/create-database", "db:shop/configure-database", "db:shop/publication", "db:shop/slot",
		"db:shop/dump-schema", "db:shop/pre-data", "db:shop/copy-data", "db:shop/post-data", "db:shop/subscription"}
	if !slices.Equal(ids, want) {
		t.Errorf("step IDs = %v\nwant %v", ids, want)
	}
	if p.Steps[0].Params.Roles[0] != "app" || len(p.Steps[0].Params.Roles) != 1 {
		t.Errorf("roles to create = %v, want [app] (pg_monitor is predefined, postgres exists)", p.Steps[0].Params.Roles)
	}
}

// TestChecks runs every check over a healthy pair with one thing broken.
func TestChecks(t *testing.T) {
	tests := []struct {
		name   string
		config string
		mutate func(src, dst *Snapshot)
		env    *Env
		want   []string // "severity code" that must appear
		reject []string // codes that must not appear
	}{
		{name: "same server", mutate: func(s, d *Snapshot) { d.Server.SystemID, d.Server.StartTime = "100", "t1" }, want: []string{"blocker same-server"}},
		{name: "a clone is not the same server", mutate: func(s, d *Snapshot) { d.Server.SystemID = "100" }, reject: []string{"same-server"}},
		{name: "older target", mutate: func(s, d *Snapshot) { d.Server.Major = 14 }, want: []string{"blocker target-older"}},
		{name: "older target allowed", config: "limits: {allow_older_target: true}", mutate: func(s, d *Snapshot) { d.Server.Major = 14 }, want: []string{"warning target-older"}},
		{name: "no pg_dump", env: &Env{}, want: []string{"blocker pg-dump-missing"}},
		{name: "pg_dump too old", env: &Env{PGDump: []Tool{{Path: "/x/pg_dump", Major: 13, Version: "13.1"}}, PGRestore: testEnv.PGRestore}, want: []string{"blocker pg-dump-too-old"}},
		{name: "pg_dump too new", env: &Env{PGDump: []Tool{{Path: "/x/pg_dump", Major: 17, Version: "17.2"}}, PGRestore: testEnv.PGRestore}, want: []string{"blocker pg-dump-too-old"}},
		{name: "database refuses connections", mutate: func(s, d *Snapshot) { shopOf(s).AllowConn = false }, want: []string{"blocker connection-failed"}},
		{name: "database unreadable", mutate: func(s, d *Snapshot) { shopOf(s).Error = "permission denied for database shop" }, want: []string{"blocker connection-failed"}},
		{name: "names not UTF-8", mutate: func(s, d *Snapshot) {
			shopOf(s).Error, shopOf(s).NotUTF8 = "its catalog holds text that is not valid UTF-8", true
		}, want: []string{"blocker connection-failed"}},
		{name: "no createdb", mutate: func(s, d *Snapshot) { d.Me = Me{Name: "admin", CreateRole: true} }, want: []string{"blocker no-createdb-privilege"}},
		{name: "target db missing, create off", config: "databases: {create: false}", want: []string{"blocker target-db-missing"}},
		{name: "encoding differs", mutate: func(s, d *Snapshot) {
			d.Databases = append(d.Databases, Database{Name: "shop", Encoding: "LATIN1", Collate: "C", Ctype: "C", Inspected: true})
		}, want: []string{"blocker encoding-mismatch"}},
		{name: "collation differs", mutate: func(s, d *Snapshot) {
			d.Databases = append(d.Databases, Database{Name: "shop", Encoding: "UTF8", Collate: "en_US.utf8", Ctype: "C", Inspected: true})
		}, want: []string{"warning encoding-mismatch"}},
		{name: "locale missing on target", mutate: func(s, d *Snapshot) { shopOf(s).Collate, shopOf(s).Ctype = "de_DE.UTF-8", "de_DE.UTF-8" }, want: []string{"blocker encoding-mismatch"}},
		{name: "locale present on target", mutate: func(s, d *Snapshot) { shopOf(s).Collate, shopOf(s).Ctype = "en_US.UTF-8", "en_US.UTF-8" }, reject: []string{"encoding-mismatch"}},
		{name: "existing table on target", mutate: func(s, d *Snapshot) {
			d.Databases = append(d.Databases, Database{Name: "shop", Encoding: "UTF8", Collate: "C", Ctype: "C", Inspected: true, Contents: Contents{Tables: []Table{mkTable("sales", "orders")}}})
		}, want: []string{"blocker target-schema-not-empty"}, reject: []string{"target-table-not-empty"}},
		{name: "non-empty table on target", mutate: func(s, d *Snapshot) {
			yes := true
			d.Databases = append(d.Databases, Database{Name: "shop", Encoding: "UTF8", Collate: "C", Ctype: "C", Inspected: true,
				Contents: Contents{Tables: []Table{mkTable("sales", "orders", func(t *Table) { t.HasRows = &yes })}}})
		}, want: []string{"blocker target-table-not-empty", "blocker target-schema-not-empty"}},
		{name: "existing type on target", mutate: func(s, d *Snapshot) {
			d.Databases = append(d.Databases, Database{Name: "shop", Encoding: "UTF8", Collate: "C", Ctype: "C", Inspected: true, Contents: Contents{Types: []Object{{Schema: "sales", Name: "status", Kind: "e"}}}})
		}, want: []string{"blocker target-schema-not-empty"}},
		{name: "extension unavailable", mutate: func(s, d *Snapshot) { addExt(s, "timescaledb", "2.1") }, want: []string{"blocker extension-unavailable"}},
		{name: "extension excluded", config: "extensions: {exclude: [timescaledb]}", mutate: func(s, d *Snapshot) { addExt(s, "timescaledb", "2.1") }, reject: []string{"extension-unavailable"}},
		{name: "extension too old", mutate: func(s, d *Snapshot) { shopOf(s).Extensions[1].Version = "1.10" }, want: []string{"blocker extension-too-old"}},
		{name: "extension needs superuser", mutate: func(s, d *Snapshot) { addExt(s, "postgis", "3.3.2"); d.Me.Superuser = false }, want: []string{"blocker extension-needs-superuser"}},
		{name: "extension whitelisted", mutate: func(s, d *Snapshot) {
			addExt(s, "postgis", "3.3.2")
			d.Me.Superuser = false
			d.Settings["extwlist.extensions"] = "postgis,hstore"
		}, reject: []string{"extension-needs-superuser"}},
		{name: "extension needs preload", mutate: func(s, d *Snapshot) { s.Settings["shared_preload_libraries"] = "pg_trgm" }, want: []string{"blocker extension-needs-preload"}},
		{name: "preload unknown on target", mutate: func(s, d *Snapshot) {
			s.Settings["shared_preload_libraries"] = "pg_trgm"
			d.Unknown = []string{"setting:shared_preload_libraries"}
		}, want: []string{"info extension-needs-preload"}},
		{name: "language missing", mutate: func(s, d *Snapshot) { shopOf(s).Languages = append(shopOf(s).Languages, "plr") }, want: []string{"blocker language-missing"}},
		{name: "language from extension", mutate: func(s, d *Snapshot) {
			shopOf(s).Languages = append(shopOf(s).Languages, "plperl")
			d.AvailableExtensions = append(d.AvailableExtensions, AvailableExtension{Name: "plperl", Version: "1.0", Trusted: true})
		}, reject: []string{"language-missing"}},
		{name: "superuser role, non-superuser target", mutate: func(s, d *Snapshot) {
			s.Roles = append(s.Roles, Role{Name: "dba", Superuser: true})
			d.Me.Superuser = false
		}, want: []string{"warning role-not-creatable"}},
		{name: "uncreatable role owning objects", mutate: func(s, d *Snapshot) {
			s.Roles[1].Replication = true
			d.Me.Superuser, d.Me.Replication = false, false
		}, want: []string{"blocker role-not-creatable"}},
		{name: "role exists", mutate: func(s, d *Snapshot) { d.Roles = append(d.Roles, Role{Name: "app"}) }, want: []string{"info role-exists"}},
		{name: "role excluded", config: "roles: {exclude: [app]}", mutate: func(s, d *Snapshot) { s.Roles[1].Superuser = true; d.Me.Superuser = false }, reject: []string{"role-not-creatable"}},
		{name: "passwords unreadable", mutate: func(s, d *Snapshot) { s.PasswordsReadable = false }, want: []string{"warning passwords-not-readable"}},
		{name: "passwords unreadable, placeholders asked", config: "roles: {passwords: placeholder}", mutate: func(s, d *Snapshot) { s.PasswordsReadable = false }, reject: []string{"passwords-not-readable"}},
		{name: "too large", config: "limits: {max_total_size: 1MB}", mutate: func(s, d *Snapshot) { shopOf(s).SizeBytes = 5e6 }, want: []string{"blocker too-large"}},
		{name: "wal_level replica under auto", mutate: func(s, d *Snapshot) { s.Settings["wal_level"] = "replica" }, want: []string{"info wal-level-not-logical"}},
		{name: "wal_level replica under replication", config: "method: replication", mutate: func(s, d *Snapshot) { s.Settings["wal_level"] = "replica" }, want: []string{"blocker wal-level-not-logical"}},
		{name: "wal_level replica under dump", config: "method: dump", mutate: func(s, d *Snapshot) { s.Settings["wal_level"] = "replica" }, reject: []string{"wal-level-not-logical"}},
		{name: "no replication privilege", mutate: func(s, d *Snapshot) { s.Me = Me{Name: "app", CreateDB: true} }, want: []string{"info no-replication-privilege"}},
		{name: "rds_replication counts", mutate: func(s, d *Snapshot) { s.Me = Me{Name: "app", MemberOf: []string{"rds_replication"}} }, reject: []string{"no-replication-privilege"}},
		{name: "publication needs ownership", config: "method: replication", mutate: func(s, d *Snapshot) {
			s.Me = Me{Name: "mig", Replication: true}
			shopOf(s).Tables[0].OwnedByMe = false
		}, want: []string{"blocker publication-privilege"}},
		{name: "publication through aiven_extras", config: "method: replication", mutate: func(s, d *Snapshot) {
			s.Me = Me{Name: "mig", Replication: true}
			shopOf(s).Tables[0].OwnedByMe = false
			addExt(s, "aiven_extras", "1.1")
			d.AvailableExtensions = append(d.AvailableExtensions, AvailableExtension{Name: "aiven_extras", Version: "1.1", Trusted: true})
		}, reject: []string{"publication-privilege"}},
		{name: "subscription needs superuser before 16", config: "method: replication", mutate: func(s, d *Snapshot) { d.Me.Superuser = false }, want: []string{"blocker no-subscription-privilege"}},
		{name: "pg_create_subscription on 16", config: "method: replication", mutate: func(s, d *Snapshot) {
			d.Server.Major = 16
			d.Me = Me{Name: "admin", CreateDB: true, CreateRole: true, MemberOf: []string{"pg_create_subscription"}}
		}, reject: []string{"no-subscription-privilege"}},
		{name: "slots exhausted", config: "method: replication", mutate: func(s, d *Snapshot) { s.Slots = make([]Slot, 10) }, want: []string{"blocker replication-slots-exhausted"}},
		{name: "target workers exhausted", mutate: func(s, d *Snapshot) { d.SubscriptionCount = 4 }, want: []string{"info replication-slots-exhausted"}},
		{name: "standby", mutate: func(s, d *Snapshot) { s.InRecovery = true }, want: []string{"info source-is-standby"}},
		{name: "standby source for replication", config: "method: replication", mutate: func(s, d *Snapshot) { s.InRecovery = true }, want: []string{"blocker source-is-standby"}},
		{name: "standby target", mutate: func(s, d *Snapshot) { d.InRecovery = true }, want: []string{"blocker target-in-recovery"}},
		{name: "no key under replication", config: "method: replication", mutate: func(s, d *Snapshot) { shopOf(s).Tables[0].HasPrimaryKey = false }, want: []string{"blocker no-replica-identity"}},
		{name: "identity nothing", mutate: func(s, d *Snapshot) { shopOf(s).Tables[0].ReplicaIdentity = "n" }, want: []string{"info no-replica-identity"}},
		{name: "no key but skipped", config: "method: replication\ntables: {skip: [sales.orders, sales.items]}", mutate: func(s, d *Snapshot) { shopOf(s).Tables[0].HasPrimaryKey = false }, reject: []string{"no-replica-identity"}},
		{name: "FULL with json", config: "method: replication", mutate: func(s, d *Snapshot) {
			t := &shopOf(s).Tables[0]
			t.ReplicaIdentity, t.HasPrimaryKey = "f", false
			t.Columns = append(t.Columns, Column{Name: "doc", Type: "json"})
		}, want: []string{"blocker replica-identity-full-unusable"}},
		{name: "FULL with equality", config: "method: replication", mutate: func(s, d *Snapshot) {
			shopOf(s).Tables[0].ReplicaIdentity, shopOf(s).Tables[0].HasPrimaryKey = "f", false
		}, reject: []string{"replica-identity-full-unusable", "no-replica-identity"}},
		{name: "row security", mutate: func(s, d *Snapshot) {
			s.Me = Me{Name: "mig", Replication: true}
			shopOf(s).Tables[0].RowSecurity, shopOf(s).Tables[0].OwnedByMe = true, false
		}, want: []string{"blocker row-security"}},
		{name: "row security bypassed by owner", mutate: func(s, d *Snapshot) {
			s.Me = Me{Name: "app", Replication: true}
			shopOf(s).Tables[0].RowSecurity = true
		}, reject: []string{"row-security"}},
		{name: "fk to skipped table", config: "tables: {skip: [sales.orders]}", want: []string{"blocker filter-breaks-dependency"}},
		{name: "skipped table with fk to copied one, replication", config: "method: replication\ntables: {skip: [sales.items]}", want: []string{"blocker filter-breaks-dependency"}},
		{name: "skipped table with fk to copied one, dump", config: "method: dump\ntables: {skip: [sales.items]}", reject: []string{"filter-breaks-dependency"}},
		{name: "view over skipped table", config: "method: dump\ntables: {skip: [sales.items]}", mutate: func(s, d *Snapshot) {
			shopOf(s).Views = []View{{Schema: "sales", Name: "v", DependsOn: []TableRef{{Schema: "sales", Name: "items"}}}}
		}, want: []string{"warning filter-breaks-dependency"}},
		{name: "pattern names a partition", config: "tables: {skip: [public.m_2025]}", mutate: func(s, d *Snapshot) { addPartitioned(s) }, want: []string{"blocker filter-names-partition"}},
		{name: "pattern names the root", config: "tables: {skip: [public.m]}", mutate: func(s, d *Snapshot) { addPartitioned(s) }, reject: []string{"filter-names-partition"}},
		{name: "long transactions", mutate: func(s, d *Snapshot) { s.Activity.PreparedTransactions = 1 }, want: []string{"warning long-running-transactions"}},
		{name: "unbounded WAL", mutate: func(s, d *Snapshot) { s.Settings["max_slot_wal_keep_size"] = "-1" }, want: []string{"warning wal-retention"}},
		{name: "small WAL bound", mutate: func(s, d *Snapshot) {
			s.Settings["max_slot_wal_keep_size"] = "1"
			shopOf(s).Tables[0].Bytes = 5 << 20
		}, want: []string{"warning wal-retention"}},
		{name: "connections exhausted", mutate: func(s, d *Snapshot) { s.Activity.Sessions = 95 }, want: []string{"blocker connections-exhausted"}},
		{name: "partitioned under replication", mutate: func(s, d *Snapshot) { addPartitioned(s) }, want: []string{"warning partition-truncate"}},
		{name: "large objects under replication", mutate: func(s, d *Snapshot) { shopOf(s).LargeObjects = 3 }, want: []string{"info large-objects"}},
		{name: "large objects without freeze", config: "replication: {write_freeze: false}", mutate: func(s, d *Snapshot) { shopOf(s).LargeObjects = 3 }, want: []string{"warning large-objects"}},
		{name: "large objects under dump", config: "method: dump", mutate: func(s, d *Snapshot) { shopOf(s).LargeObjects = 3 }, reject: []string{"large-objects"}},
		{name: "unlogged under replication", mutate: func(s, d *Snapshot) { shopOf(s).Tables[0].Persistence = "u" }, want: []string{"info unlogged-table"}},
		{name: "unlogged without freeze", config: "replication: {write_freeze: false}", mutate: func(s, d *Snapshot) { shopOf(s).Tables[0].Persistence = "u" }, want: []string{"warning unlogged-table"}},
		{name: "C function, non-superuser target", mutate: func(s, d *Snapshot) {
			shopOf(s).SuperuserObjects = []Object{{Schema: "public", Name: "fast_hash", Kind: "function"}}
			d.Me.Superuser = false
		}, want: []string{"warning superuser-objects"}},
		{name: "tablespaces", mutate: func(s, d *Snapshot) { shopOf(s).Tablespaces = []string{"fast_ssd"} }, want: []string{"warning superuser-objects"}},
		{name: "sequences synced", mutate: func(s, d *Snapshot) { shopOf(s).Sequences = []Sequence{{Schema: "public", Name: "s"}} }, want: []string{"info sequences"}},
		{name: "sequences not synced", config: "replication: {sync_sequences: false}", mutate: func(s, d *Snapshot) { shopOf(s).Sequences = []Sequence{{Schema: "public", Name: "s"}} }, want: []string{"warning sequences"}},
		{name: "cut-over without freeze", config: "replication: {max_lag_bytes: 0, stop: true, write_freeze: false}", want: []string{"warning no-write-freeze", "info ddl-breaks-replication"}},
		{name: "cut-over with freeze", config: "replication: {max_lag_bytes: 0, stop: true}", want: []string{"info ddl-breaks-replication"}, reject: []string{"no-write-freeze", "write-freeze-privilege"}},
		{name: "freeze by a role that does not own the database", config: "replication: {max_lag_bytes: 0, stop: true}",
			mutate: func(s, d *Snapshot) {
				s.Me = Me{Name: "migrator", Replication: true, MemberOf: []string{"pg_signal_backend"}}
			},
			want: []string{"blocker write-freeze-privilege"}},
		{name: "freeze by a role that cannot end sessions", config: "replication: {max_lag_bytes: 0, stop: true}",
			mutate: func(s, d *Snapshot) {
				s.Me = Me{Name: "migrator", Replication: true, MemberOf: []string{shopOf(s).Owner}}
			},
			want: []string{"warning write-freeze-privilege"}, reject: []string{"blocker write-freeze-privilege"}},
		{name: "leftover slot", mutate: func(s, d *Snapshot) { s.Slots = []Slot{{Name: "pghaul_shop_deadbeef_slot"}} }, want: []string{"warning leftover-replication-objects"}},
		{name: "membership a 16 target user cannot grant", mutate: func(s, d *Snapshot) {
			s.Roles[1].MemberOf = []Membership{{Role: "pg_monitor"}}
			d.Server.Major, d.Me = 16, Me{Name: "migrator", CreateRole: true, CreateDB: true}
			d.Roles = append(d.Roles, Role{Name: "pg_monitor"})
		}, want: []string{"warning membership-not-grantable"}},
		{name: "membership a 16 target user may grant", mutate: func(s, d *Snapshot) {
			s.Roles[1].MemberOf = []Membership{{Role: "pg_monitor"}}
			d.Server.Major, d.Me = 16, Me{Name: "migrator", CreateRole: true, CreateDB: true, AdminOf: []string{"pg_monitor"}}
			d.Roles = append(d.Roles, Role{Name: "pg_monitor"})
		}, reject: []string{"membership-not-grantable"}},
		{name: "table the source role cannot read", mutate: func(s, d *Snapshot) {
			s.Me = Me{Name: "app", Replication: true}
			shopOf(s).Tables[0].Unreadable = true
		}, want: []string{"blocker source-not-readable"}},
		{name: "large objects the source role cannot read", mutate: func(s, d *Snapshot) {
			s.Me = Me{Name: "reader", Replication: true, MemberOf: []string{"pg_read_all_data"}}
			shopOf(s).LargeObjects, shopOf(s).UnreadableLargeObjects = 2, 2
		}, want: []string{"blocker source-not-readable"}},
		{name: "source behind a pooler, auto", mutate: func(s, d *Snapshot) { s.Pooled = true }, want: []string{"info source-behind-pooler"}},
		{name: "source behind a pooler, replication", config: "method: replication", mutate: func(s, d *Snapshot) { s.Pooled = true }, want: []string{"blocker source-behind-pooler"}},
		{name: "replication connection refused", config: "method: replication", env: &Env{ReplicationRefused: "no pg_hba.conf entry for replication connection"}, want: []string{"blocker replication-connection-refused"}},
		{name: "replication connection refused, subscription copy", config: "method: replication\nreplication: {initial_copy: subscription}", env: &Env{ReplicationRefused: "refused"}, reject: []string{"replication-connection-refused"}},
		{name: "include typo", config: "databases: {include: [shopp]}", want: []string{"blocker filter-matches-nothing"}},
		{name: "include matches", config: "databases: {include: [sh*]}", reject: []string{"filter-matches-nothing"}},
		{name: "exclude typo", config: "databases: {exclude: [shpo]}", want: []string{"warning filter-matches-nothing"}},
		{name: "skip typo", config: "tables: {skip: [sales.ordrs]}", want: []string{"warning filter-matches-nothing"}},
		{name: "only of nothing", config: "tables: {only: [nosuch.table]}", want: []string{"blocker filter-matches-nothing"}},
		{name: "only matches", config: "tables: {only: [shop.sales.orders]}", reject: []string{"filter-matches-nothing"}},
		{name: "role exclude typo", config: "roles: {exclude: [apq]}", want: []string{"warning filter-matches-nothing"}},
		{name: "extension exclude typo", config: "extensions: {exclude: [pg_trgn]}", want: []string{"warning filter-matches-nothing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := healthy()
			if tt.mutate != nil {
				tt.mutate(&src, &dst)
			}
			env := testEnv
			if tt.env != nil {
				env = *tt.env
			}
			p := Build(mustTestConfig(t, tt.config), src, dst, env)
			got := findingKeys(p.Findings)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("findings = %v, want %q", got, w)
				}
			}
			for _, r := range tt.reject {
				for _, g := range got {
					if strings.HasSuffix(g, " "+r) {
						t.Errorf("findings = %v, want no %s", got, r)
					}
				}
			}
			for _, f := range p.Findings {
				if f.Message == "" || f.Object == "" || f.Doc != "docs/findings.md#"+f.Code || f.Severity != Info && f.Fix == "" {
					t.Errorf("finding %+v lacks a message, object, doc link or fix", f)
				}
			}
		})
	}
}

func addExt(s *Snapshot, name, version string) {
	d := shopOf(s)
	d.Extensions = append(d.Extensions, Extension{Name: name, Version: version, Schema: "public"})
}

func addPartitioned(s *Snapshot) {
	d := shopOf(s)
	d.Tables = append(d.Tables,
		mkTable("public", "m", func(t *Table) { t.Kind = KindPartitioned }),
		mkTable("public", "m_2025", func(t *Table) { t.ParentSchema, t.ParentName = "public", "m" }),
		mkTable("public", "m_2026", func(t *Table) { t.ParentSchema, t.ParentName = "public", "m" }))
}

func TestAutoFallsBackToDump(t *testing.T) {
	src, dst := healthy()
	src.Settings["wal_level"] = "replica"
	p := Build(mustTestConfig(t, ""), src, dst, testEnv)
	if p.Databases[0].Method != MethodDump || !strings.Contains(p.Databases[0].Reason, "wal-level-not-logical") {
		t.Errorf("database = %+v, want dump because of wal-level-not-logical", p.Databases[0])
	}
	for _, s := range p.Steps {
		if s.Kind == StepCreatePublication || s.Kind == StepCreateSubscription {
			t.Errorf("dump plan has replication step %s", s.ID)
		}
	}
}

func TestSkippedTablesKeepDefinitionsButNoRows(t *testing.T) {
	src, dst := healthy()
	addPartitioned(&src)
	p := Build(mustTestConfig(t, "method: dump\ntables: {skip: [public.m, sales.items]}"), src, dst, testEnv)
	var copyStep *Step
	for i := range p.Steps {
		if p.Steps[i].Kind == StepCopyData {
			copyStep = &p.Steps[i]
		}
	}
	if copyStep == nil {
		t.Fatal("no copy step")
	}
	got := fmt.Sprint(copyStep.Params.Tables)
	if got != "[sales.orders]" {
		t.Errorf("copied tables = %s, want [sales.orders] (partitions follow their root)", got)
	}
	if skipped := fmt.Sprint(copyStep.Params.Skipped); skipped != "[public.m_2025 public.m_2026 sales.items]" {
		t.Errorf("skipped = %s", skipped)
	}
}

func TestReplicationNames(t *testing.T) {
	n := NamesFor("Mixed Case-DB", "7300000000000000001")
	if !strings.HasPrefix(n.Slot, "pghaul_mixed_case_db_") || !strings.HasSuffix(n.Slot, "_slot") {
		t.Errorf("slot = %q", n.Slot)
	}
	if other := NamesFor("Mixed Case-DB", "7300000000000000002"); other.Slot == n.Slot {
		t.Error("two targets share a slot name")
	}
	if lower := NamesFor("mixed case-db", "7300000000000000001"); lower.Slot == n.Slot {
		t.Error("databases differing in case share a slot name")
	}
	long := NamesFor(strings.Repeat("x", 80), "1")
	for _, name := range []string{long.Publication, long.Slot, long.Subscription} {
		if len(name) > 63 {
			t.Errorf("%q is %d bytes, over 63", name, len(name))
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{{"1.10", "1.9", 1}, {"3.3.2", "3.3.2", 0}, {"2.0", "2.0.1", -1}, {"1.6", "1.5", 1}}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestReplicatingDatabaseNeedsOnlyCutover: with the state directory lost,
// the servers alone show a replicating migration, whose own tables on the
// target are no findings.
func TestReplicatingDatabaseNeedsOnlyCutover(t *testing.T) {
	src, dst := healthy()
	n := NamesFor("shop", dst.Server.SystemID)
	yes := true
	shop := *shopOf(&src)
	shop.Publications = []string{n.Publication}
	shop.Sequences = []Sequence{{Schema: "public", Name: "s"}}
	src.Databases[0] = shop
	src.Slots = []Slot{{Name: n.Slot, Database: "shop", Active: true, WALStatus: "reserved"}}
	target := shop
	target.Tables = []Table{mkTable("sales", "orders", func(t *Table) { t.HasRows = &yes })}
	target.Subscriptions = []Subscription{{Name: n.Subscription, Enabled: true, Slot: n.Slot}}
	dst.Databases = append(dst.Databases, target)
	p := Build(mustTestConfig(t, "replication: {max_lag_bytes: 0, stop: true}"), src, dst, testEnv)
	var kinds []StepKind
	for _, s := range p.Steps {
		if s.Scope != ClusterScope {
			kinds = append(kinds, s.Kind)
		}
	}
	if want := []StepKind{StepWaitForLag, StepFreezeWrites, StepFence, StepSyncSequences, StepSyncLargeObjects, StepVerifyCutover, StepStopReplication}; !slices.Equal(kinds, want) {
		t.Errorf("steps = %v, want %v", kinds, want)
	}
	for _, f := range p.Findings {
		if f.Code == "target-schema-not-empty" || f.Code == "target-table-not-empty" || f.Code == "leftover-replication-objects" {
			t.Errorf("finding %s about the migration's own objects", f.Code)
		}
	}
	if !p.Databases[0].Replicating {
		t.Error("the database is not marked replicating")
	}
	// Half a set is a leftover, not a migration.
	src.Slots = nil
	p = Build(mustTestConfig(t, ""), src, dst, testEnv)
	if !slices.Contains(findingKeys(p.Findings), "warning leftover-replication-objects") {
		t.Errorf("findings = %v, want a leftover warning", findingKeys(p.Findings))
	}
}

// TestSubscriptionPasswordFromEnvironment: a non-superuser subscription
// needs a password, written in the source URI or one pghaul found in
// PGPASSWORD or a passfile (Env.SubscriptionPassword).
func TestSubscriptionPasswordFromEnvironment(t *testing.T) {
	c, err := config.Parse([]byte("version: 1\nsource: {uri: \"postgres://u@src/postgres\"}\ntarget: {uri: \"postgres://u:pw@dst/postgres\"}\nmethod: replication\n"), "m.yaml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, found := range []bool{false, true} {
		src, dst := healthy()
		dst.Server.Major = 16
		dst.Me = Me{Name: "admin", CreateDB: true, CreateRole: true, MemberOf: []string{"pg_create_subscription"}}
		env := testEnv
		env.SubscriptionPassword = found
		got := slices.Contains(findingKeys(Build(c, src, dst, env).Findings), "blocker no-subscription-privilege")
		if got == found {
			t.Errorf("password found outside the URI: %t; no-subscription-privilege blocker: %t", found, got)
		}
	}
}

// TestSubscriptionProvedByProbe: before 16 only superusers subscribe on
// a vanilla server, but managed services let their admin role do it; a
// probe that created a subscription (Env.SubscriptionCreatable) is the
// proof plan trusts over the role's attributes.
func TestSubscriptionProvedByProbe(t *testing.T) {
	for _, creatable := range []bool{false, true} {
		src, dst := healthy()
		dst.Server.Major = 15
		dst.Me = Me{Name: "admin", CreateDB: true, CreateRole: true}
		env := testEnv
		env.SubscriptionCreatable = creatable
		got := slices.Contains(findingKeys(Build(mustConfig(t, "method: replication\n"), src, dst, env).Findings), "blocker no-subscription-privilege")
		if got == creatable {
			t.Errorf("probe created a subscription: %t; no-subscription-privilege blocker: %t", creatable, got)
		}
	}
}

// TestSubscriptionDialsLocalhost: a local source address with a remote
// target is a warning under replication only.
func TestSubscriptionDialsLocalhost(t *testing.T) {
	for _, tt := range []struct {
		config             string
		subLocal, dstLocal bool
		want               bool
	}{
		{"method: replication", true, false, true},
		{"method: replication", true, true, false},
		{"method: replication", false, false, false},
		{"method: dump", true, false, false},
	} {
		src, dst := healthy()
		env := testEnv
		env.SubscriptionLocal, env.TargetLocal = tt.subLocal, tt.dstLocal
		got := slices.Contains(findingKeys(Build(mustTestConfig(t, tt.config), src, dst, env).Findings), "warning subscription-dials-localhost")
		if got != tt.want {
			t.Errorf("%s, subscription local %t, target local %t: warning %t, want %t", tt.config, tt.subLocal, tt.dstLocal, got, tt.want)
		}
	}
}

// TestFilterTypoSuggests: the finding names the closest existing name,
// spelled with as many parts as the pattern.
func TestFilterTypoSuggests(t *testing.T) {
	src, dst := healthy()
	for cfg, want := range map[string]string{
		"databases: {include: [shopp]}": `databases.include pattern "shopp" matches no database on the source (did you mean "shop"?)`,
		"tables: {skip: [sales.ordrs]}": `tables.skip pattern "sales.ordrs" matches no table of the selected databases on the source (did you mean "sales.orders"?)`,
	} {
		p := Build(mustTestConfig(t, cfg), src, dst, testEnv)
		var got []string
		for _, f := range p.Findings {
			if f.Code == "filter-matches-nothing" {
				got = append(got, f.Message)
			}
		}
		if !slices.Equal(got, []string{want}) {
			t.Errorf("%s: filter-matches-nothing messages = %q, want %q", cfg, got, want)
		}
	}
}

// TestPublicationPrivilegeReasons: every reason the publication cannot be
// made is in one finding; a 15 target is not offered pg_create_subscription.
func TestPublicationPrivilegeReasons(t *testing.T) {
	src, dst := healthy()
	src.Me = Me{Name: "app", Replication: true}
	shopOf(&src).CanCreate = false
	shopOf(&src).Tables[0].OwnedByMe = false
	dst.Me = Me{Name: "migrator", CreateDB: true, CreateRole: true}
	dst.Server.Major = 15
	p := Build(mustTestConfig(t, "method: replication"), src, dst, testEnv)
	var pub, sub *Finding
	for i, f := range p.Findings {
		switch f.Code {
		case "publication-privilege":
			pub = &p.Findings[i]
		case "no-subscription-privilege":
			sub = &p.Findings[i]
		}
	}
	if pub == nil || !strings.Contains(pub.Message, "lacks CREATE on database shop; and FOR TABLE needs ownership") {
		t.Errorf("publication-privilege = %+v, want both reasons", pub)
	}
	if sub == nil || strings.Contains(sub.Fix, "pg_create_subscription") {
		t.Errorf("no-subscription-privilege on a 15 target = %+v, want no pg_create_subscription in its fix", sub)
	}
}
