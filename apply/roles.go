package apply

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/provider"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// sourceRole is a role as read from the source at apply time.
type sourceRole struct {
	plan.Role
	// Hash is the SCRAM or MD5 hash, when pg_authid is readable.
	Hash *string
}

const hashesSQL = `SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1)`

const targetRolesSQL = `SELECT rolname FROM pg_roles`

const isMemberSQL = `SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
	WHERE r.rolname = $1 AND u.rolname = $2)`

// readSourceRoles reads the selected roles, with hashes when the password
// mode wants them and pg_authid is readable.
func (m *Migration) readSourceRoles(ctx context.Context, conn *pgx.Conn) ([]sourceRole, error) {
	all, err := inspect.Roles(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var allNames []string
	for _, r := range all {
		allNames = append(allNames, r.Name)
	}
	p := provider.Detect(allNames) // a managed service's own roles never move
	var out []sourceRole
	for _, r := range all {
		if m.Config.Roles.Selects(r.Name) && !p.Internal(r.Name) {
			out = append(out, sourceRole{Role: r})
		}
	}
	mode := m.Config.Roles.Passwords
	if mode != config.PasswordsCopy && mode != config.PasswordsAuto {
		return out, nil
	}
	var names []string
	for _, r := range out {
		names = append(names, r.Name)
	}
	hashes := map[string]*string{}
	rows, err := conn.Query(ctx, hashesSQL, names)
	if err == nil {
		var name string
		var hash *string
		_, err = pgx.ForEachRow(rows, []any{&name, &hash}, func() error { hashes[name] = hash; return nil })
	}
	if err != nil {
		if mode == config.PasswordsCopy {
			m.emit(Notice{Message: "roles.passwords is copy but pg_authid is not readable: new roles get placeholder passwords"})
		}
		return out, nil
	}
	for i := range out {
		if h, ok := hashes[out[i].Name]; ok {
			if h == nil {
				empty := ""
				h = &empty
			}
			out[i].Hash = h
		}
	}
	return out, nil
}

// clusterStep runs the cluster-scoped steps.
func (m *Migration) clusterStep(ctx context.Context, st plan.Step) (string, error) {
	src, err := m.Source.Connect(ctx, "", pg.Options{ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer m.Source.Release(ctx, src)
	dst, err := m.Target.Connect(ctx, "", pg.Options{})
	if err != nil {
		return "", err
	}
	defer m.Target.Release(ctx, dst)
	roles, err := m.readSourceRoles(ctx, src)
	if err != nil {
		return "", err
	}
	k := kinds[st.Kind]
	if k.cluster == nil {
		return "", errNoExecutor(st, "for the cluster")
	}
	return k.cluster(m, ctx, dst, roles, st)
}

func targetRoles(ctx context.Context, dst *pgx.Conn) (map[string]bool, error) {
	names, err := queryStrings(ctx, dst, targetRolesSQL)
	if err != nil {
		return nil, fmt.Errorf("read target roles: %w", err)
	}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return set, nil
}

// createRoles creates the missing roles; a role the target refuses is
// reported failed and the migration goes on.
func (m *Migration) createRoles(ctx context.Context, dst *pgx.Conn, roles []sourceRole, wanted []string) (string, error) {
	existing, err := targetRoles(ctx, dst)
	if err != nil {
		return "", err
	}
	created, total := 0, 0
	for _, r := range roles {
		if !slices.Contains(wanted, r.Name) && !existing[r.Name] {
			continue // appeared on the source after planning: not in the reviewed plan
		}
		total++
		if existing[r.Name] {
			status := "exists"
			if m.previousRoleStatus(r.Name) == "created" {
				status = "created" // created by an earlier run of this migration
			}
			if err := m.recordRole(state.RoleResult{Name: r.Name, Status: status}); err != nil {
				return "", err
			}
			continue
		}
		pw, err := m.password(r)
		if err != nil {
			return "", err
		}
		// Recorded before the CREATE: a crash right after it must not make
		// the role look like one the target already had.
		if err := m.recordRole(state.RoleResult{Name: r.Name, Status: "creating"}); err != nil {
			return "", err
		}
		if _, err := dst.Exec(ctx, createRoleSQL(r.Role, pw)); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if err := m.recordRole(state.RoleResult{Name: r.Name, Status: "failed", Message: pg.Describe(err)}); err != nil {
				return "", err
			}
			continue
		}
		crashPoint("role:" + r.Name)
		created++
		if err := m.recordRole(state.RoleResult{Name: r.Name, Status: "created"}); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d created, %d in all", created, total), nil
}

// createdRoles reports whether this migration created any role (only
// those get per-database settings).
func (m *Migration) createdRoles() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.State.Roles {
		if r.Status == "created" || r.Status == "creating" {
			return true
		}
	}
	return false
}

// recordRole sets a role's result in the state and saves it.
func (m *Migration) recordRole(r state.RoleResult) error {
	m.update(func() {
		i := slices.IndexFunc(m.State.Roles, func(x state.RoleResult) bool { return x.Name == r.Name })
		if i < 0 {
			m.State.Roles = append(m.State.Roles, r)
		} else {
			m.State.Roles[i] = r
		}
	})
	return m.save()
}

func (m *Migration) previousRoleStatus(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.State.Roles {
		if r.Name == name {
			if r.Status == "creating" {
				return "created"
			}
			return r.Status
		}
	}
	return ""
}

// password returns the PASSWORD clause value for a new role: the source's
// hash (copy), a placeholder kept in the state directory, or nil.
func (m *Migration) password(r sourceRole) (*string, error) {
	mode := m.Config.Roles.Passwords
	switch {
	case mode == config.PasswordsNone:
		return nil, nil
	case r.Hash != nil && (mode == config.PasswordsCopy || mode == config.PasswordsAuto):
		if *r.Hash == "" {
			return nil, nil
		}
		return r.Hash, nil
	case !r.Login:
		return nil, nil
	}
	if pw, ok := m.passwords[r.Name]; ok {
		return &pw, nil
	}
	pw := "placeholder_" + randomLetters(16)
	m.update(func() { m.passwords[r.Name] = pw })
	if err := m.Store.SavePasswords(m.passwords); err != nil {
		return nil, fmt.Errorf("save placeholder passwords: %w", err)
	}
	return &pw, nil
}

func randomLetters(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// Placeholders returns the placeholder passwords set (apply --show-passwords).
func (m *Migration) Placeholders() state.Passwords { return m.passwords }

func createRoleSQL(r plan.Role, password *string) string {
	attr := func(on bool, name string) string {
		if on {
			return name
		}
		return "NO" + name
	}
	parts := []string{"CREATE ROLE", ident(r.Name), "WITH",
		attr(r.Superuser, "SUPERUSER"), attr(r.CreateDB, "CREATEDB"), attr(r.CreateRole, "CREATEROLE"),
		attr(r.Inherit, "INHERIT"), attr(r.Login, "LOGIN"), attr(r.Replication, "REPLICATION"), attr(r.BypassRLS, "BYPASSRLS"),
		fmt.Sprintf("CONNECTION LIMIT %d", r.ConnLimit)}
	if r.ValidUntil != "" {
		parts = append(parts, "VALID UNTIL", literal(r.ValidUntil))
	}
	if password != nil {
		parts = append(parts, "PASSWORD", literal(*password))
	}
	return strings.Join(parts, " ")
}

// grantMemberships adds each selected role's memberships on the target,
// to existing roles too, never removing any.
func (m *Migration) grantMemberships(ctx context.Context, dst *pgx.Conn, roles []sourceRole) (string, error) {
	existing, err := targetRoles(ctx, dst)
	if err != nil {
		return "", err
	}
	granted, skipped, failed := 0, 0, 0
	for _, r := range roles {
		for _, ms := range r.MemberOf {
			if !existing[r.Name] || !existing[ms.Role] {
				skipped++
				continue
			}
			var member bool
			if err := dst.QueryRow(ctx, isMemberSQL, ms.Role, r.Name).Scan(&member); err != nil {
				return "", err
			}
			if member {
				continue
			}
			sql := "GRANT " + ident(ms.Role) + " TO " + ident(r.Name)
			if ms.Admin {
				sql += " WITH ADMIN OPTION"
			}
			if _, err := dst.Exec(ctx, sql); err != nil {
				if !isPrivilegeError(err) {
					return "", fmt.Errorf("grant %s to %s: %w", ms.Role, r.Name, err)
				}
				// On 16+ a CREATEROLE user cannot grant membership in a
				// role it holds no ADMIN OPTION on (membership-not-
				// grantable): one failed row, and the migration goes on.
				failed++
				if err := m.recordRole(state.RoleResult{Name: fmt.Sprintf("%s (member of %s)", r.Name, ms.Role), Status: "failed", Message: describe(err)}); err != nil {
					return "", err
				}
				continue
			}
			granted++
		}
	}
	msg := words.Count(granted, "membership") + " granted"
	if skipped > 0 {
		msg += fmt.Sprintf(", %s left out (a role missing on the target)", words.Count(skipped, "membership"))
	}
	if failed > 0 {
		msg += fmt.Sprintf(", %s refused (see the roles table)", words.Count(failed, "membership"))
	}
	return msg, nil
}

// setRoleSettings applies ALTER ROLE ... SET for roles pghaul created;
// per-database settings follow with each database.
func (m *Migration) setRoleSettings(ctx context.Context, dst *pgx.Conn, roles []sourceRole) (string, error) {
	n := 0
	for _, r := range roles {
		if m.previousRoleStatus(r.Name) != "created" {
			continue // existing roles keep their settings
		}
		for _, s := range r.Config {
			if _, err := dst.Exec(ctx, "ALTER ROLE "+ident(r.Name)+" SET "+setClause(s)); err != nil {
				return "", fmt.Errorf("set %s of role %s: %w", s, r.Name, err)
			}
			n++
		}
	}
	return words.Count(n, "setting"), nil
}
