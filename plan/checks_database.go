package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pghaul/pghaul/internal/words"
)

func (in *input) checkConnectable(db *dbInput) []Finding {
	switch {
	case !db.src.AllowConn:
		return []Finding{finding("connection-failed", Blocker, "database "+db.name, "the database does not allow connections (datallowconn = false)",
			fmt.Sprintf("exclude it (databases.exclude: [%s]) or ALTER DATABASE %s ALLOW_CONNECTIONS true", db.name, db.name))}
	case db.src.NotUTF8:
		return []Finding{finding("connection-failed", Blocker, "database "+db.name, "cannot inspect it on the source: "+db.src.Error,
			"rename what is named in bytes that are not UTF-8 (ALTER ... RENAME; COMMENT ON for comments), or exclude the database (databases.exclude)")}
	case db.src.Error != "":
		return []Finding{finding("connection-failed", Blocker, "database "+db.name, "cannot inspect it on the source: "+db.src.Error,
			fmt.Sprintf("grant CONNECT on it to %s, or exclude it (databases.exclude)", in.src.Me.Name))}
	case db.dst != nil && db.dst.Error != "":
		return []Finding{finding("connection-failed", Blocker, "target database "+db.name, "cannot inspect it on the target: "+db.dst.Error,
			fmt.Sprintf("grant CONNECT on it to %s, or exclude it (databases.exclude)", in.dst.Me.Name))}
	}
	return nil
}

func (in *input) checkTargetDatabase(db *dbInput) []Finding {
	if db.dst != nil || in.cfg.Databases.Create {
		return nil
	}
	return []Finding{finding("target-db-missing", Blocker, "database "+db.name, "missing on the target and databases.create is false",
		fmt.Sprintf("CREATE DATABASE %s on the target, or set databases.create: true", db.name))}
}

func (in *input) checkEncoding(db *dbInput) []Finding {
	s, d := db.src, db.dst
	obj := "database " + db.name
	if d == nil {
		// Only libc locales ('c', or no provider before 15) come from the OS.
		if s.LocaleProvider != "c" && s.LocaleProvider != "" {
			return nil
		}
		var missing []string
		for _, l := range slices.Compact([]string{s.Collate, s.Ctype}) {
			if !in.knowsLocale(l) {
				missing = append(missing, l)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		return []Finding{finding("encoding-mismatch", Blocker, obj, "the target lacks the locale "+strings.Join(missing, ", ")+" to create the database with",
			"generate the locale on the target host (locale-gen) and restart it, or create the database yourself")}
	}
	if s.Encoding != d.Encoding {
		return []Finding{finding("encoding-mismatch", Blocker, obj, fmt.Sprintf("encoding is %s on the source and %s on the target", s.Encoding, d.Encoding),
			"recreate the target database with ENCODING "+s.Encoding+", or drop it so pghaul creates it")}
	}
	if s.Collate != d.Collate || s.Ctype != d.Ctype {
		return []Finding{finding("encoding-mismatch", Warning, obj,
			fmt.Sprintf("collation/ctype %s/%s on the source, %s/%s on the target: text sorts and indexes may differ", s.Collate, s.Ctype, d.Collate, d.Ctype),
			"recreate the target database with the source's locale if ordering matters")}
	}
	return nil
}

// knowsLocale reports whether the target can create a database with locale
// l: C and POSIX always, others when its pg_collation lists them (or when
// its collations were not read).
func (in *input) knowsLocale(l string) bool {
	if l == "C" || l == "POSIX" || len(in.dst.Collations) == 0 {
		return true
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "")) }
	return slices.ContainsFunc(in.dst.Collations, func(c string) bool { return norm(c) == norm(l) })
}

// checkTargetObjects reports schemas, tables and types that pre-data would
// create but that already exist in the target database.
func (in *input) checkTargetObjects(db *dbInput) []Finding {
	if db.dst == nil || !db.dst.Inspected || db.replicating {
		return nil
	}
	var clash []string
	for _, s := range db.src.Schemas {
		if s.Name != "public" && slices.ContainsFunc(db.dst.Schemas, func(x Schema) bool { return x.Name == s.Name }) {
			clash = append(clash, "schema "+s.Name)
		}
	}
	for _, t := range db.src.Tables {
		if t.Extension == "" && findTable(db.dst, t.Ref()) != nil {
			clash = append(clash, "table "+t.Ref().String())
		}
	}
	for _, ty := range db.src.Types {
		if slices.Contains(db.dst.Types, ty) {
			clash = append(clash, "type "+ty.Schema+"."+ty.Name)
		}
	}
	if len(clash) == 0 {
		return nil
	}
	return []Finding{finding("target-schema-not-empty", Blocker, "target database "+db.name,
		fmt.Sprintf("%s the schema restore would create already exist: %s", words.Count(len(clash), "object"), words.Some(clash, 5)),
		"drop them on the target (or the whole database), or exclude the database")}
}

func (in *input) checkTargetRows(db *dbInput) []Finding {
	if db.dst == nil || db.replicating {
		return nil
	}
	var full []string
	for _, t := range db.copy {
		if dt := findTable(db.dst, t.Ref()); dt != nil && dt.HasRows != nil && *dt.HasRows {
			full = append(full, t.Ref().String())
		}
	}
	if len(full) == 0 {
		return nil
	}
	return []Finding{finding("target-table-not-empty", Blocker, "target database "+db.name,
		fmt.Sprintf("%s to copy already hold rows on the target: %s", words.Count(len(full), "table"), words.Some(full, 5)),
		"empty or drop them on the target, or skip them (tables.skip)")}
}

// builtinLanguages exist in every database.
var builtinLanguages = []string{"internal", "c", "sql", "plpgsql"}

func (in *input) checkLanguages(db *dbInput) []Finding {
	var out []Finding
	for _, l := range db.src.Languages {
		if slices.Contains(builtinLanguages, l) || db.dst != nil && slices.Contains(db.dst.Languages, l) || in.available(l) {
			continue
		}
		out = append(out, finding("language-missing", Blocker, fmt.Sprintf("language %s in %s", l, db.name),
			"the target has no language "+l+" (no extension provides it)", "install the language's package on the target, or drop its functions on the source"))
	}
	return out
}

func (in *input) available(ext string) bool {
	return slices.ContainsFunc(in.dst.AvailableExtensions, func(a AvailableExtension) bool { return a.Name == ext })
}

func (in *input) checkSuperuserObjects(db *dbInput) []Finding {
	var out []Finding
	if len(db.src.Tablespaces) > 0 {
		out = append(out, finding("superuser-objects", Warning, "database "+db.name,
			"tables in tablespaces "+strings.Join(db.src.Tablespaces, ", ")+" go to the target's default tablespace (--no-tablespaces)",
			"move them afterwards with ALTER TABLE ... SET TABLESPACE if needed"))
	}
	if in.dst.Me.Superuser || len(db.src.SuperuserObjects) == 0 {
		return out
	}
	var names []string
	for _, o := range db.src.SuperuserObjects {
		names = append(names, o.Kind+" "+strings.TrimPrefix(o.Schema+"."+o.Name, "."))
	}
	return append(out, finding("superuser-objects", Warning, "database "+db.name,
		fmt.Sprintf("%s only a superuser can create will fail to restore: %s", words.Count(len(names), "object"), words.Some(names, 3)),
		"create them on the target as a superuser first, or connect as one"))
}

// checkReadable reports what the source role cannot read in a database:
// pg_dump locks every table it dumps (ACCESS SHARE takes a privilege on
// it) and the copy reads the selected ones; large objects are not covered
// by pg_read_all_data. apply would fail half way (a permission error at
// the schema dump or at the large objects, the sequences never set).
func (in *input) checkReadable(db *dbInput) []Finding {
	me := in.src.Me
	if me.Superuser {
		return nil
	}
	var tables []string
	for _, t := range db.src.Tables {
		if t.Unreadable && t.Kind != KindForeign {
			tables = append(tables, t.Ref().String())
		}
	}
	var out []Finding
	if len(tables) > 0 {
		out = append(out, finding("source-not-readable", Blocker, "database "+db.name,
			fmt.Sprintf("the source role %s cannot read %s: %s (pg_dump locks every table, and the copy reads them)", me.Name, words.Count(len(tables), "table"), words.Some(tables, 5)),
			fmt.Sprintf("GRANT pg_read_all_data TO %s on the source (14+; before: GRANT SELECT ON ALL TABLES IN SCHEMA ... TO %s), or connect as their owner", me.Name, me.Name)))
	}
	if n := db.src.UnreadableLargeObjects; n > 0 {
		out = append(out, finding("source-not-readable", Blocker, "database "+db.name,
			fmt.Sprintf("the source role %s cannot read %s (pg_read_all_data does not cover large objects)", me.Name, words.Count(int(n), "large object")),
			fmt.Sprintf("GRANT SELECT ON LARGE OBJECT <oid> TO %s for each, connect as their owner, or set lo_compat_privileges = on on the source for the migration", me.Name)))
	}
	return out
}

func (in *input) checkRowSecurity(db *dbInput) []Finding {
	me := in.src.Me
	if me.Superuser || me.BypassRLS {
		return nil
	}
	var out []Finding
	for _, t := range db.copy {
		if t.RowSecurity && (!t.OwnedByMe || t.ForceRowSecurity) {
			out = append(out, finding("row-security", Blocker, fmt.Sprintf("table %s.%s", db.name, t.Ref()),
				fmt.Sprintf("row-level security hides rows from %s: the copy would be incomplete", me.Name),
				fmt.Sprintf("ALTER ROLE %s BYPASSRLS, connect as the owner or a superuser, or skip the table", me.Name)))
		}
	}
	return out
}
