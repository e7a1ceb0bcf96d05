package dsn

import (
	"net/url"
	"strings"
)

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
// too: a schema archive is in its database's encoding, as pgferry reads
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
	if password == "" {
		return conninfo
	}
	if strings.Contains(conninfo, "://") {
		u, err := url.Parse(conninfo)
		if err != nil {
			return s
		}
		u.User = url.UserPassword(u.User.Username(), password)
		return u.String()
	}
	return conninfo + " password=" + QuoteValue(password)
}
