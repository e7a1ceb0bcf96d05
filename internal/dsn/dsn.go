// Package dsn understands PostgreSQL connection strings in both of libpq's
// forms, URIs (postgres://user:pass@host:port/db?opt=v) and key=value lists
// (host=h user=u password='p w'), without connecting anywhere. It owns the one
// redaction function every printed connection string goes through. It is pure:
// no pgx, no network.
package dsn

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Redacted is what a secret is replaced with in printed connection strings.
const Redacted = "***"

// secretKeys are the key=value and query parameters whose values are secrets.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// IsURI reports whether s uses the URI form (postgres:// or postgresql://).
func IsURI(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Validate reports whether s is a connection string libpq would parse: a
// postgres:// or postgresql:// URI, or a list of key=value pairs.
func Validate(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("is empty")
	}
	if IsURI(s) {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("is not a valid URI (%s); percent-encode / ? # @ : and spaces in a password (%%2F %%3F %%23 %%40 %%3A %%20)", describeURLError(err))
		}
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			return fmt.Errorf("has an invalid query string: %v", err)
		}
		return nil
	}
	if strings.Contains(s, "://") {
		return fmt.Errorf("has scheme %q; use postgres:// or postgresql://", s[:strings.Index(s, "://")])
	}
	if _, err := ParseKeyValue(s); err != nil {
		return err
	}
	return nil
}

// Normalize rewrites a URI whose host is a percent-encoded Unix-socket
// directory, the form libpq documents
// (postgres://u@%2Fvar%2Frun%2Fpostgresql:5433/db), into the equivalent with
// host and port parameters (postgres://u@/db?host=%2Fvar%2Frun%2Fpostgresql&port=5433),
// which Go's URL parser, and so pgx, accept; libpq reads both alike. Any
// other string is returned as it is.
func Normalize(s string) string {
	if !IsURI(s) {
		return s
	}
	scheme, rest, _ := strings.Cut(s, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	userinfo, hostport := "", auth
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		userinfo, hostport = auth[:at+1], auth[at+1:]
	}
	if !strings.HasPrefix(strings.ToLower(hostport), "%2f") {
		return s
	}
	host, port, _ := strings.Cut(hostport, ":")
	dir, err := url.PathUnescape(host)
	if err != nil {
		return s
	}
	path, query, _ := strings.Cut(tail, "?")
	params := "host=" + url.QueryEscape(dir)
	if port != "" {
		params += "&port=" + port
	}
	if query != "" {
		params += "&" + query
	}
	return scheme + "://" + userinfo + path + "?" + params
}

// describeURLError says what is wrong with a URI without quoting any of
// it: a *url.Error holds the URL, and its inner error the piece that did
// not parse ("invalid port \":Hunter2\" after host"), either of which may
// be part of a password.
func describeURLError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "invalid port"):
		return "what follows the host is not a port"
	case strings.Contains(msg, "invalid URL escape"):
		return "a % is not followed by two hex digits"
	case strings.Contains(msg, "invalid character") || strings.Contains(msg, "invalid control character"):
		return "it holds a character a URI cannot"
	}
	return "it cannot be parsed"
}

// Pair is one key=value setting of a connection string.
type Pair struct {
	Key, Value string
}

// ParseKeyValue parses libpq's key=value form: whitespace-separated pairs,
// values optionally single-quoted, with backslash escaping ' and \.
func ParseKeyValue(s string) ([]Pair, error) {
	var pairs []Pair
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] != '=' || key == "" {
			// The word itself is not quoted: after password=, it is likely
			// the rest of an unquoted password.
			where := "at its start"
			if len(pairs) > 0 {
				where = fmt.Sprintf("after the value of %q", pairs[len(pairs)-1].Key)
			}
			return nil, fmt.Errorf("is neither a postgres:// URI nor key=value pairs: a word without \"=\" %s (quote a value that holds spaces: key='a b')", where)
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		val, n, err := parseValue(s[i:])
		if err != nil {
			return nil, fmt.Errorf("value of %q %s", key, err)
		}
		i += n
		pairs = append(pairs, Pair{Key: key, Value: val})
	}
}

func parseValue(s string) (string, int, error) {
	var b strings.Builder
	if strings.HasPrefix(s, "'") {
		for i := 1; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\' && i+1 < len(s):
				i++
				b.WriteByte(s[i])
			case c == '\'':
				return b.String(), i + 1, nil
			default:
				b.WriteByte(c)
			}
		}
		return "", 0, errors.New("has an unterminated quoted string")
	}
	i := 0
	for ; i < len(s) && !isSpace(s[i]); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), i, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// QuoteValue quotes v for a key=value connection string when it needs it.
func QuoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// Redact returns s with every password replaced by ***, in either form:
// postgres://user:***@host:5432/db, host=h password=***. A string that does
// not parse is shown as a placeholder, since its secret cannot be located.
func Redact(s string) string {
	if strings.Contains(s, "://") {
		return redactURI(s)
	}
	pairs, err := ParseKeyValue(s)
	if err != nil {
		return "<unparseable connection string>"
	}
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		v := QuoteValue(p.Value)
		if secretKeys[p.Key] {
			v = Redacted
		}
		parts[i] = p.Key + "=" + v
	}
	return strings.Join(parts, " ")
}

func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Where a password ends in a URI that does not parse cannot be
		// told (libpq and Go disagree on which @ ends it): show none of it.
		return "<unparseable connection string>"
	}
	out, _ := replaceInURI(u, secretKeys, Redacted)
	return out
}

// replaceInURI puts repl, verbatim, in place of the user info's password
// and of the query parameters named in keys, reporting whether it did.
func replaceInURI(u *url.URL, keys map[string]bool, repl string) (string, bool) {
	found := false
	q := u.Query()
	for k := range q {
		if keys[k] {
			q.Set(k, repl)
			u.RawQuery = encodeQuery(q, repl)
			found = true
		}
	}
	if _, has := u.User.Password(); !has {
		return u.String(), found
	}
	// Built by hand: url.UserPassword would percent-encode repl.
	user := url.User(u.User.Username()).String()
	u.User = nil
	return u.Scheme + "://" + user + ":" + repl + "@" + strings.TrimPrefix(u.String(), u.Scheme+"://"), true
}

// ReplacePassword returns s with its password — in a URI's user info or
// password parameter, or a key=value password — replaced by repl verbatim
// (pghaul init writes ${SOURCE_PASSWORD}), and whether s had one.
func ReplacePassword(s, repl string) (string, bool) {
	passwordKey := map[string]bool{"password": true}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return s, false
		}
		return replaceInURI(u, passwordKey, repl)
	}
	pairs, err := ParseKeyValue(s)
	if err != nil {
		return s, false
	}
	found := false
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		v := QuoteValue(p.Value)
		if passwordKey[p.Key] {
			v, found = repl, true
		}
		parts[i] = p.Key + "=" + v
	}
	return strings.Join(parts, " "), found
}

// encodeQuery is url.Values.Encode without escaping the value keep.
func encodeQuery(q url.Values, keep string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range q[k] {
			ev := url.QueryEscape(v)
			if v == keep {
				ev = v
			}
			parts = append(parts, url.QueryEscape(k)+"="+ev)
		}
	}
	return strings.Join(parts, "&")
}
