#!/usr/bin/env bash
# Installs, when missing, the Debian 12 packages that upstream Nodepool's launcher and
# CLI need to run from the vendored source in interop/upstream (the interop test, `make
# interop`): the system python3 and the Python libraries its launcher core, the fake and
# openstack drivers, its web app and its CLI import.
#
# Idempotent: installed packages are left alone, and `apt-get update` runs only when
# something has to be installed. Needs root when something is missing; as another user
# it fails and lists what to install. Non-interactive.
#
# usage: scripts/install-interop-deps.sh [--check]
#   --check  only report what is missing (exit 1 when something is)
set -euo pipefail

want=(
	python3
	python3-kazoo
	python3-openstacksdk
	python3-keystoneauth1
	python3-voluptuous
	python3-yaml
	python3-paste
	python3-webob
	python3-statsd
	python3-cachetools
	python3-paramiko
	python3-pbr
	python3-pkg-resources
	python3-daemon
	python3-extras
	python3-prettytable
)

check_only=false
for arg in "$@"; do
	case "$arg" in
	--check) check_only=true ;;
	-h | --help)
		sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-interop-deps: unknown argument: $arg (usage: $0 [--check])" >&2
		exit 2
		;;
	esac
done

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing_pkgs() {
	local p
	for p in "$@"; do
		installed "$p" || echo "$p"
	done
}

mapfile -t missing < <(missing_pkgs "${want[@]}")

if ((${#missing[@]} == 0)); then
	echo "install-interop-deps: nothing to do; installed: ${want[*]}"
	exit 0
fi

if $check_only; then
	echo "install-interop-deps: missing packages: ${missing[*]}" >&2
	exit 1
fi

if ((EUID != 0)); then
	echo "install-interop-deps: missing packages: ${missing[*]}" >&2
	echo "install-interop-deps: run as root to install them: sudo $0" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_get() {
	apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null
}

echo "install-interop-deps: installing: ${missing[*]}"
echo "install-interop-deps: apt-get update"
apt_get update
apt_get install --no-install-recommends "${missing[@]}"

mapfile -t still < <(missing_pkgs "${want[@]}")
if ((${#still[@]} > 0)); then
	echo "install-interop-deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "install-interop-deps: installed ${missing[*]}"
