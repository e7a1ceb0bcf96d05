package main

import (
	"fmt"
	"strings"
)

// mixedSQL builds the "mixed" database: twenty tables of assorted column
// types, a partitioned table, indexes and foreign keys, a few hundred
// thousand rows in all.
func mixedSQL() []string {
	types := []struct{ col, expr string }{
		{"int4 int", "g"},
		{"int8 bigint", "g::bigint * 1000003"},
		{"txt text", "md5(g::text)"},
		{"num numeric(12,3)", "(g % 100000) / 7.0"},
		{"ts timestamptz", "timestamptz '2025-01-01' + g * interval '17 seconds'"},
		{"js jsonb", "jsonb_build_object('g', g, 'tag', 't' || g % 13)"},
		{"bin bytea", "decode(md5(g::text), 'hex')"},
		{"uid uuid", "md5(g::text)::uuid"},
		{"arr int[]", "ARRAY[g, g + 1, g + 2]"},
		{"flag boolean", "g % 2 = 0"},
		{"d date", "date '2020-01-01' + g % 2000"},
		{"ip inet", "('10.0.' || g % 250 || '.' || g % 200)::inet"},
		{"f8 float8", "g / 3.0"},
		{"vc varchar(40)", "'vc-' || g"},
		{"iv interval", "g * interval '1 minute'"},
		{"ch char(8)", "lpad((g % 99999999)::text, 8, '0')"},
		{"pt point", "point(g, g / 2)"},
		{"sm smallint", "(g % 30000)::smallint"},
		{"tz time", "time '00:00' + (g % 86400) * interval '1 second'"},
		{"tags text[]", "ARRAY['a' || g % 7, 'b' || g % 11]"},
	}
	stmts := []string{"CREATE TABLE parent_ref (id int PRIMARY KEY, label text)",
		"INSERT INTO parent_ref SELECT g, 'label ' || g FROM generate_series(1, 1000) g"}
	for i, t := range types {
		name := fmt.Sprintf("t%02d", i+1)
		rows := 15000
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, ref int REFERENCES parent_ref, %s, note text)", name, t.col),
			fmt.Sprintf("INSERT INTO %s SELECT g, 1 + g %% 1000, %s, 'row ' || g FROM generate_series(1, %d) g", name, t.expr, rows),
			fmt.Sprintf("CREATE INDEX ON %s %s", name, indexOn(t.col)))
	}
	return append(stmts,
		"CREATE TABLE events (id bigint, at date, payload jsonb, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
		"CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
		"CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
		"INSERT INTO events SELECT g, date '2025-03-01' + g % 600, jsonb_build_object('n', g) FROM generate_series(1, 60000) g",
		"CREATE INDEX ON events (at)",
		"ANALYZE")
}

// indexOn is a column's index clause: gist for point, which has no btree.
func indexOn(col string) string {
	name, typ, _ := strings.Cut(col, " ")
	if typ == "point" {
		return "USING gist (" + name + ")"
	}
	return "(" + name + ")"
}

// manySQL builds the "many" database: n small tables of 200 rows, each
// with a primary key and an index, as a schema of many tables has; what
// each table costs, not its rows, is what this measures.
func manySQL(n int) []string {
	var stmts []string
	for i := range n {
		name := fmt.Sprintf("m%05d", i)
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v text, n numeric, at timestamptz DEFAULT now())", name),
			fmt.Sprintf("INSERT INTO %s SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 200) g", name),
			fmt.Sprintf("CREATE INDEX ON %s (v)", name))
	}
	return stmts
}

// blobsSQL builds the "blobs" database: n large objects of 1 to 10 KiB,
// where each object's round trips, not its bytes, are what is measured.
func blobsSQL(n int) []string {
	return []string{fmt.Sprintf("SELECT count(lo_from_bytea(0, convert_to(repeat(md5(g::text), 32 + g %% 290), 'UTF8'))) FROM generate_series(1, %d) g", n)}
}
