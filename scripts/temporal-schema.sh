#!/usr/bin/env bash
# Creates Temporal's two PostgreSQL databases (temporal, temporal_visibility)
# when missing and brings their schemas to the version of the Temporal server
# built into bin/temporal-dev, with Temporal's own SQL tool
# (`temporal-dev sql-tool`, the server's temporal-sql-tool with its embedded
# schema files). Run it once before the first start of a cluster and before
# starting the services of a new server version; it is idempotent.
#
# The user needs the right to create databases on first use (or create the two
# databases beforehand). The password comes from $SQL_PASSWORD.
#
# usage: scripts/temporal-schema.sh [--host 127.0.0.1] [--port 5432] [--user temporal]
#                                   [--bin bin/temporal-dev]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
host=127.0.0.1
port=5432
user=temporal
bin="$root/bin/temporal-dev"
while (($# > 0)); do
	case "$1" in
	--host) host="$2"; shift 2 ;;
	--port) port="$2"; shift 2 ;;
	--user) user="$2"; shift 2 ;;
	--bin) bin="$2"; shift 2 ;;
	-h | --help)
		sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "temporal-schema: unknown argument: $1 (see $0 --help)" >&2
		exit 2
		;;
	esac
done
if [[ ! -x "$bin" ]]; then
	echo "temporal-schema: $bin not found; build it with scripts/build-temporal-dev.sh" >&2
	exit 1
fi

tool() {
	local db="$1"
	shift
	"$bin" sql-tool --plugin postgres12 --endpoint "$host" --port "$port" --user "$user" \
		--password "${SQL_PASSWORD:-}" --database "$db" "$@"
}

for pair in temporal:postgresql/v12/temporal temporal_visibility:postgresql/v12/visibility; do
	db="${pair%%:*}"
	schema="${pair#*:}"
	# A database without the schema_version table is new: create it (when
	# missing) and set up versioning before the update applies every version.
	if ! tool "$db" update-schema --schema-name "$schema" >/dev/null 2>&1; then
		echo "temporal-schema: setting up $db"
		out="$(tool "$db" create-database 2>&1)" || grep -q "already exists" <<<"$out" || {
			echo "$out" >&2
			exit 1
		}
		tool "$db" setup-schema --version 0.0
	fi
	echo "temporal-schema: updating $db to the schema of $schema"
	tool "$db" update-schema --schema-name "$schema"
done
echo "temporal-schema: done"
