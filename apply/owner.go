package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pghaul/pghaul/internal/pg"
)

// ownerCheckSQL: whether the owner exists, whether the target user is a
// superuser, and whether it may hand the owner objects. That takes SET on
// the role (16+; membership before), and restoring objects in the owner's
// schemas takes its privileges (USAGE: an inheriting membership). Since
// 16 a CREATEROLE user gets only ADMIN on the roles it creates (INHERIT
// and SET false): a member, but one that can do neither.
const ownerCheckSQL = `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
	(SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
	EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, $1, %s) AND pg_has_role(current_user, $1, 'USAGE'),
	current_user`

// ownerFor returns the role that can own an object owned by owner on the
// source: owner itself when it exists and the target user may hand it
// objects (superuser, member, or after granting itself membership), else
// the target user, with a note saying so. A membership it grants itself
// is recorded, and revoked when the migration completes
// (Migration.revokeOwnerGrants).
func (m *Migration) ownerFor(ctx context.Context, dst *pgx.Conn, owner string) (string, string, error) {
	var exists, super, member bool
	var me string
	set := "'MEMBER'"
	if pg.ServerMajor(dst) >= 16 {
		set = "'SET'"
	}
	if err := dst.QueryRow(ctx, fmt.Sprintf(ownerCheckSQL, set), owner).Scan(&exists, &super, &member, &me); err != nil {
		return "", "", fmt.Errorf("check owner %s: %w", owner, err)
	}
	switch {
	case !exists:
		return me, fmt.Sprintf("owner %s is missing on the target: %s owns it instead", owner, me), nil
	case super || member:
		return owner, "", nil
	}
	// A non-superuser must be a member of a role, with SET and INHERIT on
	// 16+, to make it an owner (what createrole_self_grant = 'set,
	// inherit' would have granted when it created the role).
	grant := "GRANT " + ident(owner) + " TO " + ident(me)
	if pg.ServerMajor(dst) >= 16 {
		grant += " WITH INHERIT TRUE, SET TRUE"
	}
	if _, err := dst.Exec(ctx, grant); err != nil {
		return me, fmt.Sprintf("%s cannot join role %s to hand it ownership (%s): %s owns it instead", me, owner, describe(err), me), nil
	}
	m.update(func() {
		if !slices.Contains(m.State.OwnerGrants, owner) {
			m.State.OwnerGrants = append(m.State.OwnerGrants, owner)
		}
	})
	return owner, "", m.save()
}

// revokeOwnerGrants takes back, once the migration is complete, the
// memberships the target user granted itself to hand objects to their
// owners: it should not stay a member of every owner role.
func (m *Migration) revokeOwnerGrants(ctx context.Context) error {
	// A subscription applies changes as the table owners through its
	// owner, the target user (16+): the memberships stay while any
	// database replicates, until its cut-over.
	if len(m.State.OwnerGrants) == 0 || !m.State.Complete() || m.State.Replicating() {
		return nil
	}
	revoked, err := RevokeOwnerGrants(ctx, m.Target, m.State.OwnerGrants)
	m.update(func() {
		m.State.OwnerGrants = slices.DeleteFunc(m.State.OwnerGrants, func(o string) bool { return slices.Contains(revoked, o) })
	})
	if len(revoked) > 0 {
		m.emit(Notice{Message: "took back the memberships the migration user granted itself in " + strings.Join(revoked, ", ")})
	}
	return errors.Join(err, m.save())
}

// RevokeOwnerGrants takes back the target user's memberships in roles it
// granted itself (State.OwnerGrants), returning those it revoked. REVOKE
// takes back the grant the current user made, never one another role made
// (on 16+ the ADMIN grant a role's creator gets).
func RevokeOwnerGrants(ctx context.Context, target *pg.Endpoint, roles []string) ([]string, error) {
	dst, err := target.Connect(ctx, "", pg.Options{})
	if err != nil {
		return nil, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var revoked []string
	for _, role := range roles {
		if _, err := dst.Exec(ctx, "REVOKE "+ident(role)+" FROM CURRENT_USER"); err != nil && !isMissingRole(err) {
			return revoked, fmt.Errorf("revoke the membership in %s the migration granted itself: %w", role, err)
		}
		revoked = append(revoked, role)
	}
	return revoked, nil
}

func describe(err error) string {
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		return pge.Message
	}
	return err.Error()
}

// isMissingRole reports undefined_object, as for a role missing on the target.
func isMissingRole(err error) bool { return pg.HasCode(err, pg.UndefinedObject) }
