package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = "version: 1\nsource: {uri: \"postgres://a@src/postgres\"}\ntarget: {uri: \"postgres://b@dst/postgres\"}\n"

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func mustParse(t *testing.T, doc string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), "m.yaml", Options{LookupEnv: envOf(env)})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal, nil)
	want := Default()
	want.Version = 1
	want.Source.URI, want.Target.URI = "postgres://a@src/postgres", "postgres://b@dst/postgres"
	c.File = File{}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Parse(minimal) = %+v, want %+v", *c, want)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"databases.create", c.Databases.Create, true},
		{"tables.extension_tables", c.Tables.ExtensionTables, true},
		{"roles.passwords", c.Roles.Passwords, PasswordsAuto},
		{"method", c.Method, MethodAuto},
		{"replication.initial_copy", c.Replication.InitialCopy, InitialCopySnapshot},
		{"replication.max_lag_bytes unset", c.Replication.MaxLagBytes == nil, true},
		{"replication.wait_timeout", time.Duration(c.Replication.WaitTimeout), 24 * time.Hour},
		{"replication.stop", c.Replication.Stop, false},
		{"replication.sync_sequences", c.Replication.SyncSequences, true},
		{"limits.max_total_size unset", c.Limits.MaxTotalSize == nil, true},
		{"limits.allow_older_target", c.Limits.AllowOlderTarget, false},
		{"parallel", c.Parallel, Parallel{Databases: 2, Tables: 4, Indexes: 2}},
		{"uri_from_target defaults to uri", c.Source.SubscriptionURI(), "postgres://a@src/postgres"},
	}
	for _, tt := range checks {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestMaxLagZeroIsNotUnset(t *testing.T) {
	c := mustParse(t, minimal+"replication: {max_lag_bytes: 0, stop: true}\n", nil)
	if c.Replication.MaxLagBytes == nil || *c.Replication.MaxLagBytes != 0 {
		t.Errorf("max_lag_bytes = %v, want a pointer to 0", c.Replication.MaxLagBytes)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"USER": "app", "PW": "p@ss:w/rd?#%", "HOST": "db.internal", "SPACEY": "it's a secret", "KEY": "sslrootcert",
		"DB": "my/db?", "CERT": "/etc/certs & keys/ca#1.pem"}
	tests := []struct {
		name, in, want string
	}{
		{"user info is percent-encoded", "postgres://${USER}:${PW}@${HOST}:5432/postgres", "postgres://app:p%40ss%3Aw%2Frd%3F%23%25@db.internal:5432/postgres"},
		{"host and parameter names are verbatim", "postgres://app@${HOST}/postgres?${KEY}=${USER}", "postgres://app@db.internal/postgres?sslrootcert=app"},
		{"database name and parameter values are percent-encoded", "postgres://app@h:5432/${DB}?application_name=x&sslrootcert=${CERT}", "postgres://app@h:5432/my%2Fdb%3F?application_name=x&sslrootcert=%2Fetc%2Fcerts%20%26%20keys%2Fca%231.pem"},
		{"key=value whole value is quoted", "host=${HOST} password=${SPACEY}", `host=db.internal password='it\'s a secret'`},
		{"dollar dollar", "postgres://app@h/postgres?application_name=a$$b", "postgres://app@h/postgres?application_name=a$b"},
		{"lone dollar kept", "postgres://app@h/p$x", "postgres://app@h/p$x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := expand(tt.in, true, envOf(env))
			if got != tt.want || len(missing) > 0 {
				t.Errorf("expand(%q) = %q, %v, want %q", tt.in, got, missing, tt.want)
			}
		})
	}
	// The values come back whole when the URI is parsed.
	got, _ := expand("postgres://${USER}:${PW}@h/${DB}?sslrootcert=${CERT}", true, envOf(env))
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); pw != env["PW"] || u.Path != "/"+env["DB"] || u.Query().Get("sslrootcert") != env["CERT"] {
		t.Errorf("parsed %q: password %q, path %q, sslrootcert %q", got, pw, u.Path, u.Query().Get("sslrootcert"))
	}
	c := mustParse(t, "version: 1\nsource: {uri: \"postgres://${USER}:${PW}@${HOST}/postgres\"}\ntarget: {uri: \"host=h password=${SPACEY}\"}\npg_bin: ${HOST}/bin\n", env)
	if c.PGBin != "db.internal/bin" {
		t.Errorf("pg_bin = %q, want db.internal/bin", c.PGBin)
	}
}

func TestMissingEnvNamesEveryVariable(t *testing.T) {
	doc := "version: 1\nsource:\n  uri: postgres://${U}:${PW}@h/postgres\ntarget: {uri: \"postgres://b@dst/postgres\"}\nreplication:\n  max_lag_bytes: ${LAG}\n"
	_, err := Parse([]byte(doc), "m.yaml", Options{LookupEnv: envOf(nil)})
	want := []string{
		"m.yaml:3:19: source.uri: environment variable U is not set",
		"m.yaml:3:24: source.uri: environment variable PW is not set",
		"m.yaml:6:18: replication.max_lag_bytes: environment variable LAG is not set",
	}
	ve, ok := err.(*ValidationError)
	if !ok || !reflect.DeepEqual(ve.Lines(), want) {
		t.Fatalf("Parse error = %v, want lines %q", err, want)
	}
	if _, err := Parse([]byte(doc), "m.yaml", Options{AllowMissingEnv: true, LookupEnv: envOf(nil)}); err != nil {
		t.Errorf("with AllowMissingEnv: %v", err)
	}
}

func TestEveryProblemReported(t *testing.T) {
	doc := "version: 2\nsource: {uri: \"\"}\ntarget: {uri: x}\nbogus: 1\nparallel: {tables: 0}\n"
	_, err := Parse([]byte(doc), "m.yaml", Options{})
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("Parse error = %v, want *ValidationError", err)
	}
	want := []string{
		"m.yaml:1:10: version: 2 is not a version this pghaul reads; use `version: 1`",
		"m.yaml:2:15: source.uri: is required: a postgres:// URI or a key=value connection string",
		`m.yaml:3:15: target.uri: is neither a postgres:// URI nor key=value pairs: a word without "=" at its start (quote a value that holds spaces: key='a b')`,
		`m.yaml:4:1: unknown key "bogus"`,
		"m.yaml:5:20: parallel.tables: must be between 1 and 64, got 0",
	}
	if got := ve.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("lines =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadHashAndState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.yaml")
	raw := "version: 1\nsource: {uri: \"postgres://a:${PW}@src/postgres\"}\ntarget: {uri: \"postgres://b@dst/postgres\"}\n"
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PW", "secret")
	c, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(raw))
	if c.File.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("hash = %s, want the hash of the unexpanded file", c.File.Hash)
	}
	if c.Source.URI != "postgres://a:secret@src/postgres" {
		t.Errorf("source.uri = %q, want the password expanded", c.Source.URI)
	}
	if want := filepath.Join(dir, "m.yaml.state"); c.State != want {
		t.Errorf("state = %q, want %q", c.State, want)
	}
	if err := os.WriteFile(path, []byte(raw+"state: run1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, _ = Load(path, Options{}); c.State != filepath.Join(dir, "run1") {
		t.Errorf("relative state = %q, want it beside the file", c.State)
	}
}

func TestUnits(t *testing.T) {
	sizes := []struct {
		in   string
		want ByteSize
	}{
		{"1048576", 1 << 20}, {"10GB", 10e9}, {"512MiB", 512 << 20}, {"1.5GiB", 3 << 29}, {"2 kB", 2000}, {"7B", 7}, {"3tib", 3 << 40},
	}
	for _, tt := range sizes {
		if got, err := ParseByteSize(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "ten", "-1GB", "1e9", "5 parsecs", "NaN"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted it", bad)
		}
	}
	if s := ByteSize(3 << 29).String(); s != "1.5 GiB" {
		t.Errorf("String = %q, want 1.5 GiB", s)
	}
	c := mustParse(t, minimal+"replication: {wait_timeout: 1h30m}\nlimits: {max_total_size: 10GB}\n", nil)
	if time.Duration(c.Replication.WaitTimeout) != 90*time.Minute || *c.Limits.MaxTotalSize != 10e9 {
		t.Errorf("wait_timeout, max_total_size = %v, %v", c.Replication.WaitTimeout, *c.Limits.MaxTotalSize)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"max_lag_bytes", "wait_timeout", "stop", "sync_sequences", "initial_copy"}
	tests := map[string]string{"max_lag": "max_lag_bytes", "stpo": "stop", "wait_timout": "wait_timeout", "frobnicate": "", "sync": "sync_sequences"}
	for in, want := range tests {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStateKey(t *testing.T) {
	base := "version: 1\nsource: {uri: \"postgres://a:${PW}@src/postgres\"}\ntarget: {uri: \"postgres://b@dst/postgres\"}\ndatabases: {exclude: [x]}\n"
	key := func(doc, src, dst string) string {
		c, err := Parse([]byte(doc), "m.yaml", Options{LookupEnv: envOf(map[string]string{"PW": "p"})})
		if err != nil {
			t.Fatal(err)
		}
		return c.StateKey(src, dst)
	}
	k := key(base, "1", "2")
	same := []string{
		base + "replication: {max_lag_bytes: 5, stop: true, wait_timeout: 1h, sync_sequences: false}\nparallel: {tables: 8}\npg_bin: /x\nstate: s\n",
		"# a comment\n" + base,
		"databases: {exclude: [x]}\n" + strings.Replace(base, "databases: {exclude: [x]}\n", "", 1),
		strings.Replace(base, "@src/postgres\"}", "@src/postgres\", uri_from_target: \"postgres://a@10.0.0.5/postgres\"}", 1),
	}
	for _, doc := range same {
		if got := key(doc, "1", "2"); got != k {
			t.Errorf("policy, comments or key order changed the state key:\n%s", doc)
		}
	}
	different := []string{base + "method: dump\n", strings.Replace(base, "[x]", "[y]", 1), base + "replication: {initial_copy: subscription}\n"}
	for _, doc := range different {
		if got := key(doc, "1", "2"); got == k {
			t.Errorf("a change of what to migrate kept the state key:\n%s", doc)
		}
	}
	if key(base, "1", "3") == k {
		t.Error("another target server kept the state key")
	}
	earlier := func(doc string) string {
		c, err := Parse([]byte(doc), "m.yaml", Options{LookupEnv: envOf(map[string]string{"PW": "p"})})
		if err != nil {
			t.Fatal(err)
		}
		return c.EarlierStateKey("1", "2")
	}
	withFromTarget := same[len(same)-1]
	if earlier(base) != k || earlier(withFromTarget) == k {
		t.Error("EarlierStateKey is not the key with source.uri_from_target in it")
	}
}
