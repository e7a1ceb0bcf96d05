package plan

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/golden"
	"github.com/pghaul/pghaul/internal/provider"
	"github.com/pghaul/pghaul/internal/table"
)

const header = `version: 1
source: {uri: "postgres://migrator:s3cret-src@source.example.com:5432/postgres"}
target: {uri: "host=target.example.com user=admin password='s3cret dst' dbname=postgres"}
`

func mustConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(header+extra), "migration.yaml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadSnapshot(t *testing.T, name string) Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "snapshots", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

var testEnv = Env{
	PGDump:    []Tool{{Path: "/usr/lib/postgresql/15/bin/pg_dump", Major: 15, Version: "15.14"}},
	PGRestore: []Tool{{Path: "/usr/lib/postgresql/15/bin/pg_restore", Major: 15, Version: "15.14"}},
}

// scenarios are the rendered plans kept as golden files.
var scenarios = []struct {
	name, config string
}{
	{"blockers", ""},
	{"warnings", "databases: {exclude: [crm, legacy]}\ntables: {skip: [public.events, public.geo]}\nreplication: {max_lag_bytes: 0, stop: true}\n"},
	{"empty", "databases: {exclude: [\"*\"]}\n"},
	{"dump", "method: dump\ndatabases: {exclude: [legacy, crm]}\n"},
}

func TestGoldenPlans(t *testing.T) {
	src, dst := loadSnapshot(t, "rich-source"), loadSnapshot(t, "rich-target")
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			p := Build(mustConfig(t, sc.config), src, dst, testEnv)
			for _, f := range []Format{FormatTable, FormatMarkdown, FormatJSON} {
				var b bytes.Buffer
				if err := Render(&b, &p, f, 100); err != nil {
					t.Fatal(err)
				}
				for _, secret := range []string{"s3cret"} {
					if strings.Contains(b.String(), secret) {
						t.Errorf("%s output holds a password", f)
					}
				}
				golden.Assert(t, sc.name+"."+string(f), b.Bytes())
			}
		})
	}
}

func TestGoldenSeverities(t *testing.T) {
	src, dst := loadSnapshot(t, "rich-source"), loadSnapshot(t, "rich-target")
	tests := []struct {
		name               string
		blockers, warnings bool
	}{{"blockers", true, true}, {"warnings", false, true}, {"empty", false, false}, {"dump", false, false}}
	for i, tt := range tests {
		p := Build(mustConfig(t, scenarios[i].config), src, dst, testEnv)
		if got := len(p.Blockers()) > 0; got != tt.blockers {
			t.Errorf("%s: has blockers = %v, want %v", tt.name, got, tt.blockers)
		}
		if got := len(p.Warnings()) > 0; got != tt.warnings {
			t.Errorf("%s: has warnings = %v, want %v", tt.name, got, tt.warnings)
		}
	}
}

// TestBuildDeterministic builds twice and from shuffled snapshots: the
// plan's JSON must be byte-identical.
func TestBuildDeterministic(t *testing.T) {
	cfg := mustConfig(t, "")
	src, dst := loadSnapshot(t, "rich-source"), loadSnapshot(t, "rich-target")
	render := func(s, d Snapshot) []byte {
		p := Build(cfg, s, d, testEnv)
		var b bytes.Buffer
		if err := RenderJSON(&b, &p); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	want := render(src, dst)
	if got := render(src, dst); !bytes.Equal(got, want) {
		t.Fatal("two builds differ")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		s, d := shuffled(src, r), shuffled(dst, r)
		if got := render(s, d); !bytes.Equal(got, want) {
			t.Fatalf("build %d from shuffled snapshots differs", i)
		}
		if s.Fingerprint() != src.Fingerprint() {
			t.Fatalf("fingerprint of shuffled snapshot %d differs", i)
		}
	}
}

func shuffled(s Snapshot, r *rand.Rand) Snapshot {
	c := s.normalized()
	shuffle(r, c.Roles)
	shuffle(r, c.Databases)
	shuffle(r, c.AvailableExtensions)
	for i := range c.Databases {
		d := &c.Databases[i]
		shuffle(r, d.Tables)
		shuffle(r, d.Schemas)
		shuffle(r, d.Views)
		shuffle(r, d.Extensions)
		shuffle(r, d.Sequences)
	}
	return c
}

func shuffle[T any](r *rand.Rand, s []T) {
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

// TestFingerprintIgnoresVolatileFacts: sizes, row estimates and sessions
// change all the time; a new table does not.
func TestFingerprintIgnoresVolatileFacts(t *testing.T) {
	s := loadSnapshot(t, "rich-source")
	fp := s.Fingerprint()
	v := s.normalized()
	v.Activity.Sessions += 10
	v.Server.StartTime = "later"
	v.Databases[0].SizeBytes *= 2
	for i := range v.Databases {
		for j := range v.Databases[i].Tables {
			v.Databases[i].Tables[j].EstRows += 100
			v.Databases[i].Tables[j].Bytes += 8192
		}
	}
	if v.Fingerprint() != fp {
		t.Error("fingerprint changed with volatile facts only")
	}
	shop := v.Database("shop")
	shop.Tables = append(shop.Tables, Table{Schema: "public", Name: "new_table", Kind: KindTable, Persistence: "p"})
	if v.Fingerprint() == fp {
		t.Error("fingerprint did not change with a new table")
	}
}

func TestPlanFileRoundTrip(t *testing.T) {
	src, dst := loadSnapshot(t, "rich-source"), loadSnapshot(t, "rich-target")
	p := Build(mustConfig(t, ""), src, dst, testEnv)
	var b bytes.Buffer
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if err := WriteFile(&b, &p, src, dst, now); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "s3cret") {
		t.Error("plan file holds a password")
	}
	f, err := ReadFile(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !f.CreatedAt.Equal(now) || f.Plan.ConfigHash != p.ConfigHash || len(f.Plan.Steps) != len(p.Steps) {
		t.Errorf("read back %v, %s, %d steps", f.CreatedAt, f.Plan.ConfigHash, len(f.Plan.Steps))
	}
	if err := f.Check(p.ConfigHash, src, dst); err != nil {
		t.Errorf("fresh plan is stale: %v", err)
	}
	changed := src.normalized()
	shop := changed.Database("shop")
	shop.Tables = append(shop.Tables, Table{Schema: "public", Name: "audit", Kind: KindTable, Persistence: "p"})
	shop.Tables[0].Columns = append(shop.Tables[0].Columns, Column{Name: "extra", Type: "int"})
	err = f.Check("other-hash", changed, dst)
	want := "the plan is stale: the migration file changed; source: table shop.public.audit added; source: table shop.public.cache changed; plan again"
	if err == nil || err.Error() != want {
		t.Errorf("Check = %v\nwant %s", err, want)
	}
	if _, err := ReadFile(strings.NewReader(`{"kind":"something-else"}`)); err == nil {
		t.Error("ReadFile accepted another kind of JSON")
	}
}

// TestGoldenProviders: on a source that shows a managed service's marker
// role, the replication prerequisites' fixes are that provider's, and its
// own roles are not migrated; on such a target before 16, the fix for the
// subscription privilege is too. One golden table of the fixes, by
// provider.
func TestGoldenProviders(t *testing.T) {
	cfg := mustConfig(t, "method: replication\n")
	var rows [][]string
	for _, pv := range provider.Providers {
		src, dst := loadSnapshot(t, "rich-source"), loadSnapshot(t, "rich-target")
		var internal string
		if n := len(pv.InternalRoles); n > 0 {
			internal, _ = strings.CutSuffix(pv.InternalRoles[n-1], "*")
			if internal != pv.InternalRoles[n-1] {
				internal += "x"
			}
			src.Roles = append(src.Roles, Role{Name: internal, Login: true})
		}
		src.Roles = append(src.Roles, Role{Name: pv.Marker})
		src.Settings["wal_level"] = "replica"
		src.Me = Me{Name: "migrator", CreateDB: true}
		dst.Roles = append(dst.Roles, Role{Name: pv.Marker})
		dst.Server.Major = 15
		dst.Me = Me{Name: "admin", CreateDB: true, CreateRole: true}
		p := Build(cfg, src, dst, testEnv)
		seen := map[string]bool{}
		for _, f := range p.Findings {
			if (f.Code == "wal-level-not-logical" || f.Code == "no-replication-privilege" || f.Code == "no-subscription-privilege") && !seen[f.Code] {
				seen[f.Code] = true
				rows = append(rows, []string{pv.Name, f.Code, f.Fix})
			}
		}
		for _, st := range p.Steps {
			if internal != "" && slices.Contains(st.Params.Roles, internal) || pv.Internal(pv.Marker) && slices.Contains(st.Params.Roles, pv.Marker) {
				t.Errorf("%s: step %s migrates the provider's own role", pv.Name, st.ID)
			}
		}
	}
	var b bytes.Buffer
	if err := table.Write(&b, 100, []string{"PROVIDER", "CODE", "FIX"}, rows); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "providers.table", b.Bytes())
}
