package plan

// Snapshot is what one cluster holds, as read by inspect: the
// structural facts a plan depends on (versions, settings, roles, databases,
// tables) and volatile ones (sizes, row estimates, sessions, slots). It
// holds no secret: password hashes are never read into it.
type Snapshot struct {
	Server   Server            `json:"server"`
	Settings map[string]string `json:"settings"`
	// Unknown lists what the connecting role could not read ("pg_authid",
	// "pg_stat_activity", "setting:shared_preload_libraries"): checks that
	// need it report "unknown" instead of guessing.
	Unknown    []string `json:"unknown,omitempty"`
	InRecovery bool     `json:"in_recovery"`
	// Pooled: the session went through a connection pooler, which dropped
	// the startup setting pghaul sent (default_transaction_read_only).
	Pooled    bool       `json:"pooled,omitempty"`
	Me        Me         `json:"me"`
	Roles     []Role     `json:"roles"`
	Databases []Database `json:"databases"`
	// PasswordsReadable reports whether pg_authid's hashes can be read.
	PasswordsReadable bool `json:"passwords_readable"`
	// AvailableExtensions are the extensions this server can install.
	AvailableExtensions []AvailableExtension `json:"available_extensions"`
	// Collations are the libc locales the server knows (collcollate of
	// pg_collation), for databases created with a source's locale.
	Collations []string `json:"collations,omitempty"`
	Activity   Activity `json:"activity"`
	Slots      []Slot   `json:"slots,omitempty"`
	// Subscriptions count on the whole cluster (replication origins and
	// workers in use), when readable.
	SubscriptionCount int `json:"subscription_count"`
}

// Server identifies a running cluster.
type Server struct {
	// Version is server_version ("15.14"), VersionNum server_version_num.
	Version    string `json:"version"`
	VersionNum int    `json:"version_num"`
	Major      int    `json:"major"`
	// SystemID is pg_control_system()'s system identifier: a clone or a
	// standby shares it, so StartTime tells two servers apart too.
	SystemID  string `json:"system_id"`
	StartTime string `json:"start_time"`
}

// Me is the role the tool connects as.
type Me struct {
	Name        string   `json:"name"`
	Superuser   bool     `json:"superuser"`
	CreateDB    bool     `json:"createdb"`
	CreateRole  bool     `json:"createrole"`
	Replication bool     `json:"replication"`
	BypassRLS   bool     `json:"bypassrls"`
	MemberOf    []string `json:"member_of,omitempty"`
	// AdminOf are the roles it may grant membership in (ADMIN OPTION).
	AdminOf []string `json:"admin_of,omitempty"`
	// HandsTo are the roles it may make owners of objects now: SET on
	// them (membership before 16) and their privileges (INHERIT).
	HandsTo []string `json:"hands_to,omitempty"`
}

// Role is one role of the cluster (pg_roles), without its password.
type Role struct {
	Name        string `json:"name"`
	Superuser   bool   `json:"superuser"`
	Inherit     bool   `json:"inherit"`
	CreateRole  bool   `json:"createrole"`
	CreateDB    bool   `json:"createdb"`
	Login       bool   `json:"login"`
	Replication bool   `json:"replication"`
	BypassRLS   bool   `json:"bypassrls"`
	ConnLimit   int    `json:"conn_limit"`
	ValidUntil  string `json:"valid_until,omitempty"`
	// Config holds ALTER ROLE ... SET settings ("search_path=app").
	Config   []string     `json:"config,omitempty"`
	MemberOf []Membership `json:"member_of,omitempty"`
	// DatabaseConfig holds per-database settings of the role.
	DatabaseConfig []DatabaseSetting `json:"database_config,omitempty"`
}

// Membership is a role's membership in another role.
type Membership struct {
	Role  string `json:"role"`
	Admin bool   `json:"admin,omitempty"`
}

// DatabaseSetting is ALTER ROLE ... IN DATABASE ... SET.
type DatabaseSetting struct {
	Database string   `json:"database"`
	Config   []string `json:"config"`
}

// AvailableExtension is one installable version of an extension.
type AvailableExtension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Superuser and Trusted come from the control file: a non-superuser
	// may create a superuser extension only when it is trusted.
	Superuser bool `json:"superuser"`
	Trusted   bool `json:"trusted"`
}

// Activity is what the cluster is doing right now (volatile).
type Activity struct {
	// Sessions is the number of client backends.
	Sessions int `json:"sessions"`
	// OldTransactions counts transactions open for more than 5 minutes.
	OldTransactions      int `json:"old_transactions"`
	PreparedTransactions int `json:"prepared_transactions"`
	// WALSenders counts running WAL sender processes.
	WALSenders int `json:"wal_senders"`
}

// Slot is a replication slot.
type Slot struct {
	Name     string `json:"name"`
	Database string `json:"database,omitempty"`
	Plugin   string `json:"plugin,omitempty"`
	Active   bool   `json:"active"`
	// WALStatus is reserved, extended, unreserved or lost (13+), or "".
	WALStatus string `json:"wal_status,omitempty"`
	// RetainedBytes is the WAL the slot keeps on the source (nil when
	// unknown: a standby, or a slot never used).
	RetainedBytes *int64 `json:"retained_bytes,omitempty"`
}

// Database is one database of the cluster and, when it could be inspected,
// its contents.
type Database struct {
	Name           string   `json:"name"`
	Owner          string   `json:"owner"`
	Encoding       string   `json:"encoding"`
	Collate        string   `json:"collate"`
	Ctype          string   `json:"ctype"`
	LocaleProvider string   `json:"locale_provider"`
	Locale         string   `json:"locale,omitempty"`
	AllowConn      bool     `json:"allow_conn"`
	IsTemplate     bool     `json:"is_template"`
	ConnLimit      int      `json:"conn_limit"`
	SizeBytes      int64    `json:"size_bytes"`
	ACL            []string `json:"acl,omitempty"`
	Comment        string   `json:"comment,omitempty"`
	Settings       []string `json:"settings,omitempty"`
	// Inspected is false when the database was not opened (not selected,
	// refused connections); Error then says why when it was tried.
	Inspected bool   `json:"inspected"`
	Error     string `json:"error,omitempty"`
	// NotUTF8: the catalog holds text that is not valid UTF-8 (a SQL_ASCII
	// database stores any bytes), which pghaul cannot read.
	NotUTF8 bool `json:"not_utf8,omitempty"`
	Contents
}

// Contents is what inspection finds inside one database.
type Contents struct {
	// CanCreate reports CREATE on the database for the connecting role.
	CanCreate bool `json:"can_create,omitempty"`
	// AivenExtras reports aiven_extras' publication and subscription
	// functions in the database, which lift the privileges they need.
	AivenExtras  bool        `json:"aiven_extras,omitempty"`
	Schemas      []Schema    `json:"schemas,omitempty"`
	Extensions   []Extension `json:"extensions,omitempty"`
	Languages    []string    `json:"languages,omitempty"`
	Tables       []Table     `json:"tables,omitempty"`
	Views        []View      `json:"views,omitempty"`
	Sequences    []Sequence  `json:"sequences,omitempty"`
	Types        []Object    `json:"types,omitempty"`
	LargeObjects int64       `json:"large_objects,omitempty"`
	// UnreadableLargeObjects counts the large objects the connecting role
	// may not read (pg_read_all_data does not cover them).
	UnreadableLargeObjects int64          `json:"unreadable_large_objects,omitempty"`
	Publications           []string       `json:"publications,omitempty"`
	Subscriptions          []Subscription `json:"subscriptions,omitempty"`
	Tablespaces            []string       `json:"tablespaces,omitempty"`
	// SuperuserObjects are objects only a superuser can create: C-language
	// functions, base types, casts (not those of extensions).
	SuperuserObjects []Object `json:"superuser_objects,omitempty"`
}

// Schema is a namespace and its owner.
type Schema struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
}

// Extension is an installed extension.
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Schema  string `json:"schema"`
}

// Object names a schema-qualified object and what kind it is.
type Object struct {
	Schema string `json:"schema,omitempty"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
}

// Table kinds (pg_class.relkind).
const (
	KindTable       = "r"
	KindPartitioned = "p"
	KindForeign     = "f"
)

// Table is a table, partitioned table or foreign table.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Owner  string `json:"owner"`
	// ParentSchema and ParentName name the partitioned table this is a
	// partition of; both are empty for a table that is not a partition.
	ParentSchema string `json:"parent_schema,omitempty"`
	ParentName   string `json:"parent_name,omitempty"`
	// Persistence is p (permanent), u (unlogged) or t (temporary).
	Persistence string `json:"persistence"`
	// ReplicaIdentity is d (default), n (nothing), f (full), i (index).
	ReplicaIdentity  string `json:"replica_identity"`
	HasPrimaryKey    bool   `json:"has_primary_key"`
	RowSecurity      bool   `json:"row_security,omitempty"`
	ForceRowSecurity bool   `json:"force_row_security,omitempty"`
	// OwnedByMe is pg_has_role(current_user, owner, 'USAGE').
	OwnedByMe bool `json:"owned_by_me"`
	// Unreadable: the connecting role lacks SELECT on it (pg_dump locks
	// every table it dumps, and the copy reads it).
	Unreadable bool     `json:"unreadable,omitempty"`
	Columns    []Column `json:"columns"`
	// Extension names the extension that owns the table; ExtConfig marks
	// a configuration table registered with pg_extension_config_dump.
	Extension    string       `json:"extension,omitempty"`
	ExtConfig    bool         `json:"ext_config,omitempty"`
	ExtCondition string       `json:"ext_condition,omitempty"`
	ForeignKeys  []ForeignKey `json:"foreign_keys,omitempty"`
	EstRows      int64        `json:"est_rows"`
	Bytes        int64        `json:"bytes"`
	// HasRows is set on the target only: whether the table holds a row
	// (nil when it could not be read).
	HasRows *bool `json:"has_rows,omitempty"`
}

// Column is a table column.
type Column struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Generated bool   `json:"generated,omitempty"`
	// Equality reports that the type has a default btree or hash operator
	// class, which REPLICA IDENTITY FULL needs to find rows on apply.
	Equality bool `json:"equality"`
}

// ForeignKey is a constraint referencing another table.
type ForeignKey struct {
	Name      string `json:"name"`
	RefSchema string `json:"ref_schema"`
	RefTable  string `json:"ref_table"`
}

// View is a view or materialized view and the tables it reads.
type View struct {
	Schema       string     `json:"schema"`
	Name         string     `json:"name"`
	Materialized bool       `json:"materialized,omitempty"`
	DependsOn    []TableRef `json:"depends_on,omitempty"`
}

// Sequence is a sequence; OwnedBy names its owning column's table.
type Sequence struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// Subscription is a subscription in a database.
type Subscription struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Slot    string `json:"slot,omitempty"`
}

// TableRef names a table in a database's schema.
type TableRef struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// String is schema.name.
func (r TableRef) String() string { return r.Schema + "." + r.Name }

// Ref returns the table's TableRef.
func (t Table) Ref() TableRef { return TableRef{Schema: t.Schema, Name: t.Name} }

// Database returns the database named name, or nil.
func (s *Snapshot) Database(name string) *Database {
	for i := range s.Databases {
		if s.Databases[i].Name == name {
			return &s.Databases[i]
		}
	}
	return nil
}

// Role returns the role named name, or nil.
// RoleNames lists the names of the cluster's roles.
func (s *Snapshot) RoleNames() []string {
	out := make([]string, len(s.Roles))
	for i, r := range s.Roles {
		out[i] = r.Name
	}
	return out
}

func (s *Snapshot) Role(name string) *Role {
	for i := range s.Roles {
		if s.Roles[i].Name == name {
			return &s.Roles[i]
		}
	}
	return nil
}

// IsUnknown reports whether what was not readable.
func (s *Snapshot) IsUnknown(what string) bool {
	for _, u := range s.Unknown {
		if u == what {
			return true
		}
	}
	return false
}
