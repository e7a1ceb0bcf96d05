package apply

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgferry/pgferry/internal/pg"
)

const ownerCheckSQL = `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
	(SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
	EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, $1, 'MEMBER'),
	current_user`

// ownerFor returns the role that can own an object owned by owner on the
// source: owner itself when it exists and the target user may hand it
// objects (superuser, member, or after granting itself membership), else
// the target user, with a note saying so.
func (m *Migration) ownerFor(ctx context.Context, dst *pgx.Conn, owner string) (string, string, error) {
	var exists, super, member bool
	var me string
	if err := dst.QueryRow(ctx, ownerCheckSQL, owner).Scan(&exists, &super, &member, &me); err != nil {
		return "", "", fmt.Errorf("check owner %s: %w", owner, err)
	}
	switch {
	case !exists:
		return me, fmt.Sprintf("owner %s is missing on the target: %s owns it instead", owner, me), nil
	case super || member:
		return owner, "", nil
	}
	// A non-superuser must be a member of a role to make it an owner.
	if _, err := dst.Exec(ctx, "GRANT "+ident(owner)+" TO "+ident(me)); err != nil {
		return me, fmt.Sprintf("%s cannot join role %s to hand it ownership (%s): %s owns it instead", me, owner, describe(err), me), nil
	}
	return owner, "", nil
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
