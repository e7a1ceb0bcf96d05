package pgdump

import (
	"slices"
	"testing"
)

// TestToolEnv: pg_dump and pg_restore reach the server as pghaul's
// sessions do (connection variables pass) and behave as with no
// environment (the others do not); the URI's password wins.
func TestToolEnv(t *testing.T) {
	environ := []string{"HOME=/home/u", "PGPASSWORD=from-env", "PGPASSFILE=/p", "PGSSLROOTCERT=/ca", "PGHOST=h",
		"PGCLIENTENCODING=LATIN1", "PGOPTIONS=-c default_transaction_read_only=on", "PGDATABASE=other", "PGAPPNAME=x", "PGHAUL_PAUSE_AT=y"}
	want := []string{"PGAPPNAME=pghaul", "HOME=/home/u", "PGPASSWORD=from-env", "PGPASSFILE=/p", "PGSSLROOTCERT=/ca", "PGHOST=h"}
	if got := Env(environ, ""); !slices.Equal(got, want) {
		t.Errorf("Env without a URI password = %q, want %q", got, want)
	}
	want = []string{"PGAPPNAME=pghaul", "HOME=/home/u", "PGPASSFILE=/p", "PGSSLROOTCERT=/ca", "PGHOST=h", "PGPASSWORD=from-uri"}
	if got := Env(environ, "from-uri"); !slices.Equal(got, want) {
		t.Errorf("Env with a URI password = %q, want %q", got, want)
	}
}
