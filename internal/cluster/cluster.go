// Package cluster starts and stops throwaway local PostgreSQL clusters with
// initdb and pg_ctl, on a free loopback TCP port. Tests use it through
// internal/pgtest and `pghaul demo` directly, so it must not import testing.
// Run as root, it runs initdb, pg_ctl and postgres as the postgres OS user,
// in a directory that user owns.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pghaul/pghaul/internal/pgbin"
)

// InstallHint says how to get the server programs on Debian, the machines
// this project runs on.
const InstallHint = "install them with `apt-get install -y postgresql postgresql-contrib` or point PGHAUL_PG_BIN at a directory holding initdb and pg_ctl"

// Options describe the cluster to start.
type Options struct {
	// BinDir holds initdb, pg_ctl and postgres; empty means the newest
	// found by pgbin's search.
	BinDir string
	// LibPath is LD_LIBRARY_PATH for those programs (the npm
	// @embedded-postgres builds need their own lib directory).
	LibPath string
	// Password, when set, is the superuser's password and TCP connections
	// must use scram-sha-256; else every connection is trusted.
	Password string
	// Settings are extra postgresql.conf lines; they override the defaults.
	Settings map[string]string
	// BaseDir is where the cluster's directory is made; empty means
	// os.TempDir(). As root it must be traversable by the postgres user.
	BaseDir string
}

// Cluster is one running local server.
type Cluster struct {
	// Dir holds data/, the socket directory and server.log.
	Dir      string
	Port     int
	User     string
	Password string
	// Major and Version are the server's version ("15", "15.14").
	Major   int
	Version string
	binDir  string
	env     []string
	cred    *syscall.Credential
}

// Defaults are the postgresql.conf settings of every cluster: logical
// replication with room for several migrations, and durability off, since
// these clusters are thrown away.
var Defaults = map[string]string{
	"listen_addresses":                "'127.0.0.1'",
	"wal_level":                       "logical",
	"max_replication_slots":           "20",
	"max_wal_senders":                 "20",
	"max_worker_processes":            "24",
	"max_logical_replication_workers": "12",
	"max_connections":                 "100",
	"shared_buffers":                  "64MB",
	"fsync":                           "off",
	"synchronous_commit":              "off",
	"full_page_writes":                "off",
	"log_min_messages":                "warning",
	"wal_receiver_status_interval":    "1s",
}

// Start creates and starts a cluster. On error nothing is left behind.
func Start(ctx context.Context, opt Options) (_ *Cluster, err error) {
	c := &Cluster{User: "postgres", Password: opt.Password, env: cleanEnv(opt.LibPath)}
	if c.binDir, err = findBinDir(ctx, opt.BinDir, c.env); err != nil {
		return nil, err
	}
	if c.cred, err = credential(); err != nil {
		return nil, err
	}
	if c.Dir, err = c.makeDir(opt.BaseDir); err != nil {
		return nil, err
	}
	c.env = withHome(c.env, c.Dir)
	defer func() {
		if err != nil {
			os.RemoveAll(c.Dir)
		}
	}()
	if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	if err := c.writeConf(opt.Settings); err != nil {
		return nil, err
	}
	return c, c.startOnFreePort(ctx)
}

// StartStandby makes a physical standby of primary with pg_basebackup
// (streaming from it, in recovery) and starts it on a free port.
func StartStandby(ctx context.Context, primary *Cluster) (_ *Cluster, err error) {
	c := &Cluster{User: primary.User, Password: primary.Password, env: primary.env, binDir: primary.binDir, cred: primary.cred,
		Major: primary.Major, Version: primary.Version}
	if c.Dir, err = c.makeDir(""); err != nil {
		return nil, err
	}
	c.env = withHome(c.env, c.Dir)
	defer func() {
		if err != nil {
			os.RemoveAll(c.Dir)
		}
	}()
	if out, err := c.run(ctx, "pg_basebackup", "-D", c.DataDir(), "-R", "-X", "stream", "-d", primary.URI("postgres")); err != nil {
		return nil, fmt.Errorf("pg_basebackup: %w: %s", err, lastLines(out, 5))
	}
	if err := c.writeConf(nil); err != nil { // its own socket directory
		return nil, err
	}
	return c, c.startOnFreePort(ctx)
}

// cleanEnv is this process's environment without PG* variables (a stray
// PGPORT or PGDATA must not steer the test servers), plus LD_LIBRARY_PATH.
func cleanEnv(libPath string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !(libPath != "" && strings.HasPrefix(kv, "LD_LIBRARY_PATH=")) {
			env = append(env, kv)
		}
	}
	if libPath != "" {
		env = append(env, "LD_LIBRARY_PATH="+libPath)
	}
	return env
}

// withHome points HOME at the cluster's own directory: the server (and
// libpq inside it, for a subscription) must not read the ~/.postgresql of
// whoever runs the tests, which as root it cannot even open.
func withHome(env []string, dir string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "HOME=") })
	return append(out, "HOME="+dir)
}

func findBinDir(ctx context.Context, dir string, env []string) (string, error) {
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			return "", fmt.Errorf("no initdb in %s: %s", dir, InstallHint)
		}
		return dir, nil
	}
	tools := pgbin.Find(ctx, "initdb", pgbin.SearchDirs(ctx), env)
	if len(tools) == 0 {
		return "", fmt.Errorf("no PostgreSQL server programs (initdb) found: %s", InstallHint)
	}
	// Resolve links (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin)
	// so the build's other programs (pg_dump, psql) are found beside it.
	real, err := filepath.EvalSymlinks(tools[0].Path)
	if err != nil {
		return "", err
	}
	return filepath.Dir(real), nil
}

// Credential returns the postgres OS user's ids when running as root
// (initdb and postgres refuse to run as root, and so does PgBouncer),
// else nil.
func Credential() (*syscall.Credential, error) { return credential() }

func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	uid, gid, err := lookupPostgres()
	if err != nil {
		return nil, fmt.Errorf("running as root, the server must run as the postgres OS user: %w", err)
	}
	return &syscall.Credential{Uid: uid, Gid: gid}, nil
}

func (c *Cluster) makeDir(base string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "pghaul-pg-")
	if err != nil {
		return "", fmt.Errorf("cluster directory: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("cluster directory: %w", err)
		}
	}
	return dir, nil
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// SocketDir is where the server's Unix socket lives.
func (c *Cluster) SocketDir() string { return c.Dir }

// LogFile is the server's log.
func (c *Cluster) LogFile() string { return filepath.Join(c.Dir, "server.log") }

// BinDir is the directory of the server programs in use.
func (c *Cluster) BinDir() string { return c.binDir }

// Env is the environment the server programs run with (no PG* variables,
// LD_LIBRARY_PATH when set); use it for client programs of the same build.
func (c *Cluster) Env() []string { return slices.Clone(c.env) }

func (c *Cluster) initdb(ctx context.Context) error {
	args := []string{"-D", c.DataDir(), "-U", c.User, "-E", "UTF8", "--locale=C", "--no-sync"}
	if c.Password == "" {
		args = append(args, "--auth=trust")
	} else {
		pw := filepath.Join(c.Dir, "pwfile")
		if err := c.writeFile(pw, c.Password+"\n"); err != nil {
			return err
		}
		defer os.Remove(pw)
		args = append(args, "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pw)
	}
	if out, err := c.run(ctx, "initdb", args...); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(out, 5))
	}
	v, err := pgbin.Probe(ctx, filepath.Join(c.binDir, "postgres"), c.env)
	if err != nil {
		return err
	}
	c.Major, c.Version = v.Major, v.Version
	return nil
}

func (c *Cluster) writeConf(extra map[string]string) error {
	settings := maps.Clone(Defaults)
	settings["unix_socket_directories"] = "'" + c.SocketDir() + "'"
	maps.Copy(settings, extra)
	var b strings.Builder
	b.WriteString("\n# pghaul test cluster\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgresql.conf: %w", err)
	}
	defer f.Close()
	_, err = f.WriteString(b.String())
	return err
}

// writeFile writes a file the server's OS user owns and can read.
func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
	}
	return nil
}

// startOnFreePort starts the server on a free port, retrying with another
// port when a concurrent process took it between the probe and the bind.
func (c *Cluster) startOnFreePort(ctx context.Context) error {
	var err error
	for range 5 {
		if c.Port, err = freePort(); err != nil {
			return err
		}
		if err = c.Start(ctx); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "already in use") {
			return err
		}
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the stopped server on its port.
func (c *Cluster) Start(ctx context.Context) error {
	os.Remove(c.LogFile())
	out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.DataDir(), "-l", c.LogFile(), "-o", "-p "+strconv.Itoa(c.Port))
	if err != nil {
		log, _ := os.ReadFile(c.LogFile())
		return fmt.Errorf("pg_ctl start: %w: %s %s", err, lastLines(out, 3), lastLines(log, 5))
	}
	return nil
}

// Restart restarts the server, for settings that need it (wal_level).
func (c *Cluster) Restart(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.DataDir()); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, lastLines(out, 3))
	}
	return c.Start(ctx)
}

// Set appends settings to postgresql.conf; Restart or Reload applies them.
func (c *Cluster) Set(settings map[string]string) error {
	return c.writeConf(settings)
}

// Reload makes the server re-read its configuration files.
func (c *Cluster) Reload(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "reload", "-D", c.DataDir()); err != nil {
		return fmt.Errorf("pg_ctl reload: %w: %s", err, lastLines(out, 3))
	}
	return nil
}

// Stop stops the server and removes its directory. It is safe to call twice.
func (c *Cluster) Stop(ctx context.Context) error {
	if _, err := os.Stat(c.DataDir()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := c.Halt(ctx)
	if rmErr := os.RemoveAll(c.Dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// Halt stops the server and keeps its directory, for the caller to remove
// later.
func (c *Cluster) Halt(ctx context.Context) error {
	_, err := c.run(ctx, "pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", c.DataDir())
	if err != nil {
		_, err = c.run(ctx, "pg_ctl", "stop", "-w", "-m", "immediate", "-D", c.DataDir())
	}
	return err
}

// URI is a connection URI for database db as the superuser, over TCP.
func (c *Cluster) URI(db string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + db}
	u.User = url.User(c.User)
	if c.Password != "" {
		u.User = url.UserPassword(c.User, c.Password)
	}
	q := url.Values{"sslmode": {"disable"}}
	u.RawQuery = q.Encode()
	return u.String()
}

// URIAs is a connection URI for database db as role user with password
// (empty for trust).
func (c *Cluster) URIAs(user, password, db string) string {
	u, _ := url.Parse(c.URI(db))
	u.User = url.User(user)
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Program returns the path of a program of this cluster's build (psql,
// pg_dump, pgbench when installed beside it).
func (c *Cluster) Program(name string) string { return filepath.Join(c.binDir, name) }

func (c *Cluster) run(ctx context.Context, program string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, program), args...)
	cmd.Env = c.env
	cmd.Dir = c.Dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves the server holding the pipes; WaitDelay stops
	// Wait from blocking on them once pg_ctl itself has exited.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	return out.Bytes(), err
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// WriteFile writes name (relative to the data directory unless absolute)
// with mode, owned by the server's OS user, for files the server reads
// (certificates, keys, pg_hba.conf).
func (c *Cluster) WriteFile(name, content string, mode os.FileMode) error {
	if !filepath.IsAbs(name) {
		name = filepath.Join(c.DataDir(), name)
	}
	if err := c.writeFile(name, content); err != nil {
		return err
	}
	return os.Chmod(name, mode)
}
