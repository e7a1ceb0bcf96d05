package inspect

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
)

// settingNames are the settings plans depend on.
var settingNames = []string{
	"wal_level", "max_replication_slots", "max_wal_senders", "max_worker_processes",
	"max_logical_replication_workers", "max_connections", "superuser_reserved_connections",
	"max_slot_wal_keep_size", "shared_preload_libraries", "extwlist.extensions",
	"max_active_replication_origins", "lc_monetary", "server_encoding",
}

// optionalSettings may legitimately be absent: their absence is not "unknown".
var optionalSettings = map[string]bool{"extwlist.extensions": true, "max_active_replication_origins": true, "max_slot_wal_keep_size": true}

// serverSQL: default_transaction_read_only is off in a session pghaul
// opened with it on when something between dropped that startup
// setting: a connection pooler (PgBouncer's ignore_startup_parameters).
const serverSQL = `SELECT split_part(current_setting('server_version'), ' ', 1), current_setting('server_version_num')::int,
	pg_is_in_recovery(), pg_postmaster_start_time()::text, current_setting('default_transaction_read_only') = 'off'`

const systemIDSQL = `SELECT system_identifier::text FROM pg_control_system()`

const settingsSQL = `SELECT name, setting FROM pg_settings WHERE name = ANY($1)`

const meSQL = `SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
	ARRAY(SELECT b.rolname FROM pg_roles b WHERE b.oid <> r.oid AND pg_has_role(r.oid, b.oid, 'MEMBER') ORDER BY 1),
	has_table_privilege('pg_catalog.pg_authid', 'SELECT'),
	ARRAY(SELECT b.rolname FROM pg_roles b WHERE b.oid <> r.oid AND pg_has_role(r.oid, b.oid, 'MEMBER WITH ADMIN OPTION') ORDER BY 1),
	ARRAY(SELECT b.rolname FROM pg_roles b WHERE b.oid <> r.oid AND pg_has_role(r.oid, b.oid, %s) AND pg_has_role(r.oid, b.oid, 'USAGE') ORDER BY 1)
FROM pg_roles r WHERE r.rolname = current_user`

const rolesSQL = `SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
	r.rolreplication, r.rolbypassrls, r.rolconnlimit, COALESCE(r.rolvaliduntil::text, ''), COALESCE(r.rolconfig, '{}'),
	COALESCE((SELECT json_agg(json_build_object('role', g.rolname, 'admin', m.admin_option) ORDER BY g.rolname)
		FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '[]'),
	COALESCE((SELECT json_agg(json_build_object('database', d.datname, 'config', s.setconfig) ORDER BY d.datname)
		FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = r.oid), '[]')
FROM pg_roles r ORDER BY 1`

// databasesSQL has a version-dependent locale part (%s): datlocprovider
// from 15, daticulocale in 15 and 16, datlocale from 17.
const databasesSQL = `SELECT d.datname, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
	%s, d.datallowconn, d.datistemplate, d.datconnlimit,
	COALESCE(d.datacl::text[], '{}'), COALESCE(shobj_description(d.oid, 'pg_database'), ''),
	COALESCE((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}')
FROM pg_database d ORDER BY 1`

// sizesSQL sizes the databases named, which the migration selects: the
// size of every database walks each of their files, which in a cluster of
// many relations took longer than the rest of the inspection.
const sizesSQL = `SELECT d.datname, pg_database_size(d.oid) FROM pg_database d
WHERE d.datname = ANY($1) AND has_database_privilege(d.oid, 'CONNECT')`

// availableSQL has %s for trusted, a column from 13.
const availableSQL = `SELECT name, version, superuser, %s FROM pg_available_extension_versions ORDER BY 1, 2`

const collationsSQL = `SELECT DISTINCT collcollate FROM pg_collation WHERE collprovider = 'c' AND collcollate IS NOT NULL ORDER BY 1`

const activitySQL = `SELECT count(*) FILTER (WHERE backend_type = 'client backend'),
	count(*) FILTER (WHERE backend_type = 'client backend' AND xact_start < now() - interval '5 minutes'),
	count(*) FILTER (WHERE backend_type = 'walsender'),
	(SELECT count(*) FROM pg_prepared_xacts),
	pg_has_role('pg_read_all_stats', 'MEMBER')
FROM pg_stat_activity`

// slotsSQL has %s for wal_status, a column from 13.
const slotsSQL = `SELECT slot_name, COALESCE(database, ''), COALESCE(plugin, ''), active, %s,
	CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END
FROM pg_replication_slots ORDER BY 1`

const subscriptionsSQL = `SELECT d.datname, s.subname, s.subenabled, COALESCE(s.subslotname, '')
FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid ORDER BY 1, 2`

// cluster reads the cluster-wide facts on the bootstrap connection.
func (r *reader) cluster(ctx context.Context) (plan.Snapshot, error) {
	var s plan.Snapshot
	srv := &s.Server
	if err := r.queryRow(ctx, serverSQL).Scan(&srv.Version, &srv.VersionNum, &s.InRecovery, &srv.StartTime, &s.Pooled); err != nil {
		return s, fmt.Errorf("read server version: %w", err)
	}
	srv.Major = srv.VersionNum / 10000
	r.major = srv.Major
	if err := r.queryRow(ctx, systemIDSQL).Scan(&srv.SystemID); err != nil {
		if !isPrivilegeError(err) {
			return s, fmt.Errorf("read system identifier: %w", err)
		}
		s.Unknown = append(s.Unknown, "system_identifier")
	}
	steps := []func(context.Context, *plan.Snapshot) error{
		r.settings, r.me, r.roles, r.databases, r.available, r.collations, r.activity, r.slots, r.subscriptions,
	}
	for _, step := range steps {
		if err := step(ctx, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}

func isPrivilegeError(err error) bool { return pg.HasCode(err, pg.InsufficientPrivilege) }

func (r *reader) settings(ctx context.Context, s *plan.Snapshot) error {
	rows, err := r.query(ctx, settingsSQL, settingNames)
	if err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	s.Settings = map[string]string{}
	var name, value string
	_, err = pgx.ForEachRow(rows, []any{&name, &value}, func() error { s.Settings[name] = value; return nil })
	if err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	for _, n := range settingNames {
		if _, ok := s.Settings[n]; !ok && !optionalSettings[n] {
			s.Unknown = append(s.Unknown, "setting:"+n)
		}
	}
	return nil
}

func (r *reader) me(ctx context.Context, s *plan.Snapshot) error {
	m := &s.Me
	// SET privilege on a role (what handing it objects takes) is its own
	// from 16; before, membership gave it.
	set := "'MEMBER'"
	if r.major >= 16 {
		set = "'SET'"
	}
	err := r.queryRow(ctx, fmt.Sprintf(meSQL, set)).Scan(&m.Name, &m.Superuser, &m.CreateDB, &m.CreateRole, &m.Replication, &m.BypassRLS, &m.MemberOf, &s.PasswordsReadable, &m.AdminOf, &m.HandsTo)
	if err != nil {
		return fmt.Errorf("read the connecting role: %w", err)
	}
	if !s.PasswordsReadable {
		s.Unknown = append(s.Unknown, "pg_authid")
	}
	return nil
}

func (r *reader) roles(ctx context.Context, s *plan.Snapshot) error {
	r.sent(1)
	roles, err := Roles(ctx, r.conn)
	s.Roles = roles
	return err
}

// Roles reads every role with its attributes, settings and memberships
// (never a password). apply reads the source's roles with it too.
func Roles(ctx context.Context, conn *pgx.Conn) ([]plan.Role, error) {
	rows, err := conn.Query(ctx, rolesSQL)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	var out []plan.Role
	var x plan.Role
	_, err = pgx.ForEachRow(rows, []any{&x.Name, &x.Superuser, &x.Inherit, &x.CreateRole, &x.CreateDB, &x.Login, &x.Replication,
		&x.BypassRLS, &x.ConnLimit, &x.ValidUntil, &x.Config, &x.MemberOf, &x.DatabaseConfig}, func() error {
		out = append(out, x)
		x = plan.Role{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	return out, nil
}

func (r *reader) databases(ctx context.Context, s *plan.Snapshot) error {
	locale := `'', ''`
	switch {
	case r.major >= 17:
		locale = `d.datlocprovider::text, COALESCE(d.datlocale, '')`
	case r.major >= 15:
		locale = `d.datlocprovider::text, COALESCE(d.daticulocale, '')`
	}
	rows, err := r.query(ctx, fmt.Sprintf(databasesSQL, locale))
	if err != nil {
		return fmt.Errorf("read databases: %w", err)
	}
	var d plan.Database
	_, err = pgx.ForEachRow(rows, []any{&d.Name, &d.Owner, &d.Encoding, &d.Collate, &d.Ctype, &d.LocaleProvider, &d.Locale,
		&d.AllowConn, &d.IsTemplate, &d.ConnLimit, &d.ACL, &d.Comment, &d.Settings}, func() error {
		s.Databases = append(s.Databases, d)
		d = plan.Database{}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read databases: %w", err)
	}
	var selected []string
	for _, d := range s.Databases {
		if r.opt.selects(d.Name) {
			selected = append(selected, d.Name)
		}
	}
	if len(selected) == 0 {
		return nil
	}
	if rows, err = r.query(ctx, sizesSQL, selected); err != nil {
		return fmt.Errorf("read database sizes: %w", err)
	}
	var name string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &size}, func() error {
		if d := s.Database(name); d != nil {
			d.SizeBytes = size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read database sizes: %w", err)
	}
	return nil
}

func (r *reader) available(ctx context.Context, s *plan.Snapshot) error {
	trusted := "false"
	if r.major >= 13 {
		trusted = "trusted"
	}
	rows, err := r.query(ctx, fmt.Sprintf(availableSQL, trusted))
	if err != nil {
		return fmt.Errorf("read available extensions: %w", err)
	}
	var a plan.AvailableExtension
	_, err = pgx.ForEachRow(rows, []any{&a.Name, &a.Version, &a.Superuser, &a.Trusted}, func() error {
		s.AvailableExtensions = append(s.AvailableExtensions, a)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read available extensions: %w", err)
	}
	return nil
}

func (r *reader) collations(ctx context.Context, s *plan.Snapshot) error {
	rows, err := r.query(ctx, collationsSQL)
	if err != nil {
		return fmt.Errorf("read collations: %w", err)
	}
	s.Collations, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read collations: %w", err)
	}
	return nil
}

func (r *reader) activity(ctx context.Context, s *plan.Snapshot) error {
	a := &s.Activity
	var allStats bool
	err := r.queryRow(ctx, activitySQL).Scan(&a.Sessions, &a.OldTransactions, &a.WALSenders, &a.PreparedTransactions, &allStats)
	if err != nil {
		return fmt.Errorf("read activity: %w", err)
	}
	// Without pg_read_all_stats, other roles' sessions show no xact_start.
	if !s.Me.Superuser && !allStats {
		s.Unknown = append(s.Unknown, "pg_stat_activity")
	}
	return nil
}

func (r *reader) slots(ctx context.Context, s *plan.Snapshot) error {
	walStatus := "''"
	if r.major >= 13 {
		walStatus = "COALESCE(wal_status, '')"
	}
	rows, err := r.query(ctx, fmt.Sprintf(slotsSQL, walStatus))
	if err != nil {
		return fmt.Errorf("read replication slots: %w", err)
	}
	var sl plan.Slot
	_, err = pgx.ForEachRow(rows, []any{&sl.Name, &sl.Database, &sl.Plugin, &sl.Active, &sl.WALStatus, &sl.RetainedBytes}, func() error {
		s.Slots = append(s.Slots, sl)
		sl = plan.Slot{}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read replication slots: %w", err)
	}
	return nil
}

// subscriptions reads pg_subscription once for the cluster (it is shared)
// and hands each database its own; without the privilege it is unknown.
func (r *reader) subscriptions(ctx context.Context, s *plan.Snapshot) error {
	rows, err := r.query(ctx, subscriptionsSQL)
	if err != nil {
		return fmt.Errorf("read subscriptions: %w", err)
	}
	var db string
	var sub plan.Subscription
	_, err = pgx.ForEachRow(rows, []any{&db, &sub.Name, &sub.Enabled, &sub.Slot}, func() error {
		s.SubscriptionCount++
		if d := s.Database(db); d != nil {
			d.Subscriptions = append(d.Subscriptions, sub)
		}
		return nil
	})
	if isPrivilegeError(err) {
		s.Unknown = append(s.Unknown, "pg_subscription")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read subscriptions: %w", err)
	}
	return nil
}
