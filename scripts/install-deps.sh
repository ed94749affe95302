#!/usr/bin/env bash
# Installs the system packages this project needs on Debian 12, when missing:
#   zookeeper      ZooKeeper 3.8 server (started by scripts/zookeeper.sh); pulls a JRE
#   a JRE          default-jre-headless, only if no `java` is available afterwards
#   python3-kazoo  Python ZooKeeper client used to act as Zuul in tests
#   postgresql     PostgreSQL server (initdb and postgres), for the cluster
#                  stack (make run-cluster); the stack runs its own instance,
#                  the system cluster the package creates is left alone
#   chromium       only with --chromium (headless screenshots of the web UI)
#
# Idempotent: installed packages are left alone, and `apt-get update` runs
# only when something has to be installed. Needs root when something is
# missing; as another user it fails and lists what to install.
#
# usage: scripts/install-deps.sh [--chromium]
set -euo pipefail

want=(zookeeper python3-kazoo postgresql)
for arg in "$@"; do
	case "$arg" in
	--chromium) want+=(chromium) ;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-deps: unknown argument: $arg (usage: $0 [--chromium])" >&2
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
# zookeeper depends on a JRE; only ask for one separately when zookeeper is
# already installed but `java` is not on PATH.
if installed zookeeper && ! command -v java >/dev/null 2>&1; then
	missing+=(default-jre-headless)
fi

if ((${#missing[@]} == 0)); then
	echo "install-deps: nothing to do; installed: ${want[*]}, java: $(command -v java)"
	exit 0
fi

if ((EUID != 0)); then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: run as root to install them: sudo $0 $*" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_get() {
	apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null
}

echo "install-deps: installing: ${missing[*]}"
echo "install-deps: apt-get update"
apt_get update
apt_get install --no-install-recommends "${missing[@]}"

if ! command -v java >/dev/null 2>&1; then
	echo "install-deps: no java after installing zookeeper; installing default-jre-headless"
	apt_get install --no-install-recommends default-jre-headless
fi

mapfile -t still < <(missing_pkgs "${want[@]}")
if ((${#still[@]} > 0)); then
	echo "install-deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: installed ${missing[*]}; java: $(command -v java)"
