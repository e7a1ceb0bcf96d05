package config

import (
	"cmp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pghaul/pghaul/internal/dsn"
)

// MaxParallel is the largest value of each parallel.* key.
const MaxParallel = 64

// validate checks the rules that span keys or values, after decoding. A
// problem is placed at the key it concerns, or at its section when the key
// is absent.
func (d *decoder) validate(c *Config) {
	d.validateVersion(c)
	d.validateURI("source.uri", c.Source.URI, true)
	d.validateURI("source.uri_from_target", c.Source.URIFromTarget, false)
	d.validateURI("target.uri", c.Target.URI, true)
	if len(c.Tables.Skip) > 0 && len(c.Tables.Only) > 0 {
		d.addAt("tables.only", "cannot be used together with tables.skip (as --with-table and --skip-table); keep one of them")
	}
	r := c.Replication
	if r.MaxLagBytes != nil && *r.MaxLagBytes < 0 {
		d.addAt("replication.max_lag_bytes", "must be 0 or more, got %d; leave it unset not to wait", *r.MaxLagBytes)
	}
	if r.Stop && r.MaxLagBytes == nil {
		d.addAt("replication.stop", "true requires replication.max_lag_bytes: replication stops only once the lag is at most that many bytes")
	}
	if r := c.Parallel.MaxRate; r != nil && *r < 64*1024 {
		d.addAt("parallel.max_rate", "must be at least 64KiB (bytes per second); leave it unset for no limit")
	}
	if l := c.Limits.MaxTotalSize; l != nil && *l <= 0 {
		d.addAt("limits.max_total_size", "must be more than 0 bytes; leave it unset for no limit")
	}
	for key, v := range map[string]int{"parallel.databases": c.Parallel.Databases, "parallel.tables": c.Parallel.Tables, "parallel.indexes": c.Parallel.Indexes} {
		if v < 1 || v > MaxParallel {
			d.addAt(key, "must be between 1 and %d, got %d", MaxParallel, v)
		}
	}
	sortProblems(d.problems)
}

func (d *decoder) validateVersion(c *Config) {
	for _, p := range d.problems {
		if p.Path == "version" {
			return // "expected a whole number": 0 is no news
		}
	}
	switch {
	case d.has("version") && c.Version != 1:
		d.addAt("version", "%d is not a version this pghaul reads; use `version: 1`", c.Version)
	case !d.has("version"):
		d.addAt("version", "is required; add `version: 1` at the top")
	}
}

func (d *decoder) validateURI(key, v string, required bool) {
	if v == "" {
		if required {
			d.addAt(key, "is required: a postgres:// URI or a key=value connection string")
		}
		return
	}
	if d.skip[key] {
		return
	}
	err := dsn.Validate(v)
	if err == nil {
		return
	}
	if shown := dsn.Redact(v); !strings.HasPrefix(shown, "<") {
		d.addAt(key, "%s %v", shown, err)
		return
	}
	d.addAt(key, "%v", err)
}

func (d *decoder) has(key string) bool {
	_, ok := d.pos[key]
	return ok
}

// addAt reports a problem at key's value, or at the closest enclosing
// section present in the file.
func (d *decoder) addAt(key, format string, args ...any) {
	p, probe := d.pos[key], key
	for p.Line == 0 && probe != "" {
		probe = parent(probe)
		p = d.pos[probe]
	}
	if p.Line == 0 {
		p.Line, p.Column = 1, 1
	}
	d.add(&yaml.Node{Line: p.Line, Column: p.Column}, key, format, args...)
}

func parent(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		return key[:i]
	}
	return ""
}

// sortProblems orders problems by position so output reads top to bottom.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
