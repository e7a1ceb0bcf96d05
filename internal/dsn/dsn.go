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
			return fmt.Errorf("is not a valid URI: %s", describeURLError(err))
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

// describeURLError drops the URL itself from a *url.Error: it may hold a password.
func describeURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
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
			return nil, fmt.Errorf("is neither a postgres:// URI nor key=value pairs (missing \"=\" after %q)", key)
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
		return redactBroken(s)
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
// (pgferry init writes ${SOURCE_PASSWORD}), and whether s had one.
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

// redactBroken masks the user info's password of a URI that does not
// parse, so the rest of it can still be shown in an error, and drops the
// query string, which may hold one too.
func redactBroken(s string) string {
	start := strings.Index(s, "://") + 3
	if q := strings.IndexAny(s, "?#"); q >= 0 {
		s = s[:q]
	}
	auth := s[start:]
	if end := strings.IndexByte(auth, '/'); end >= 0 {
		auth = auth[:end]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return s
	}
	user, _, hasPassword := strings.Cut(auth[:at], ":")
	if !hasPassword {
		return s
	}
	return s[:start] + user + ":" + Redacted + s[start+at:]
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
