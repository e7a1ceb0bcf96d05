// Package pg opens pgx connections from the connection strings of a
// migration file, to any database of the server, with pgferry's session
// settings. Errors name the side and never hold a password.
package pg

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgferry/pgferry/internal/dsn"
)

// Endpoint connects to the databases of one server.
type Endpoint struct {
	// Side is "source" or "target", for messages.
	Side string
	uri  string
	// mu guards config, which plainOnly changes once.
	mu     sync.Mutex
	config *pgx.ConnConfig
}

// NewEndpoint parses uri (URI or key=value form) for side.
func NewEndpoint(side, uri string) (*Endpoint, error) {
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("%s connection string %s: %s", side, dsn.Redact(uri), describeParse(err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pgferry"
	}
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

// Connect opens a connection to database db ("" for the bootstrap one).
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
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &ConnectError{Side: e.Side, Target: e.String(), Database: cfg.Database, Err: err}
	}
	e.learn(conn.PgConn())
	return conn, nil
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
	return fmt.Sprintf("connect to %s %s (database %s): %s", e.Side, e.Target, e.Database, Describe(e.Err))
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
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return Describe(ce.Unwrap())
	}
	return err.Error()
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

// SQLSTATE codes pgferry branches on.
const (
	InsufficientPrivilege = "42501"
	UndefinedObject       = "42704"
	InvalidCatalogName    = "3D000" // the database does not exist
	ObjectInUse           = "55006"
)

// HasCode reports whether err carries a server error with SQLSTATE code,
// however deeply wrapped (a failed connection too).
func HasCode(err error, code string) bool {
	var pge *pgconn.PgError
	return errors.As(err, &pge) && pge.Code == code
}
