package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/internal/cluster"
	"github.com/pghaul/pghaul/internal/pgtest"
)

// aivenExtrasSQL is a stand-in for Aiven's aiven_extras with the
// signatures pghaul calls: SECURITY DEFINER functions that let a role
// without the privileges create publications and subscriptions.
const aivenExtrasSQL = `
GRANT USAGE ON SCHEMA aiven_extras TO PUBLIC;
CREATE FUNCTION aiven_extras.pg_create_publication_for_all_tables(arg_publication_name text, arg_publish text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  EXECUTE format('CREATE PUBLICATION %I FOR ALL TABLES WITH (publish = %L, publish_via_partition_root = true)', arg_publication_name, arg_publish);
END $$;
CREATE FUNCTION aiven_extras.pg_create_publication(arg_publication_name text, arg_publish text, VARIADIC arg_tables text[] DEFAULT ARRAY[]::text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  EXECUTE format('CREATE PUBLICATION %I FOR TABLE %s WITH (publish = %L, publish_via_partition_root = true)', arg_publication_name, array_to_string(arg_tables, ', '), arg_publish);
END $$;
CREATE FUNCTION aiven_extras.pg_create_subscription(arg_subscription_name text, arg_connection_string text, arg_publication_name text,
  arg_slot_name text, arg_slot_create boolean DEFAULT false, arg_copy_data boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  EXECUTE format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (slot_name = %L, create_slot = false, copy_data = %s)',
    arg_subscription_name, arg_connection_string, arg_publication_name, arg_slot_name, CASE WHEN arg_copy_data THEN 'true' ELSE 'false' END);
END $$;
CREATE FUNCTION aiven_extras.pg_drop_subscription(arg_subscription_name text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', arg_subscription_name);
  EXECUTE format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', arg_subscription_name);
  EXECUTE format('DROP SUBSCRIPTION %I', arg_subscription_name);
END $$;
CREATE FUNCTION aiven_extras.pg_list_all_subscriptions() RETURNS SETOF pg_catalog.pg_subscription
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$ SELECT * FROM pg_catalog.pg_subscription $$;
`

// installAivenExtras puts the stand-in into the server's extension
// directory as a trusted extension (so a non-superuser can create it, as
// on Aiven), removed when the test ends.
func installAivenExtras(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	out, err := exec.Command(c.Program("pg_config"), "--sharedir").Output()
	if err != nil {
		t.Fatalf("pg_config --sharedir: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "extension")
	files := map[string]string{
		"aiven_extras.control":  "default_version = '1.0'\nschema = aiven_extras\ntrusted = true\nrelocatable = false\n",
		"aiven_extras--1.0.sql": aivenExtrasSQL,
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			continue // installed by a test running alongside
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatalf("install the aiven_extras stand-in into %s (needs write access there): %v", dir, err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
}

// TestAivenExtras migrates with a source role that has REPLICATION but is
// no superuser and owns no table (a member of the database's owner and of
// pg_signal_backend, for the write freeze), and a target role without superuser: the
// publication and the subscription come from aiven_extras, in both
// initial_copy modes; the subscription mode ends only once every table is
// synced (state r).
func TestAivenExtras(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"snapshot", "subscription"} {
		t.Run(mode, func(t *testing.T) {
			src, dst := pgtest.Pair(t)
			installAivenExtras(t, src)
			// The cut-over's write freeze needs the database's owner (mig is
			// a member) and pg_signal_backend, as on a managed service.
			pgtest.Exec(t, src, "postgres", "CREATE ROLE mig LOGIN REPLICATION", "CREATE ROLE shop_owner", "CREATE DATABASE shop OWNER shop_owner",
				"GRANT shop_owner, pg_signal_backend TO mig")
			pgtest.Exec(t, dst, "postgres", "CREATE ROLE mig LOGIN CREATEDB", "CREATE ROLE shop_owner", "GRANT shop_owner TO mig")
			pgtest.Exec(t, src, "shop", append(liveSource,
				"CREATE EXTENSION aiven_extras",
				"GRANT SELECT ON ALL TABLES IN SCHEMA public TO mig",
				"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO mig")...)
			cfg := writeConfig(t, src.URIAs("mig", "", "postgres"), dst.URIAs("mig", "", "postgres"),
				"method: replication\ndatabases: {include: [shop]}\nroles: {exclude: [mig]}\nreplication: {initial_copy: "+mode+", max_lag_bytes: 0, stop: true}\n")
			env := []string{"PGHAUL_LAG_POLL=200ms"}
			r := runBin(t, env, "apply", "-c", cfg)
			if r.code != 0 {
				t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			for _, want := range []string{"create-publication", "create-subscription"} {
				if !strings.Contains(r.stderr, want[7:]) {
					t.Errorf("no %s step in the log", want)
				}
			}
			if !strings.Contains(r.stderr, "created through aiven_extras") {
				t.Errorf("apply did not go through aiven_extras:\n%s", r.stderr)
			}
			if mode == "subscription" && !strings.Contains(r.stderr, "tables synced") {
				t.Errorf("subscription mode did not wait for every table to be synced:\n%s", r.stderr)
			}
			assertFrozen(t, src, "shop")
			if c := runBin(t, nil, "cleanup", "-c", cfg, "--unfreeze"); c.code != 0 || !strings.Contains(c.stdout, "lifted the write freeze") {
				t.Fatalf("cleanup --unfreeze as a non-superuser: exit %d\n%s\n%s", c.code, c.stdout, c.stderr)
			}
			assertSameRows(t, src, dst, "shop")
			// verify knows the tables either copy moved: before, it compared
			// none after the subscription's copy, and said all was equal.
			n := len(tableDigests(t, src, "shop"))
			equal := fmt.Sprintf("%d of %d tables equal", n, n)
			if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || !strings.Contains(v.stdout, equal) {
				t.Errorf("verify --checksums: exit %d, want %q\n%s\n%s", v.code, equal, v.stdout, v.stderr)
			}
			if mode == "subscription" {
				// A state written before the subscription step listed its
				// tables: verify takes a fresh plan's list for it.
				unlistTables(t, cfg+".state/state.json", "create_subscription")
				if v := runBin(t, nil, "verify", "-c", cfg); v.code != 0 || !strings.Contains(v.stdout, equal) {
					t.Errorf("verify with an older state: exit %d, want %q\n%s\n%s", v.code, equal, v.stdout, v.stderr)
				}
			}
		})
	}
}

// unlistTables removes the table list of the steps of kind in a state
// file, as pghaul wrote create-subscription steps before it listed them.
func unlistTables(t *testing.T, path, kind string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, s := range st["plan"].(map[string]any)["steps"].([]any) {
		step := s.(map[string]any)
		if step["kind"] == kind {
			if params, ok := step["params"].(map[string]any); ok && params["tables"] != nil {
				delete(params, "tables")
				removed++
			}
		}
	}
	if removed == 0 {
		t.Fatalf("no %s step of the state lists tables to remove", kind)
	}
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
