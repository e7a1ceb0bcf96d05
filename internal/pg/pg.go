// Package pg opens pgx connections from the connection strings of a
// migration file, to any database of the server, with pghaul's session
// settings. Errors name the side and never hold a password.
package pg

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/dsn"
)

// Endpoint connects to the databases of one server.
type Endpoint struct {
	// Side is "source" or "target", for messages.
	Side string
	uri  string
	// mu guards config, which learn changes once, and idle.
	mu     sync.Mutex
	config *pgx.ConnConfig
	// idle are sessions handed back by Release for a later Connect.
	idle []idleSession
	// set are the parameters reuse set on sessions now in use, beyond
	// their startup ones.
	set map[*pgx.Conn]map[string]string
}

// idleSession is a released session, its parameters (startup and set)
// and when it was released.
type idleSession struct {
	conn   *pgx.Conn
	params map[string]string
	since  time.Time
}

// Idle sessions: a backend costs the server tens of milliseconds of CPU to
// start and end, so a session one step is done with serves the next one
// that asks for the same database (the plan's inspection hands its
// sessions to the first steps of apply). At most maxIdle wait, each at
// most idleFor; CloseIdle ends them.
const maxIdle = 4

var idleFor = 30 * time.Second // a variable for tests

// NewEndpoint parses uri (URI or key=value form) for side.
func NewEndpoint(side, uri string) (*Endpoint, error) {
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("%s connection string %s: %s", side, dsn.Redact(uri), describeParse(err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	// TCP keepalives on every session: a server (or the network to it)
	// that vanished without a word is noticed within about 90 s instead of
	// the system's default of two hours, even by a session that only waits.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 6}}
	cfg.DialFunc = dialer.DialContext
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pghaul"
	}
	// pgx reads and writes text as UTF-8, and a session's client_encoding
	// defaults to its database's encoding: without this, names read from a
	// LATIN1 database arrive as LATIN1 bytes in Go strings. COPY streams
	// (ConnectRaw) set their database's own encoding instead.
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	return &Endpoint{Side: side, config: cfg, uri: uri}, nil
}

// describeParse keeps pgconn's parse error from echoing the string.
func describeParse(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return pe.Unwrap().Error()
	}
	return "cannot be parsed"
}

// Database is the bootstrap database the connection string names.
func (e *Endpoint) Database() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.config.Database
}

// String is the redacted connection string.
func (e *Endpoint) String() string { return dsn.Redact(e.uri) }

// Options change one connection.
type Options struct {
	// ReadOnly runs every statement in a read-only transaction
	// (default_transaction_read_only), so inspection cannot write.
	ReadOnly bool
	// Settings are extra session settings (run-time parameters).
	Settings map[string]string
}

// Connect opens a connection to database db ("" for the bootstrap one), or
// takes a released session that fits (Release).
func (e *Endpoint) Connect(ctx context.Context, db string, opt Options) (*pgx.Conn, error) {
	e.mu.Lock()
	cfg := e.config.Copy()
	e.mu.Unlock()
	if db != "" {
		cfg.Database = db
	}
	if opt.ReadOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	for k, v := range opt.Settings {
		cfg.RuntimeParams[k] = v
	}
	if conn := e.reuse(ctx, cfg); conn != nil {
		return conn, nil
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil && db == "" && HasCode(err, NotAcceptingConnections) {
		conn, err = e.connectElsewhere(ctx, cfg, err)
	}
	if err != nil {
		return nil, &ConnectError{Side: e.Side, Target: e.String(), Database: cfg.Database, Err: err}
	}
	e.learn(conn.PgConn())
	return conn, nil
}

// connectElsewhere opens a bootstrap session in another database when the
// bootstrap database refuses connections: a cut-over froze it (the source
// stays frozen after the switch). What bootstrap sessions read (roles,
// databases, slots) is the cluster's in any database.
func (e *Endpoint) connectElsewhere(ctx context.Context, cfg *pgx.ConnConfig, first error) (*pgx.Conn, error) {
	for _, db := range []string{"template1", "postgres"} {
		if db == cfg.Database {
			continue
		}
		other := cfg.Copy()
		other.Database = db
		if conn, err := pgx.ConnectConfig(ctx, other); err == nil {
			return conn, nil
		}
	}
	return nil, first
}

// Release hands back a session its user is done with, for a later Connect
// to the same database; it is closed instead when too many wait already or
// it is not idle. Only a session left as it was opened may be released: no
// open transaction, no SET, no temporary objects, no advisory locks.
func (e *Endpoint) Release(ctx context.Context, conn *pgx.Conn) {
	if conn.IsClosed() || conn.PgConn().TxStatus() != 'I' {
		conn.Close(context.WithoutCancel(ctx))
		return
	}
	params := conn.Config().RuntimeParams
	e.mu.Lock()
	for k, v := range e.set[conn] {
		params[k] = v
	}
	delete(e.set, conn)
	stale := e.expire(time.Now())
	full := len(e.idle) >= maxIdle
	if !full {
		e.idle = append(e.idle, idleSession{conn: conn, params: params, since: time.Now()})
	}
	e.mu.Unlock()
	if full {
		stale = append(stale, conn)
	} else {
		// Ended once idleFor has passed, even if no Connect comes.
		time.AfterFunc(idleFor+time.Second, func() {
			e.mu.Lock()
			stale := e.expire(time.Now())
			e.mu.Unlock()
			closeAll(context.Background(), stale)
		})
	}
	closeAll(ctx, stale)
}

// CloseIdle ends the released sessions.
func (e *Endpoint) CloseIdle(ctx context.Context) {
	e.mu.Lock()
	var all []*pgx.Conn
	for _, s := range e.idle {
		all = append(all, s.conn)
	}
	e.idle = nil
	e.mu.Unlock()
	closeAll(ctx, all)
}

// reuse takes a released session to cfg's database whose startup
// parameters are all in cfg with the same values, and sets the parameters
// cfg adds: the session is then as a new one with cfg would be. nil when
// none fits.
func (e *Endpoint) reuse(ctx context.Context, cfg *pgx.ConnConfig) *pgx.Conn {
	e.mu.Lock()
	stale := e.expire(time.Now())
	var found idleSession
	for i, s := range e.idle {
		if fits(s, cfg) {
			found = s
			e.idle = append(e.idle[:i], e.idle[i+1:]...)
			break
		}
	}
	e.mu.Unlock()
	closeAll(ctx, stale)
	if found.conn == nil {
		return nil
	}
	extra := map[string]string{}
	for k, v := range cfg.RuntimeParams {
		if _, ok := found.params[k]; !ok {
			extra[k] = v
		}
	}
	if len(extra) == 0 {
		return found.conn
	}
	if err := SetConfig(ctx, found.conn, extra); err != nil {
		found.conn.Close(context.WithoutCancel(ctx))
		return nil // a new session reports what is wrong
	}
	e.mu.Lock()
	if e.set == nil {
		e.set = map[*pgx.Conn]map[string]string{}
	}
	e.set[found.conn] = extra
	e.mu.Unlock()
	return found.conn
}

// SetConfig sets each setting for the rest of the session, in one
// statement (none when settings is empty).
func SetConfig(ctx context.Context, conn *pgx.Conn, settings map[string]string) error {
	var sets []string
	var args []any
	for k, v := range settings {
		sets = append(sets, fmt.Sprintf("pg_catalog.set_config($%d, $%d, false)", len(args)+1, len(args)+2))
		args = append(args, k, v)
	}
	if len(sets) == 0 {
		return nil
	}
	_, err := conn.Exec(ctx, "SELECT "+strings.Join(sets, ", "), args...)
	return err
}

// fits reports whether an idle session can serve a connection with want:
// the same database and role, and each of its parameters the same in want.
func fits(s idleSession, want *pgx.ConnConfig) bool {
	have := s.conn.Config()
	if have.Database != want.Database || have.User != want.User {
		return false
	}
	for k, v := range s.params {
		if w, ok := want.RuntimeParams[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// expire removes the sessions released longer than idleFor ago (or lost)
// and returns them to close; e.mu is held.
func (e *Endpoint) expire(now time.Time) []*pgx.Conn {
	var stale []*pgx.Conn
	kept := e.idle[:0]
	for _, s := range e.idle {
		if now.Sub(s.since) > idleFor || s.conn.IsClosed() {
			stale = append(stale, s.conn)
			continue
		}
		kept = append(kept, s)
	}
	e.idle = kept
	// The set parameters of a session its user closed instead of releasing
	// stay until the endpoint goes: a session in use is not to be looked
	// at from here (IsClosed reads what its user writes: a data race).
	return stale
}

func closeAll(ctx context.Context, conns []*pgx.Conn) {
	for _, c := range conns {
		c.Close(context.WithoutCancel(ctx))
	}
}

// learn remembers a server that refused TLS under sslmode=prefer (or
// allow): pgx then opens a second TCP connection without TLS, and the
// server forks a backend for each, so later connections of the run go
// straight to the plain attempt, as the fallback would anyway. Required
// TLS modes have no plain fallback and never change.
func (e *Endpoint) learn(conn *pgconn.PgConn) {
	if _, isTLS := conn.Conn().(*tls.Conn); isTLS {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &e.config.Config
	if c.TLSConfig == nil {
		return
	}
	var plain []*pgconn.FallbackConfig
	for _, f := range c.Fallbacks {
		if f.Host != c.Host || f.Port != c.Port {
			return // several hosts: leave pgx's order alone
		}
		if f.TLSConfig == nil {
			plain = append(plain, f)
		}
	}
	if len(plain) == 0 {
		return
	}
	cfg := e.config.Copy()
	cfg.TLSConfig, cfg.Fallbacks = nil, nil
	e.config = cfg
}

// ConnectError is a failed connection to one side.
type ConnectError struct {
	Side, Target, Database string
	Err                    error
}

func (e *ConnectError) Error() string {
	msg := fmt.Sprintf("connect to %s %s (database %s): %s", e.Side, e.Target, e.Database, Describe(e.Err))
	var pge *pgconn.PgError
	if errors.As(e.Err, &pge) && pge.Code == "08P01" && strings.Contains(pge.Message, "unsupported startup parameter") {
		// PgBouncer's answer to a session setting it does not pass on.
		msg += fmt.Sprintf("; this address leads to a connection pooler (PgBouncer), which cannot carry pghaul's sessions: point %s.uri at the PostgreSQL server itself", e.Side)
	}
	return msg
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Describe renders a pgx error for people: the server's message with its
// SQLSTATE, detail and hint, or the innermost network error.
func Describe(err error) string {
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		s := fmt.Sprintf("%s (SQLSTATE %s)", pge.Message, pge.Code)
		if pge.Detail != "" {
			s += "; " + pge.Detail
		}
		if pge.Hint != "" {
			s += "; hint: " + pge.Hint
		}
		return s
	}
	if msg := describeDial(err); msg != "" {
		return msg
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return Describe(ce.Unwrap())
	}
	return err.Error()
}

// describeDial says what a failed dial means, once (pgx tries each address
// and TLS mode, and reports every attempt), with what to check; "" when
// err is no dial failure.
func describeDial(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Sprintf("host %s not found (%s): is the host name right?", dns.Name, dns.Err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return ""
	}
	addr := "the server"
	if op.Addr != nil {
		addr = op.Addr.String()
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s (connection refused): is the server running, and is the port right?", addr)
	case op.Timeout():
		return fmt.Sprintf("no answer from %s (timed out): is the address right, and does a firewall let pghaul through?", addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("%s cannot be reached (%v): is the address right?", addr, op.Err)
	}
	return ""
}

// ConnectRaw opens a low-level connection, for COPY streams that never
// decode rows; it accepts any client_encoding, unlike pgx.Conn.
func (e *Endpoint) ConnectRaw(ctx context.Context, db string, opt Options) (*pgconn.PgConn, error) {
	e.mu.Lock()
	cfg := e.config.Config.Copy()
	e.mu.Unlock()
	if db != "" {
		cfg.Database = db
	}
	for k, v := range opt.Settings {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &ConnectError{Side: e.Side, Target: e.String(), Database: cfg.Database, Err: err}
	}
	e.learn(conn)
	return conn, nil
}

// URI is the connection string as configured (with its secret: never print it).
func (e *Endpoint) URI() string { return e.uri }

// LocalAddress reports whether every host conninfo names (as pgx resolves
// it, environment included) is this machine: a Unix socket, localhost or
// a loopback address. False when it cannot be parsed.
func LocalAddress(conninfo string) bool {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return false
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		ip := net.ParseIP(strings.Trim(h, "[]"))
		if !strings.HasPrefix(h, "/") && !strings.HasPrefix(h, "@") && !strings.EqualFold(h, "localhost") && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}

// Password is the password a session opened with conninfo would send: the
// one written in it, else PGPASSWORD's, else the passfile's entry for its
// host, port, database and user (empty when there is none).
func Password(conninfo string) string {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return ""
	}
	return cfg.Password
}

// SQLSTATE codes pghaul branches on.
const (
	InsufficientPrivilege = "42501"
	UndefinedObject       = "42704"
	InvalidCatalogName    = "3D000" // the database does not exist
	DuplicateDatabase     = "42P04"
	// UniqueViolation: also what two CREATE DATABASE of one name at once
	// end in (pg_database_datname_index), not DuplicateDatabase.
	UniqueViolation = "23505"
	ObjectInUse     = "55006"
	// NotAcceptingConnections: ALLOW_CONNECTIONS false (a cut-over's
	// write freeze), among other prerequisite states.
	NotAcceptingConnections = "55000"
)

// HasCode reports whether err carries a server error with SQLSTATE code,
// however deeply wrapped (a failed connection too).
func HasCode(err error, code string) bool {
	var pge *pgconn.PgError
	return errors.As(err, &pge) && pge.Code == code
}

// ServerMajor is the major version of the server conn is connected to,
// from the server_version it reported at startup (0 when unknown).
func ServerMajor(conn *pgx.Conn) int {
	var n int
	fmt.Sscan(conn.PgConn().ParameterStatus("server_version"), &n)
	return n
}

// RelationBytesSQL is the size of the data of the pg_class row c: its main
// fork and its TOAST table's, what a COPY of it reads. pg_table_size adds
// the free space and visibility maps and the TOAST index, and costs about
// twice as much, each relation opened twice: sizing 10,000 small tables on
// a new session took 0.67 s against 0.31 s.
const RelationBytesSQL = `(pg_catalog.pg_relation_size(c.oid) + COALESCE(pg_catalog.pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0))`
