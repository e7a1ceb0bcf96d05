#!/bin/sh
# pghaul cut-over hooks for PgBouncer (see cutover-pgbouncer.yaml).
#
#   pgbouncer-cutover.sh pause    before the freeze: PAUSE the database, so
#                                 that clients wait instead of failing
#   pgbouncer-cutover.sh switch   after the switch: point the database's line
#                                 at the target, RELOAD, RESUME
#   pgbouncer-cutover.sh resume   on abort: RESUME on the source
#
# Reads PGBOUNCER_ADMIN, PGBOUNCER_INI and PGBOUNCER_TARGET, and
# PGHAUL_DATABASE from pghaul. Safe to run again (pghaul may retry a
# cut-over).
set -eu

: "${PGHAUL_DATABASE:?run by pghaul as a cut-over hook}"
: "${PGBOUNCER_ADMIN:?set PGBOUNCER_ADMIN to the admin console connection string}"

admin() {
	psql "$PGBOUNCER_ADMIN" -X -q -v ON_ERROR_STOP=1 -c "$1"
}

# resume ends a pause; "is not paused" is what an earlier run already did.
resume() {
	if ! out=$(admin "RESUME \"$PGHAUL_DATABASE\"" 2>&1); then
		case "$out" in
		*"not paused"*) ;;
		*) echo "$out" >&2; exit 1 ;;
		esac
	fi
}

case "${1:-}" in
pause)
	# PAUSE waits until the database's server connections are idle.
	admin "PAUSE \"$PGHAUL_DATABASE\""
	;;
switch)
	: "${PGBOUNCER_INI:?set PGBOUNCER_INI to PgBouncer's configuration file}"
	: "${PGBOUNCER_TARGET:?set PGBOUNCER_TARGET to the target's connection settings}"
	tmp="$PGBOUNCER_INI.pghaul.$$"
	awk -v db="$PGHAUL_DATABASE" -v to="$PGBOUNCER_TARGET" '
		$1 == db && $2 == "=" { print db " = " to " dbname=" db; found = 1; next }
		{ print }
		END { if (!found) { print "no line \"" db " = ...\" in [databases]" > "/dev/stderr"; exit 1 } }
	' "$PGBOUNCER_INI" >"$tmp"
	cat "$tmp" >"$PGBOUNCER_INI" # in place: the file keeps its owner and mode
	rm -f "$tmp"
	admin "RELOAD"
	resume
	;;
resume)
	resume
	;;
*)
	echo "usage: $0 pause|switch|resume" >&2
	exit 2
	;;
esac
