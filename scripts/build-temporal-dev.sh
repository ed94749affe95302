#!/usr/bin/env bash
# Builds the Temporal dev server (tools/devtemporal, its own Go module; also the
# cluster services on PostgreSQL and Temporal's SQL tool, docs/cluster.md) into
# OUT (default: bin/temporal-dev at the repository root).
#
# The build is skipped when OUT is newer than every file under tools/devtemporal,
# so calling this before every test run is cheap. A cold build takes about
# 5 minutes on 2 cores; later builds reuse the Go build cache.
#
# usage: scripts/build-temporal-dev.sh [OUT]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/tools/devtemporal"
out="${1:-$root/bin/temporal-dev}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

if [[ ! -f "$src/go.mod" ]]; then
	echo "build-temporal-dev: $src/go.mod not found" >&2
	exit 1
fi

if [[ -x "$out" ]]; then
	newer="$(find "$src" -type f -newer "$out" -print -quit)"
	if [[ -z "$newer" ]]; then
		echo "build-temporal-dev: $out is up to date"
		exit 0
	fi
	echo "build-temporal-dev: $newer changed, rebuilding"
fi

mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$(dirname "$out")/.temporal-dev.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
echo "build-temporal-dev: building $out (a cold build takes several minutes)"
start=$SECONDS
# The binary gets the time the build started, so that a source edited while
# it compiles still counts as newer next time.
stamp="$(mktemp "$(dirname "$out")/.temporal-dev-stamp.XXXXXX")"
trap 'rm -f "$tmp" "$stamp"' EXIT
# GOWORK=off: the server module must never be joined with the main module.
GOWORK=off go -C "$src" build -trimpath -ldflags="-s -w" -o "$tmp" .
touch -r "$stamp" "$tmp"
rm -f "$stamp"
mv -f "$tmp" "$out"
trap - EXIT
echo "build-temporal-dev: built $out in $((SECONDS - start))s"
