package plan

// FormatVersion is the version of the plan's JSON form; it changes only
// when a field changes meaning.
const FormatVersion = 1

// Plan is the ordered set of steps that moves a source cluster onto a
// target cluster, plus every finding that could stop it. Build makes it
// pure and deterministic: the same inputs give the same bytes. It holds no
// time and no secret. apply refuses it when Blockers is non-empty or a
// fingerprint no longer matches a fresh inspection.
type Plan struct {
	FormatVersion int `json:"format_version"`
	// ConfigHash is the SHA-256 of the migration file as written.
	ConfigHash        string   `json:"config_hash"`
	SourceFingerprint string   `json:"source_fingerprint"`
	TargetFingerprint string   `json:"target_fingerprint"`
	Source            Endpoint `json:"source"`
	Target            Endpoint `json:"target"`
	// Databases lists every selected database with its method, sorted by name.
	Databases []DatabasePlan `json:"databases"`
	Findings  []Finding      `json:"findings"`
	Steps     []Step         `json:"steps"`
	Totals    Totals         `json:"totals"`
}

// Endpoint is what the plan shows of a server: redacted address and version.
type Endpoint struct {
	URI      string `json:"uri"`
	Version  string `json:"version"`
	SystemID string `json:"system_id"`
}

// Major is the major version of the server ("15.14" and "17beta1 (Debian)"
// are 15 and 17; 0 when unknown).
func (e Endpoint) Major() int {
	n := 0
	for _, c := range e.Version {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// Method is how one database moves.
type Method string

// The methods a database can be given.
const (
	MethodReplication Method = "replication"
	MethodDump        Method = "dump"
)

// DatabasePlan is the method chosen for one database and why.
type DatabasePlan struct {
	Name   string `json:"name"`
	Method Method `json:"method"`
	// Reason says why this method: "method: dump", or the first
	// replication prerequisite that failed under method: auto.
	Reason string `json:"reason"`
	// Create reports that the database is missing on the target.
	Create bool  `json:"create"`
	Tables int   `json:"tables"`
	Bytes  int64 `json:"bytes"`
	// Names are the replication objects of the database (replication only).
	Names ReplicationNames `json:"names,omitzero"`
	// Sequences and MatViews are what a cut-over syncs and refreshes.
	Sequences int        `json:"sequences,omitempty"`
	MatViews  []TableRef `json:"matviews,omitempty"`
	// Copied are the tables whose rows the database's replication carries
	// (replication only): what the cut-over verifies. Unlogged are those
	// of them replication does not carry: the cut-over copies them again.
	Copied   []TableRef `json:"copied,omitempty"`
	Unlogged []TableRef `json:"unlogged,omitempty"`
	// Replicating reports a complete set of this migration's replication
	// objects found on the servers: only the cut-over is left.
	Replicating bool `json:"replicating,omitempty"`
}

// Totals sums up the plan for its summary line.
type Totals struct {
	Databases int   `json:"databases"`
	Tables    int   `json:"tables"`
	Bytes     int64 `json:"bytes"`
	Blockers  int   `json:"blockers"`
	Warnings  int   `json:"warnings"`
	Steps     int   `json:"steps"`
}

// Severity says whether a Finding stops the plan.
type Severity string

// The severities.
const (
	Blocker Severity = "blocker"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding is a problem or fact discovered while planning. Code is stable
// (kebab-case, DESIGN.md section 3) and documented in docs/findings.md.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	// Object is what the finding is about: "source", "target",
	// "role app", "database shop", "table shop.public.orders".
	Object  string `json:"object"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Doc points at the finding's section of docs/findings.md.
	Doc string `json:"doc"`
}

// StepKind names what a Step does. Values appear in plan files, state and
// golden files, so they never change.
type StepKind string

// The step kinds, in the order they run within their scope.
const (
	StepCreateRoles        StepKind = "create_roles"
	StepGrantMemberships   StepKind = "grant_memberships"
	StepSetRoleSettings    StepKind = "set_role_settings"
	StepCreateDatabase     StepKind = "create_database"
	StepConfigureDatabase  StepKind = "configure_database"
	StepExportSnapshot     StepKind = "export_snapshot"
	StepCreatePublication  StepKind = "create_publication"
	StepCreateSlot         StepKind = "create_slot"
	StepDumpSchema         StepKind = "dump_schema"
	StepRestorePreData     StepKind = "restore_pre_data"
	StepCopyData           StepKind = "copy_data"
	StepCopyLargeObjects   StepKind = "copy_large_objects"
	StepRestorePostData    StepKind = "restore_post_data"
	StepSetSequences       StepKind = "set_sequences"
	StepCreateSubscription StepKind = "create_subscription"
	StepWaitForSync        StepKind = "wait_for_sync"
	StepWaitForLag         StepKind = "wait_for_lag"
	StepSyncSequences      StepKind = "sync_sequences"
	StepRefreshMatViews    StepKind = "refresh_matviews"
	StepFreezeWrites       StepKind = "freeze_writes"
	StepFence              StepKind = "fence"
	StepCopyUnlogged       StepKind = "copy_unlogged"
	StepSyncLargeObjects   StepKind = "sync_large_objects"
	StepVerifyCutover      StepKind = "verify_cutover"
	// StepStopReplication is the cut-over's switch: replication removed.
	StepStopReplication StepKind = "stop_replication"
)

// StepKinds are all the step kinds, in the order above.
var StepKinds = []StepKind{
	StepCreateRoles, StepGrantMemberships, StepSetRoleSettings, StepCreateDatabase, StepConfigureDatabase,
	StepExportSnapshot, StepCreatePublication, StepCreateSlot, StepDumpSchema, StepRestorePreData, StepCopyData,
	StepCopyLargeObjects, StepRestorePostData, StepSetSequences, StepCreateSubscription, StepWaitForSync,
	StepWaitForLag, StepSyncSequences, StepRefreshMatViews, StepFreezeWrites, StepFence, StepCopyUnlogged,
	StepSyncLargeObjects, StepVerifyCutover, StepStopReplication,
}

// Step is one action of the plan. ID is stable across runs and unique
// ("cluster/roles", "db:shop/copy-data"); Params carries what the executor
// needs, never SQL text.
type Step struct {
	ID     string   `json:"id"`
	Kind   StepKind `json:"kind"`
	Scope  string   `json:"scope"`
	Detail string   `json:"detail"`
	Params Params   `json:"params"`
	// Status is set only when a plan is shown with the progress of its
	// migration (plan with a state directory); Build never sets it.
	Status string `json:"status,omitempty"`
}

// ClusterScope is the Scope of steps that concern the whole cluster.
const ClusterScope = "cluster"

// Params are a step's typed parameters; each kind uses some of them.
type Params struct {
	Database string     `json:"database,omitempty"`
	Roles    []string   `json:"roles,omitempty"`
	Tables   []TableRef `json:"tables,omitempty"`
	// Skipped tables keep their definition but get no rows.
	Skipped []TableRef `json:"skipped,omitempty"`
	// ExcludeExtensions are left out of the schema restore.
	ExcludeExtensions []string `json:"exclude_extensions,omitempty"`
	Publication       string   `json:"publication,omitempty"`
	Slot              string   `json:"slot,omitempty"`
	Subscription      string   `json:"subscription,omitempty"`
	// AllTables makes the publication FOR ALL TABLES.
	AllTables bool `json:"all_tables,omitempty"`
	// CopyData is the subscription's copy_data (initial_copy: subscription).
	CopyData    bool   `json:"copy_data,omitempty"`
	MaxLagBytes *int64 `json:"max_lag_bytes,omitempty"`
	// Checksums makes the cut-over's verify compare row hashes too.
	Checksums bool `json:"checksums,omitempty"`
}

// Env is what the planner knows of this machine: the external programs
// cmd found (DESIGN.md's pg_bin search).
type Env struct {
	PGDump    []Tool `json:"pg_dump"`
	PGRestore []Tool `json:"pg_restore"`
	// SubscriptionPassword: the source's password for subscriptions
	// comes from PGPASSWORD or a passfile (apply writes it into the
	// subscription's connection string).
	SubscriptionPassword bool `json:"-"`
	// SubscriptionLocal: the address subscriptions dial the source at
	// (source.uri_from_target, else source.uri) is this machine;
	// TargetLocal: target.uri is too.
	SubscriptionLocal bool `json:"-"`
	TargetLocal       bool `json:"-"`
	// ReplicationRefused is why the source refused pghaul a replication
	// connection ("" when it accepted one, or none was tried).
	ReplicationRefused string `json:"-"`
	// SubscriptionRefused is why the target server could not connect to
	// the source with the subscription's connection string.
	SubscriptionRefused string `json:"-"`
	// SubscriptionCreatable: the target user created a subscription (the
	// probe, rolled back), so it may, whatever its attributes say: managed
	// services let their admin role subscribe before PostgreSQL 16.
	SubscriptionCreatable bool `json:"-"`
}

// Tool is one copy of a program and its major version.
type Tool struct {
	Path    string `json:"path"`
	Major   int    `json:"major"`
	Version string `json:"version"`
}

// DatabaseNames returns the replication object names of database db, or
// zero names when it does not replicate.
func (p *Plan) DatabaseNames(db string) ReplicationNames {
	for _, d := range p.Databases {
		if d.Name == db {
			return d.Names
		}
	}
	return ReplicationNames{}
}

// CopiedTables are the tables whose rows the plan moves, by database: its
// copy steps' tables, or the subscription's own copy's (initial_copy:
// subscription); for a plan of the cut-over alone, those its databases
// list as copied.
func (p *Plan) CopiedTables() map[string][]TableRef {
	out := map[string][]TableRef{}
	for _, st := range p.Steps {
		if st.Kind == StepCopyData || st.Kind == StepCreateSubscription && st.Params.CopyData {
			out[st.Params.Database] = append(out[st.Params.Database], st.Params.Tables...)
		}
	}
	for _, d := range p.Databases {
		if _, ok := out[d.Name]; !ok && len(d.Copied) > 0 {
			out[d.Name] = d.Copied
		}
	}
	return out
}

// Blockers returns the blocker findings.
func (p *Plan) Blockers() []Finding { return p.bySeverity(Blocker) }

// Warnings returns the warning findings.
func (p *Plan) Warnings() []Finding { return p.bySeverity(Warning) }

func (p *Plan) bySeverity(s Severity) []Finding {
	var out []Finding
	for _, f := range p.Findings {
		if f.Severity == s {
			out = append(out, f)
		}
	}
	return out
}
