#!/usr/bin/env bash
# Builds the Temporal CLI (`temporal`, github.com/temporalio/cli) from source
# into OUT (default: bin/temporal at the repository root). The CLI version is
# pinned by tools/temporalcli/go.mod, its own Go module; the modules come
# through the Go module proxy.
#
# The build is skipped when OUT is newer than every file under
# tools/temporalcli, so calling this before every test run is cheap. A cold
# build takes about 5 minutes on 2 cores; later builds reuse the Go build
# cache.
#
# usage: scripts/build-temporal-cli.sh [OUT]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/tools/temporalcli"
pkg="github.com/temporalio/cli/cmd/temporal"
out="${1:-$root/bin/temporal}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

if [[ ! -f "$src/go.mod" ]]; then
	echo "build-temporal-cli: $src/go.mod not found" >&2
	exit 1
fi

if [[ -x "$out" ]]; then
	newer="$(find "$src" -type f -newer "$out" -print -quit)"
	if [[ -z "$newer" ]]; then
		echo "build-temporal-cli: $out is up to date"
		exit 0
	fi
	echo "build-temporal-cli: $newer changed, rebuilding"
fi

# GOWORK=off: the CLI module must never be joined with the main module (the
# CLI pins older Temporal SDK and API versions than the launcher).
version="$(GOWORK=off go -C "$src" list -m -f '{{.Version}}' github.com/temporalio/cli)"

mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$(dirname "$out")/.temporal.XXXXXX")"
# The binary gets the time the build started, so that a file edited while it
# compiles still counts as newer next time.
stamp="$(mktemp "$(dirname "$out")/.temporal-stamp.XXXXXX")"
trap 'rm -f "$tmp" "$stamp"' EXIT
echo "build-temporal-cli: building $out (CLI $version; a cold build takes several minutes)"
start=$SECONDS
GOWORK=off go -C "$src" build -trimpath \
	-ldflags="-s -w -X github.com/temporalio/cli/temporalcli.Version=${version#v}" \
	-o "$tmp" "$pkg"
touch -r "$stamp" "$tmp"
rm -f "$stamp"
mv -f "$tmp" "$out"
trap - EXIT
echo "build-temporal-cli: built $out in $((SECONDS - start))s"
