package plan

import (
	"fmt"
	"slices"
	"strings"
)

// checkExtensions compares each migrated extension of the source database
// with what the target can install.
func (in *input) checkExtensions(db *dbInput) []Finding {
	var out []Finding
	for _, e := range db.src.Extensions {
		if e.Name == "plpgsql" || !in.cfg.Extensions.Selects(e.Name) || in.installedOnTarget(db, e) {
			continue
		}
		if f := in.checkExtension(db, e); f != nil {
			out = append(out, *f)
		}
	}
	return out
}

func (in *input) installedOnTarget(db *dbInput, e Extension) bool {
	if db.dst == nil {
		return false
	}
	i := slices.IndexFunc(db.dst.Extensions, func(x Extension) bool { return x.Name == e.Name })
	return i >= 0 && compareVersions(db.dst.Extensions[i].Version, e.Version) >= 0
}

func (in *input) checkExtension(db *dbInput, e Extension) *Finding {
	obj := fmt.Sprintf("extension %s in %s", e.Name, db.name)
	var versions []AvailableExtension
	for _, a := range in.dst.AvailableExtensions {
		if a.Name == e.Name {
			versions = append(versions, a)
		}
	}
	if len(versions) == 0 {
		f := finding("extension-unavailable", Blocker, obj, "the target cannot install "+e.Name,
			fmt.Sprintf("install %s on the target server, or exclude it (extensions.exclude: [%s])", e.Name, e.Name))
		return &f
	}
	v, ok := pickVersion(versions, e.Version)
	if !ok {
		f := finding("extension-too-old", Blocker, obj,
			fmt.Sprintf("the source has %s %s, the target offers at most %s", e.Name, e.Version, versions[len(versions)-1].Version),
			"upgrade the extension's package on the target")
		return &f
	}
	if v.Superuser && !v.Trusted && !in.dst.Me.Superuser && !in.whitelisted(e.Name) {
		f := finding("extension-needs-superuser", Blocker, obj,
			fmt.Sprintf("%s is neither trusted nor whitelisted and role %s is not a superuser", e.Name, in.dst.Me.Name),
			"create the extension on the target as a superuser first, whitelist it (extwlist.extensions), or exclude it")
		return &f
	}
	return nil
}

// pickVersion returns the target version the extension will get: the
// source's own version when offered, else the newest newer one.
func pickVersion(versions []AvailableExtension, want string) (AvailableExtension, bool) {
	for _, v := range versions {
		if v.Version == want {
			return v, true
		}
	}
	newest := versions[len(versions)-1]
	return newest, compareVersions(newest.Version, want) > 0
}

func (in *input) whitelisted(name string) bool {
	return slices.Contains(splitSetting(in.dst.Settings["extwlist.extensions"]), name)
}

func splitSetting(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"`); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkPreload reports extensions whose library the source preloads and
// the target does not: they would install but not work.
func (in *input) checkPreload(db *dbInput) []Finding {
	srcLibs := splitSetting(in.src.Settings["shared_preload_libraries"])
	dstLibs := splitSetting(in.dst.Settings["shared_preload_libraries"])
	var out []Finding
	for _, e := range db.src.Extensions {
		if !slices.Contains(srcLibs, e.Name) || !in.cfg.Extensions.Selects(e.Name) || slices.Contains(dstLibs, e.Name) {
			continue
		}
		obj := fmt.Sprintf("extension %s in %s", e.Name, db.name)
		if in.dst.IsUnknown("setting:shared_preload_libraries") {
			out = append(out, finding("extension-needs-preload", Info, obj,
				"the source preloads "+e.Name+"; the target's shared_preload_libraries could not be read", "check that the target preloads "+e.Name))
			continue
		}
		out = append(out, finding("extension-needs-preload", Blocker, obj,
			"the source preloads "+e.Name+" (shared_preload_libraries) and the target does not",
			fmt.Sprintf("add %s to the target's shared_preload_libraries and restart it", e.Name)))
	}
	return out
}
