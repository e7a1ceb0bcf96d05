package apply

import (
	"context"
	"testing"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestPutBack: a restore script's SET statements on the shared session
// are undone, whatever their kind; settings it left alone stay.
func TestPutBack(t *testing.T) {
	c := pgtest.Start(t, pgtest.Target)
	ctx := context.Background()
	conn := pgtest.Connect(t, c, "postgres")
	const show = "SELECT concat_ws(' ', current_setting('search_path'), current_setting('client_encoding'), current_setting('check_function_bodies'), current_setting('work_mem'), current_setting('lock_timeout'))"
	if _, err := conn.Exec(ctx, "SET work_mem = '7MB'"); err != nil {
		t.Fatal(err)
	}
	want := pgtest.QueryStringConn(t, conn, show)
	before, err := userSettings(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	script := "SET client_encoding = 'LATIN1'; SELECT pg_catalog.set_config('search_path', '', false); SET check_function_bodies = false; SET lock_timeout = 0; BEGIN; SET work_mem = '1MB'; COMMIT"
	if _, err := conn.PgConn().Exec(ctx, script).ReadAll(); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.QueryStringConn(t, conn, show); got == want {
		t.Fatalf("the script changed nothing: %s", got)
	}
	if err := putBack(ctx, conn, before); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.QueryStringConn(t, conn, show); got != want {
		t.Errorf("settings after putBack = %q, want %q", got, want)
	}
}
