package apply

import (
	"slices"
	"strings"
	"testing"
)

// TestToolEnv: pg_dump and pg_restore reach the server as pghaul's
// sessions do (connection variables pass) and behave as with no
// environment (the others do not); the URI's password wins.
func TestToolEnv(t *testing.T) {
	environ := []string{"HOME=/home/u", "PGPASSWORD=from-env", "PGPASSFILE=/p", "PGSSLROOTCERT=/ca", "PGHOST=h",
		"PGCLIENTENCODING=LATIN1", "PGOPTIONS=-c default_transaction_read_only=on", "PGDATABASE=other", "PGAPPNAME=x", "PGHAUL_PAUSE_AT=y"}
	want := []string{"PGAPPNAME=pghaul", "HOME=/home/u", "PGPASSWORD=from-env", "PGPASSFILE=/p", "PGSSLROOTCERT=/ca", "PGHOST=h"}
	if got := toolEnv(environ, ""); !slices.Equal(got, want) {
		t.Errorf("toolEnv without a URI password = %q, want %q", got, want)
	}
	want = []string{"PGAPPNAME=pghaul", "HOME=/home/u", "PGPASSFILE=/p", "PGSSLROOTCERT=/ca", "PGHOST=h", "PGPASSWORD=from-uri"}
	if got := toolEnv(environ, "from-uri"); !slices.Equal(got, want) {
		t.Errorf("toolEnv with a URI password = %q, want %q", got, want)
	}
}

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
