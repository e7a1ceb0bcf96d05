package apply

import (
	"context"
	"testing"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestPutBack: the settings a restore script (as pg_restore writes it,
// with pghaul's prelude) changes on the shared session are put back, SET
// or set_config, in a transaction or not: afterwards every setting of the
// session is as before.
func TestPutBack(t *testing.T) {
	c := pgtest.Start(t, pgtest.Target)
	ctx := context.Background()
	conn := pgtest.Connect(t, c, "postgres")
	const all = "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings"
	if _, err := conn.Exec(ctx, "SET work_mem = '7MB'"); err != nil {
		t.Fatal(err)
	}
	want := pgtest.QueryStringConn(t, conn, all)
	script := `--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'LATIN1';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;
SET default_tablespace = '';
SET default_table_access_method = heap;
BEGIN;
SET work_mem = '1MB';
COMMIT;
`
	before, err := settingsOf(ctx, conn, scriptSettings(script))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.PgConn().Exec(ctx, scriptPrelude("LATIN1")+";\n"+script).ReadAll(); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.QueryStringConn(t, conn, all); got == want {
		t.Fatalf("the script changed nothing: %s", got)
	}
	if err := putBack(ctx, conn, before); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.QueryStringConn(t, conn, all); got != want {
		t.Errorf("settings after putBack:\n%s\nwant\n%s", got, want)
	}
}
