package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pghaul/pghaul/internal/dsn"
)

// InitCmd writes a migration file from aiven-db-migrate's flags, so an
// existing command line becomes a reviewable file.
type InitCmd struct {
	Source                   string   `short:"s" placeholder:"URI" help:"Source server: postgres:// URI or key=value string (SOURCE_SERVICE_URI wins when set)."`
	Target                   string   `short:"t" placeholder:"URI" help:"Target server (TARGET_SERVICE_URI wins when set)."`
	FilteredDB               string   `name:"filtered-db" short:"f" placeholder:"DB,DB" help:"Comma-separated databases to leave out."`
	ExcludedRoles            string   `placeholder:"ROLE,ROLE" help:"Comma-separated roles to leave out (-xr)."`
	ExcludedExtensions       string   `placeholder:"EXT,EXT" help:"Comma-separated extensions to leave out (-xe)."`
	SkipTable                []string `placeholder:"TABLE" help:"Table whose rows are not copied; repeatable, commas too."`
	WithTable                []string `placeholder:"TABLE" help:"Copy only these tables' rows; repeatable, commas too."`
	ReplicateExtensionTables bool     `negatable:"" default:"true" help:"Copy extension configuration tables."`
	ForceMethod              string   `enum:",replication,dump,replication_with_dump_fallback" default:"" help:"replication or dump."`
	MaxReplicationLag        int64    `default:"-1" placeholder:"BYTES" help:"Wait until the lag is at most this many bytes."`
	StopReplication          bool     `help:"Stop replication once the lag is reached (needs --max-replication-lag)."`
	DBsMaxTotalSize          int64    `name:"dbs-max-total-size" default:"-1" placeholder:"BYTES" help:"Refuse databases larger in total."`
	PGBin                    string   `name:"pgbin" placeholder:"DIR" help:"Directory of pg_dump and pg_restore."`
	SkipDBVersionCheck       bool     `name:"skip-db-version-check" help:"Allow a target older than the source."`
	NoCreateDB               bool     `name:"no-createdb" help:"Do not create missing target databases."`

	// aiven-db-migrate flags that are not part of a migration file.
	Verbose       bool   `short:"v" hidden:""`
	Validate      bool   `hidden:""`
	ShowPasswords bool   `hidden:""`
	MigrationID   string `hidden:""`
	Mangle        bool   `short:"m" hidden:""`
	ReportFile    string `hidden:""`
}

// Run prints the file on stdout and notes on stderr (through log).
func (c *InitCmd) Run(stdout io.Writer, env Env, log *slog.Logger) error {
	c.fromEnv(env)
	if c.Source == "" || c.Target == "" {
		return &exitError{code: 1, err: fmt.Errorf("init needs --source and --target (or SOURCE_SERVICE_URI and TARGET_SERVICE_URI)")}
	}
	if c.StopReplication && c.MaxReplicationLag < 0 {
		return &exitError{code: 1, err: fmt.Errorf("--stop-replication requires --max-replication-lag >= 0")}
	}
	if len(c.SkipTable) > 0 && len(c.WithTable) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("--skip-table and --with-table cannot be used together")}
	}
	for _, n := range c.ignoredFlagNotes() {
		log.Warn(n)
	}
	src, srcSecret := templateSecret(c.Source, "SOURCE_PASSWORD")
	dst, dstSecret := templateSecret(c.Target, "TARGET_PASSWORD")
	for _, v := range []string{srcSecret, dstSecret} {
		if v != "" {
			log.Warn(fmt.Sprintf("the password was replaced by ${%s}: export %s (the password as is, not percent-encoded) before validate, plan or apply", v, v))
		}
	}
	fmt.Fprint(stdout, "# Written by pghaul init from aiven-db-migrate flags; check it with `pghaul validate -c FILE`.\n")
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(c.document(src, dst)); err != nil {
		return err
	}
	return enc.Close()
}

func (c *InitCmd) fromEnv(env Env) {
	if v, ok := env("SOURCE_SERVICE_URI"); ok && v != "" {
		c.Source = v
	}
	if v, ok := env("TARGET_SERVICE_URI"); ok && v != "" {
		c.Target = v
	}
}

func (c *InitCmd) ignoredFlagNotes() []string {
	var notes []string
	note := func(set bool, flag, instead string) {
		if set {
			notes = append(notes, fmt.Sprintf("%s is not part of a migration file: %s", flag, instead))
		}
	}
	note(c.Verbose, "--verbose", "use pghaul -d for debug logs")
	note(c.Validate, "--validate", "run `pghaul plan -c FILE` for a read-only check")
	note(c.ShowPasswords, "--show-passwords", "pass --show-passwords to `pghaul apply`")
	note(c.MigrationID != "", "--migration-id", "pghaul names its objects from the database and target; nothing to set")
	note(c.Mangle, "--mangle", "pghaul always shortens replication object names to fit (pghaul_<db>_<hash>)")
	note(c.ReportFile != "", "--report-file", "save `pghaul plan --format json` or the apply result instead")
	return notes
}

// document builds the file as YAML nodes: only keys that differ from the
// defaults, each with the flag it came from.
func (c *InitCmd) document(src, dst string) *yaml.Node {
	doc := mapping()
	add(doc, "version", scalar("1"), "")
	add(doc, "source", kv("uri", scalar(src)), "-s/--source")
	add(doc, "target", kv("uri", scalar(dst)), "-t/--target")
	if dbs := splitList(c.FilteredDB); len(dbs) > 0 {
		add(doc, "databases", kv("exclude", list(dbs)), "-f/--filtered-db")
	}
	if c.NoCreateDB {
		add(doc, "databases", kv("create", scalar("false")), "--no-createdb")
	}
	c.addTables(doc)
	if roles := splitList(c.ExcludedRoles); len(roles) > 0 {
		add(doc, "roles", kv("exclude", list(roles)), "-xr/--excluded-roles")
	}
	if exts := splitList(c.ExcludedExtensions); len(exts) > 0 {
		add(doc, "extensions", kv("exclude", list(exts)), "-xe/--excluded-extensions")
	}
	switch c.ForceMethod {
	case "replication", "dump":
		add(doc, "method", scalar(c.ForceMethod), "--force-method")
	}
	if c.MaxReplicationLag >= 0 {
		add(doc, "replication", kv("max_lag_bytes", scalar(fmt.Sprint(c.MaxReplicationLag))), "--max-replication-lag")
	}
	if c.StopReplication {
		add(doc, "replication", kv("stop", scalar("true")), "--stop-replication")
	}
	if c.DBsMaxTotalSize >= 0 {
		add(doc, "limits", kv("max_total_size", scalar(fmt.Sprint(c.DBsMaxTotalSize))), "--dbs-max-total-size")
	}
	if c.SkipDBVersionCheck {
		add(doc, "limits", kv("allow_older_target", scalar("true")), "--skip-db-version-check")
	}
	if c.PGBin != "" {
		add(doc, "pg_bin", scalar(escapeDollars(c.PGBin)), "--pgbin")
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}
}

func (c *InitCmd) addTables(doc *yaml.Node) {
	if skip := splitAll(c.SkipTable); len(skip) > 0 {
		add(doc, "tables", kv("skip", list(skip)), "--skip-table")
	}
	if only := splitAll(c.WithTable); len(only) > 0 {
		add(doc, "tables", kv("only", list(only)), "--with-table")
	}
	if !c.ReplicateExtensionTables {
		add(doc, "tables", kv("extension_tables", scalar("false")), "--no-replicate-extension-tables")
	}
}

// templateSecret replaces the password of a connection string by ${name}
// and returns the new string and name, or the string unchanged and "".
// Every other "$" is doubled first so that loading the file gives it back.
func templateSecret(s, name string) (string, string) {
	out, found := dsn.ReplacePassword(escapeDollars(s), "${"+name+"}")
	if !found {
		return escapeDollars(s), ""
	}
	return out, name
}

func escapeDollars(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitAll(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, splitList(s)...)
	}
	return out
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func scalar(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: v}
	// Strings that YAML would read as another type stay strings.
	if v != "1" && v != "true" && v != "false" && !isNumber(v) {
		n.Tag = "!!str"
	}
	return n
}

func isNumber(v string) bool {
	_, err := fmt.Sscan(v, new(int64))
	return err == nil && strings.TrimLeft(v, "-0123456789") == ""
}

func list(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, it := range items {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: escapeDollars(it)})
	}
	return n
}

func kv(key string, val *yaml.Node) *yaml.Node {
	m := mapping()
	m.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Value: key}, val}
	return m
}

// add sets key in doc; a mapping value merges into an existing section.
func add(doc *yaml.Node, key string, val *yaml.Node, flag string) {
	if flag != "" && val.Kind == yaml.MappingNode {
		val.Content[1].LineComment = flag
	} else if flag != "" {
		val.LineComment = flag
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key && val.Kind == yaml.MappingNode {
			doc.Content[i+1].Content = append(doc.Content[i+1].Content, val.Content...)
			return
		}
	}
	doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, val)
}
