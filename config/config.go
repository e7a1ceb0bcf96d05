package config

import "time"

// Config is one migration file after loading: every key of DESIGN.md section
// 2, with defaults filled in and ${VAR}s expanded. Secrets live only in the
// expanded URIs; nothing that prints a Config may print them unredacted.
type Config struct {
	Version     int         `yaml:"version"`
	Source      Source      `yaml:"source"`
	Target      Target      `yaml:"target"`
	Databases   Databases   `yaml:"databases"`
	Tables      Tables      `yaml:"tables"`
	Roles       Roles       `yaml:"roles"`
	Extensions  Extensions  `yaml:"extensions"`
	Method      Method      `yaml:"method"`
	Replication Replication `yaml:"replication"`
	Limits      Limits      `yaml:"limits"`
	Parallel    Parallel    `yaml:"parallel"`
	PGBin       string      `yaml:"pg_bin"`
	// State is the state directory; Load makes it absolute, defaulting to
	// "<config file>.state" beside the file.
	State string `yaml:"state"`

	// File describes the file the Config was read from; it is not a key.
	File File `yaml:"-"`
}

// File is what Load knows about the file itself.
type File struct {
	// Path is the file's path as given to Load.
	Path string
	// Hash is the hex SHA-256 of the file as written, before ${VAR}
	// expansion, so it holds no secret and changes only when the file does.
	Hash string
	// Raw is the file as written (unexpanded).
	Raw []byte
}

// Source is the server migrated from.
type Source struct {
	URI string `yaml:"uri"`
	// URIFromTarget is how the target server dials the source for its
	// subscription, when that differs from URI. Empty means URI.
	URIFromTarget string `yaml:"uri_from_target"`
}

// SubscriptionURI is the connection string the target's subscription uses.
func (s Source) SubscriptionURI() string {
	if s.URIFromTarget != "" {
		return s.URIFromTarget
	}
	return s.URI
}

// Target is the server migrated to.
type Target struct {
	URI string `yaml:"uri"`
}

// Databases selects the databases to migrate.
type Databases struct {
	Include Names `yaml:"include"`
	Exclude Names `yaml:"exclude"`
	// Create false makes a missing target database a blocker (--no-createdb).
	Create bool `yaml:"create"`
}

// Tables selects whose rows are copied and replicated. A table that is not
// selected keeps its definition on the target but gets no rows.
type Tables struct {
	Skip TablePatterns `yaml:"skip"`
	Only TablePatterns `yaml:"only"`
	// ExtensionTables copies the rows of extension configuration tables.
	ExtensionTables bool `yaml:"extension_tables"`
}

// Roles selects the roles to migrate and how their passwords travel.
type Roles struct {
	Exclude   Names        `yaml:"exclude"`
	Passwords PasswordMode `yaml:"passwords"`
}

// Extensions selects the extensions to migrate.
type Extensions struct {
	Exclude Names `yaml:"exclude"`
}

// Replication is the policy of the replication method.
type Replication struct {
	InitialCopy InitialCopy `yaml:"initial_copy"`
	// MaxLagBytes nil means "do not wait"; 0 is a valid limit.
	MaxLagBytes   *int64   `yaml:"max_lag_bytes"`
	WaitTimeout   Duration `yaml:"wait_timeout"`
	Stop          bool     `yaml:"stop"`
	SyncSequences bool     `yaml:"sync_sequences"`
	// WriteFreeze makes the cut-over stop every client writing to the
	// source database before its last position is read (the fence).
	WriteFreeze bool `yaml:"write_freeze"`
	// FreezeTimeout is the longest the source stays frozen before the
	// cut-over gives up and restores it.
	FreezeTimeout Duration `yaml:"freeze_timeout"`
	// Verify is what the cut-over compares on the frozen source and the
	// target before it switches.
	Verify VerifyMode `yaml:"verify"`
	Hooks  Hooks      `yaml:"hooks"`
}

// Freezes reports a cut-over that freezes writes on the source.
func (r Replication) Freezes() bool { return r.Stop && r.WriteFreeze }

// Hooks are shell commands the cut-over runs at its turns, each with
// /bin/sh -c; a failing one before the switch aborts the cut-over.
type Hooks struct {
	BeforeFreeze Commands `yaml:"before_freeze"`
	AfterFreeze  Commands `yaml:"after_freeze"`
	AfterCutover Commands `yaml:"after_cutover"`
	OnAbort      Commands `yaml:"on_abort"`
}

// Commands is a list of shell commands.
type Commands []string

// Limits bounds what a migration may do.
type Limits struct {
	// MaxTotalSize nil means no limit.
	MaxTotalSize     *ByteSize `yaml:"max_total_size"`
	AllowOlderTarget bool      `yaml:"allow_older_target"`
}

// Parallel sets how much work runs at once.
type Parallel struct {
	Databases int `yaml:"databases"`
	Tables    int `yaml:"tables"`
	Indexes   int `yaml:"indexes"`
	// StallTimeout fails a COPY stream that moved no byte for this long:
	// a server that is connected but silent.
	StallTimeout Duration `yaml:"stall_timeout"`
	// MaxRate bounds the bytes per second all COPY streams of the copy
	// move together (nil: no limit), to spare a busy source.
	MaxRate *ByteSize `yaml:"max_rate"`
}

// Default returns a Config holding every default of DESIGN.md section 2.
func Default() Config {
	return Config{
		Databases: Databases{Create: true},
		Tables:    Tables{ExtensionTables: true},
		Roles:     Roles{Passwords: PasswordsAuto},
		Method:    MethodAuto,
		Replication: Replication{InitialCopy: InitialCopySnapshot, WaitTimeout: Duration(24 * time.Hour), SyncSequences: true,
			WriteFreeze: true, FreezeTimeout: Duration(time.Minute), Verify: VerifyCounts},
		Parallel: Parallel{Databases: 2, Tables: 4, Indexes: 2},
	}
}
