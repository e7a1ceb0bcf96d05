package dsn

import (
	"net/url"
	"strings"
)

// Param returns the value of a connection parameter given as a URI query
// parameter or a key=value pair ("" when absent or unparseable).
func Param(s, key string) string {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return ""
		}
		return u.Query().Get(key)
	}
	pairs, _ := ParseKeyValue(s)
	for _, p := range pairs {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

// HasPassword reports whether the connection string carries a password.
func HasPassword(s string) bool {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return false
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Get("password") != ""
	}
	pairs, _ := ParseKeyValue(s)
	for _, p := range pairs {
		if p.Key == "password" && p.Value != "" {
			return true
		}
	}
	return false
}

// ForTool rewrites s for a libpq program (pg_dump, pg_restore): database db,
// and the password taken out, to be passed in PGPASSWORD rather than on a
// command line where other users could read it. A client_encoding goes
// too: a schema archive is in its database's encoding, as pghaul reads
// it (and a subscription sets its own).
func ForTool(s, db string) (conninfo, password string) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return s, ""
		}
		if pw, ok := u.User.Password(); ok {
			password = pw
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if pw := q.Get("password"); pw != "" {
			password = pw
		}
		q.Del("password")
		q.Del("dbname")
		q.Del("client_encoding")
		u.RawQuery = q.Encode()
		u.Path, u.RawPath = "/"+db, ""
		return u.String(), password
	}
	pairs, _ := ParseKeyValue(s)
	var parts []string
	for _, p := range pairs {
		switch p.Key {
		case "password":
			password = p.Value
		case "dbname", "client_encoding":
		default:
			parts = append(parts, p.Key+"="+QuoteValue(p.Value))
		}
	}
	return strings.Join(append(parts, "dbname="+QuoteValue(db)), " "), password
}

// WithDatabase returns s naming database db, password kept: the
// connection string a target's subscription dials the source with.
func WithDatabase(s, db string) string {
	conninfo, password := ForTool(s, db)
	return WithPassword(conninfo, password)
}

// WithPassword returns s with password pw (s as it is when pw is empty).
func WithPassword(s, pw string) string {
	if pw == "" {
		return s
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return s
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", pw)
			u.RawQuery = q.Encode()
		} else {
			u.User = url.UserPassword(u.User.Username(), pw)
		}
		return u.String()
	}
	pairs, _ := ParseKeyValue(s)
	var parts []string
	for _, p := range pairs {
		if p.Key != "password" {
			parts = append(parts, p.Key+"="+QuoteValue(p.Value))
		}
	}
	return strings.Join(append(parts, "password="+QuoteValue(pw)), " ")
}

// ConnectionEnv are the libpq environment variables that say which server
// to reach and how to authenticate, those pgx reads too: pg_dump and
// pg_restore get them, so that they reach the server pghaul's own
// sessions reach, the same way (a password in PGPASSWORD or a passfile).
// Other PG* variables (PGCLIENTENCODING, PGOPTIONS, PGDATABASE...) would
// change what the programs do, and are not passed.
var ConnectionEnv = map[string]bool{
	"PGHOST": true, "PGPORT": true, "PGUSER": true, "PGPASSWORD": true, "PGPASSFILE": true,
	"PGCONNECT_TIMEOUT": true, "PGSSLMODE": true, "PGSSLKEY": true, "PGSSLCERT": true,
	"PGSSLCERTMODE": true, "PGSSLSNI": true, "PGSSLROOTCERT": true, "PGSSLNEGOTIATION": true,
	"PGTARGETSESSIONATTRS": true, "PGSERVICE": true, "PGSERVICEFILE": true,
	"PGCHANNELBINDING": true, "PGREQUIREAUTH": true,
	"PGMINPROTOCOLVERSION": true, "PGMAXPROTOCOLVERSION": true,
}
