package apply

import (
	"strings"
	"testing"
)

// TestSubscriptionRefusedNamesTheCA: the message says which CA file the
// target server would need.
func TestSubscriptionRefusedNamesTheCA(t *testing.T) {
	e := &SubscriptionRefusedError{Conninfo: "postgres://u:pw@src.example.com/db?sslmode=verify-full&sslrootcert=/home/me/ca.pem", Message: "certificate verify failed"}
	if msg := e.Error(); !strings.Contains(msg, "its sslrootcert /home/me/ca.pem must be a file on the target server") || strings.Contains(msg, "pw@") {
		t.Errorf("message = %q", msg)
	}
	t.Setenv("PGSSLROOTCERT", "/home/me/root.crt")
	e.Conninfo = "postgres://u@src.example.com/db?sslmode=verify-full"
	if msg := e.Error(); !strings.Contains(msg, "the CA in PGSSLROOTCERT, /home/me/root.crt, serves pghaul only") {
		t.Errorf("message = %q", msg)
	}
}
