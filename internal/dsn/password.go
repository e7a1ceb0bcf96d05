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
