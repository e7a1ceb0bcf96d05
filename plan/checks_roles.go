package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/words"
)

// selectedRoles are the source roles the config migrates: never a managed
// service's own roles.
func (in *input) selectedRoles() []Role {
	var out []Role
	for _, r := range in.src.Roles {
		if in.cfg.Roles.Selects(r.Name) && !in.srcProvider.Internal(r.Name) {
			out = append(out, r)
		}
	}
	return out
}

// rolesToCreate are the selected roles missing on the target.
func (in *input) rolesToCreate() []Role {
	var out []Role
	for _, r := range in.selectedRoles() {
		if in.dst.Role(r.Name) == nil {
			out = append(out, r)
		}
	}
	return out
}

func (in *input) checkRoles() []Finding {
	var out []Finding
	owners := in.owners()
	for _, r := range in.selectedRoles() {
		if in.dst.Role(r.Name) != nil {
			out = append(out, finding("role-exists", Info, "role "+r.Name, "already on the target: kept as it is, memberships added", ""))
			continue
		}
		if why := in.cannotCreate(r); why != "" {
			sev, msg := Warning, why
			if owned := owners[r.Name]; len(owned) > 0 {
				sev, msg = Blocker, why+"; it owns "+words.Some(owned, 3)
			}
			out = append(out, finding("role-not-creatable", sev, "role "+r.Name, msg,
				"create the role on the target with a privileged user first, exclude it (roles.exclude), or connect as a superuser"))
		}
	}
	return out
}

// checkOwnersKept reports the owners of selected objects that the
// migration leaves out (roles.exclude, a provider's own role) and the
// target lacks: their objects keep the migration user as owner, each
// named in apply's result; every other object keeps its owner.
func (in *input) checkOwnersKept() []Finding {
	var out []Finding
	owners := in.owners()
	for _, o := range slices.Sorted(maps.Keys(owners)) {
		if strings.HasPrefix(o, "pg_") {
			continue
		}
		objects := fmt.Sprintf("%s keep the migration user as owner: %s", words.Count(len(owners[o]), "object"), words.Some(owners[o], 3))
		if existing := in.dst.Role(o); existing != nil {
			if why := in.cannotHandTo(*existing); why != "" {
				out = append(out, finding("owner-not-kept", Warning, "role "+o,
					fmt.Sprintf("role %s exists on the target, but %s: %s", o, why, objects),
					fmt.Sprintf("on the target, as a privileged user: %s", in.joinGrant(o))))
			}
			continue
		}
		if in.cfg.Roles.Selects(o) && !in.srcProvider.Internal(o) {
			continue // created by the migration, which may then hand it objects
		}
		out = append(out, finding("owner-not-kept", Warning, "role "+o,
			fmt.Sprintf("role %s is not migrated and the target lacks it: %s", o, objects),
			fmt.Sprintf("create role %s on the target first, or migrate it (remove it from roles.exclude)", o)))
	}
	return out
}

// cannotHandTo says why the target user can neither hand objects to the
// existing target role r nor grant itself what that takes, or "". apply
// grants itself the membership when it may (ownerFor).
func (in *input) cannotHandTo(r Role) string {
	me := in.dst.Me
	if me.Superuser || r.Name == me.Name || slices.Contains(me.HandsTo, r.Name) {
		return ""
	}
	switch {
	case r.Superuser:
		return fmt.Sprintf("it is a superuser, which target role %s may not join", me.Name)
	case in.dst.Server.Major >= 16 && !slices.Contains(me.AdminOf, r.Name):
		return fmt.Sprintf("target role %s may neither SET ROLE to it nor grant itself that (PostgreSQL 16+ needs ADMIN OPTION on %s)", me.Name, r.Name)
	case in.dst.Server.Major < 16 && !me.CreateRole && !slices.Contains(me.AdminOf, r.Name):
		return fmt.Sprintf("target role %s is not a member and lacks CREATEROLE to join it", me.Name)
	}
	return ""
}

// joinGrant is the grant that lets the target user hand objects to role.
func (in *input) joinGrant(role string) string {
	grant := fmt.Sprintf("GRANT %s TO %s", role, in.dst.Me.Name)
	if in.dst.Server.Major >= 16 {
		grant += " WITH INHERIT TRUE, SET TRUE"
	}
	return grant
}

// checkMemberships predicts the memberships the target user cannot grant:
// from PostgreSQL 16 granting membership in a role takes ADMIN OPTION on
// it, which a CREATEROLE user has on the roles it creates, not on those
// the target already has (predefined pg_* roles, a provider's). apply
// reports each such membership failed and goes on.
func (in *input) checkMemberships() []Finding {
	me := in.dst.Me
	if me.Superuser || in.dst.Server.Major < 16 {
		return nil
	}
	var out []Finding
	for _, r := range in.selectedRoles() {
		for _, m := range r.MemberOf {
			if in.dst.Role(m.Role) == nil || slices.Contains(me.AdminOf, m.Role) {
				continue // created by this migration (ADMIN is the creator's), or grantable
			}
			out = append(out, finding("membership-not-grantable", Warning, "role "+r.Name,
				fmt.Sprintf("target role %s cannot grant %s membership in %s (PostgreSQL 16+ needs ADMIN OPTION on %s): apply reports it failed and goes on", me.Name, r.Name, m.Role, m.Role),
				fmt.Sprintf("GRANT %s TO %s WITH ADMIN OPTION on the target first, or grant %s to %s as a privileged user afterwards", m.Role, me.Name, m.Role, r.Name)))
		}
	}
	return out
}

// cannotCreate says why the target user cannot create r, or "".
func (in *input) cannotCreate(r Role) string {
	me := in.dst.Me
	if me.Superuser {
		return ""
	}
	if !me.CreateRole {
		return fmt.Sprintf("target role %s lacks CREATEROLE", me.Name)
	}
	// Before 16 only superusers grant REPLICATION and BYPASSRLS; from 16 a
	// CREATEROLE user grants the attributes it has itself.
	v16 := in.dst.Server.Major >= 16
	var attrs []string
	for _, a := range []struct {
		name      string
		need, has bool
	}{{"SUPERUSER", r.Superuser, false}, {"REPLICATION", r.Replication, v16 && me.Replication}, {"BYPASSRLS", r.BypassRLS, v16 && me.BypassRLS}} {
		if a.need && !a.has {
			attrs = append(attrs, a.name)
		}
	}
	if len(attrs) == 0 {
		return ""
	}
	return fmt.Sprintf("it has %s, which target role %s cannot grant", strings.Join(attrs, ", "), me.Name)
}

// owners maps each role to the selected objects it owns.
func (in *input) owners() map[string][]string {
	m := map[string][]string{}
	for _, db := range in.dbs {
		m[db.src.Owner] = append(m[db.src.Owner], "database "+db.name)
		for _, s := range db.src.Schemas {
			m[s.Owner] = append(m[s.Owner], fmt.Sprintf("schema %s.%s", db.name, s.Name))
		}
		for _, t := range db.src.Tables {
			m[t.Owner] = append(m[t.Owner], fmt.Sprintf("table %s.%s", db.name, t.Ref()))
		}
	}
	return m
}

func (in *input) checkPasswords() []Finding {
	mode := in.cfg.Roles.Passwords
	if mode != config.PasswordsCopy && mode != config.PasswordsAuto || in.src.PasswordsReadable || len(in.rolesToCreate()) == 0 {
		return nil
	}
	return []Finding{finding("passwords-not-readable", Warning, "source",
		fmt.Sprintf("role %s cannot read password hashes (pg_authid): new roles get placeholder passwords", in.src.Me.Name),
		"connect as a superuser to copy passwords, or set them after the migration (apply --show-passwords prints the placeholders)")}
}
