package config

import "testing"

func TestTablePatterns(t *testing.T) {
	type tbl struct{ db, schema, table string }
	tests := []struct {
		pattern string
		match   []tbl
		noMatch []tbl
	}{
		{"spatial_ref_sys", []tbl{{"gis", "public", "spatial_ref_sys"}, {"x", "other", "spatial_ref_sys"}}, []tbl{{"gis", "public", "spatial_ref_sys2"}}},
		{"public.spatial_ref_sys", []tbl{{"gis", "public", "spatial_ref_sys"}, {"shop", "public", "spatial_ref_sys"}}, []tbl{{"gis", "topology", "spatial_ref_sys"}}},
		{"shop.public.orders", []tbl{{"shop", "public", "orders"}}, []tbl{{"shop2", "public", "orders"}, {"shop", "sales", "orders"}}},
		{"shop.*.orders", []tbl{{"shop", "a", "orders"}, {"shop", "b", "orders"}}, []tbl{{"shop", "a", "orders_old"}}},
		{"audit.log_*", []tbl{{"d", "audit", "log_2024"}, {"d", "audit", "log_"}}, []tbl{{"d", "audit", "logs"}, {"d", "audit2", "log_1"}}},
		{"*_archive.*.*", []tbl{{"shop_archive", "s", "t"}}, []tbl{{"shop", "s", "t"}}},
		{`"my.db".public.t`, []tbl{{"my.db", "public", "t"}}, []tbl{{"my", "db", "t"}}},
		{`public."odd.name"`, []tbl{{"d", "public", "odd.name"}}, []tbl{{"d", "public", "odd"}}},
		{`"Mixed""Case"`, []tbl{{"d", "s", `Mixed"Case`}}, []tbl{{"d", "s", "mixed\"case"}}},
		{`public."star*"`, []tbl{{"d", "public", "star*"}}, []tbl{{"d", "public", "starry"}}},
		{"Orders", []tbl{{"d", "s", "Orders"}}, []tbl{{"d", "s", "orders"}}},
		{"a*b*c", []tbl{{"d", "s", "abc"}, {"d", "s", "aXbYc"}}, []tbl{{"d", "s", "acb"}}},
	}
	for _, tt := range tests {
		p, err := ParseTable(tt.pattern)
		if err != nil {
			t.Errorf("ParseTable(%q): %v", tt.pattern, err)
			continue
		}
		for _, m := range tt.match {
			if !p.MatchTable(m.db, m.schema, m.table) {
				t.Errorf("%q does not match %v, want a match", tt.pattern, m)
			}
		}
		for _, m := range tt.noMatch {
			if p.MatchTable(m.db, m.schema, m.table) {
				t.Errorf("%q matches %v, want no match", tt.pattern, m)
			}
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "a.b.c.d", `"open`} {
		if _, err := ParseTable(bad); err == nil {
			t.Errorf("ParseTable(%q) accepted it", bad)
		}
	}
}

func TestNamePatternsAndSelection(t *testing.T) {
	c := mustParse(t, minimal+`databases: {include: ["shop*", "my.db"], exclude: [shop_old]}
roles: {exclude: [legacy_*]}
extensions: {exclude: [pg_stat_statements]}
tables: {only: [public.orders, "*.items"]}
`, nil)
	sel := []struct {
		what string
		got  bool
		want bool
	}{
		{"db shop", c.Databases.Selects("shop"), true},
		{"db shop_eu", c.Databases.Selects("shop_eu"), true},
		{"db my.db (dots literal)", c.Databases.Selects("my.db"), true},
		{"db myXdb", c.Databases.Selects("myXdb"), false},
		{"db shop_old excluded", c.Databases.Selects("shop_old"), false},
		{"db other not included", c.Databases.Selects("other"), false},
		{"template1 never", Databases{}.Selects("template1"), false},
		{"rdsadmin never", Databases{}.Selects("rdsadmin"), false},
		{"role app", c.Roles.Selects("app"), true},
		{"role legacy_x excluded", c.Roles.Selects("legacy_x"), false},
		{"role pg_monitor never", c.Roles.Selects("pg_monitor"), false},
		{"role rds_superuser never", c.Roles.Selects("rds_superuser"), false},
		{"role cloudsqlsuperuser never", c.Roles.Selects("cloudsqlsuperuser"), false},
		{"role azure_pg_admin never", c.Roles.Selects("azure_pg_admin"), false},
		{"extension postgis", c.Extensions.Selects("postgis"), true},
		{"extension pg_stat_statements excluded", c.Extensions.Selects("pg_stat_statements"), false},
		{"only public.orders", c.Tables.Selects("shop", "public", "orders"), true},
		{"only *.items", c.Tables.Selects("shop", "sales", "items"), true},
		{"not in only", c.Tables.Selects("shop", "public", "users"), false},
		{"skip", Tables{Skip: mustTables(t, "public.spatial_ref_sys")}.Selects("gis", "public", "spatial_ref_sys"), false},
		{"not skipped", Tables{Skip: mustTables(t, "public.spatial_ref_sys")}.Selects("gis", "public", "roads"), true},
	}
	for _, s := range sel {
		if s.got != s.want {
			t.Errorf("%s = %v, want %v", s.what, s.got, s.want)
		}
	}
}

func mustTables(t *testing.T, patterns ...string) TablePatterns {
	t.Helper()
	var ts TablePatterns
	for _, s := range patterns {
		p, err := ParseTable(s)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, p)
	}
	return ts
}
