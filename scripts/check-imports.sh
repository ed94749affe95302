#!/usr/bin/env bash
# Enforces the one-way package arrows of docs/design.md §2: for each package, the
# project packages and third-party modules it must never reach (directly or not).
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
fail=0

# check PACKAGE FORBIDDEN-REGEX REASON
check() {
	local pkg=$1 forbidden=$2 reason=$3
	local hits
	hits=$(go list -deps "./$pkg" | grep -v -x "$mod/$pkg" | grep -E "$forbidden" || true)
	if [ -n "$hits" ]; then
		echo "check-imports: $pkg must not import ($reason):"
		echo "$hits" | sed 's/^/    /'
		fail=1
	fi
}

# check_direct PACKAGE FORBIDDEN-REGEX REASON: the same, for direct imports only (a
# workflow package reaches activities' dependencies through their types, but must not
# use them itself).
check_direct() {
	local pkg=$1 forbidden=$2 reason=$3
	local hits
	hits=$(go list -f '{{join .Imports "\n"}}' "./$pkg" | grep -E "$forbidden" || true)
	if [ -n "$hits" ]; then
		echo "check-imports: $pkg must not import directly ($reason):"
		echo "$hits" | sed 's/^/    /'
		fail=1
	fi
}

P="^$mod/"
AWS='^github.com/aws/'
TEMPORAL='^go.temporal.io/'
ZK='^github.com/go-zookeeper/'
GOPHERCLOUD='^github.com/gophercloud/'

check config        "${P}|${AWS}|${TEMPORAL}|${ZK}"                     "config is a leaf"
check drivers       "${P}|${AWS}|${TEMPORAL}|${ZK}"                     "the driver contract is stdlib only"
check drivers/sim   "${P}(activities|workflows|poller|worker|zookeeper|config)|${AWS}|${TEMPORAL}|${ZK}" "drivers know only the contract"
check drivers/aws   "${P}(activities|workflows|poller|worker|zookeeper|config)|${TEMPORAL}|${ZK}" "drivers know only the contract"
check drivers/openstack "${P}(activities|workflows|poller|worker|zookeeper|config)|${P}drivers/(sim|aws|static)|${AWS}|${TEMPORAL}|${ZK}" "drivers know only the contract"
check nodescan      "${P}|${AWS}|${TEMPORAL}|${ZK}"                     "nodescan is a leaf"
check drivers/static "${P}(activities|workflows|poller|worker|zookeeper|config|lifecycle|names|internal|cmd)|${P}drivers/(sim|aws|driverstest)|${AWS}|${TEMPORAL}|${ZK}" "the static driver knows only the contract and nodescan"
check drivers/driverstest "${P}drivers/(sim|aws)|${P}(activities|workflows|poller|worker|zookeeper|config)" "the conformance suite is driver-neutral"
check zookeeper     "${P}|${AWS}|${TEMPORAL}"                           "the wire format is a leaf"
check names         "${P}|${AWS}|${TEMPORAL}|${ZK}"                     "names is a leaf"
check lifecycle     "${P}(drivers|activities|workflows|poller|worker|config)|${AWS}|${TEMPORAL}" "lifecycle rules need only the wire format"
check activities    "${P}(drivers/|workflows|poller|worker|config)|${AWS}" "activities take drivers through the contract"
check_direct workflows "${P}(zookeeper|config|poller|worker|lifecycle|drivers/)|${AWS}|${ZK}|^net(/|$)|^os(/|$)|^math/rand|^sync$" "workflows are deterministic orchestration"
check workflows     "${P}(config|poller|worker|drivers/)|${AWS}"        "workflows are deterministic orchestration"
check_direct poller "${P}(drivers|activities|config|worker)|${AWS}"     "the poller only starts workflows"
check poller        "${P}(drivers/|config|worker)|${AWS}"               "the poller only starts workflows"
check internal/ec2sim "${P}|${TEMPORAL}|${ZK}"                          "the EC2 endpoint stands alone"
check internal/ossim "${P}|${TEMPORAL}|${ZK}"                           "the OpenStack endpoint stands alone"
check internal/zuul "${P}(config|drivers|activities|workflows|poller|worker|lifecycle|internal/launchconfig)|${AWS}|${TEMPORAL}" "acting as Zuul needs only the wire format"
check internal/launchconfig "${P}(activities|workflows|poller|worker|lifecycle|names)|${TEMPORAL}" "loading the configuration needs no Temporal"
# The web app serves ZooKeeper's records; /metrics is a handler it is given.
check webapp        "${P}(config|drivers|activities|workflows|poller|worker|lifecycle|metrics)|${AWS}|${TEMPORAL}" "the web app reads ZooKeeper only"
# Activities may record metrics, so metrics must reach nothing activities must not;
# what it asks Temporal and the configuration is answered by metrics/facts.
check metrics       "${P}(config|drivers|activities|workflows|poller|worker|lifecycle|webapp)|${AWS}" "metrics is below activities"
check_direct metrics/facts "${P}(activities|drivers|poller|worker|lifecycle|webapp|zookeeper)|${AWS}|${ZK}" "facts use workflow names and status types only"
check metrics/facts "${P}(drivers/|poller|worker|webapp)|${AWS}"       "facts use workflow names and status types only"
check internal/logging "${P}|${AWS}|${TEMPORAL}|${ZK}"                 "the log format is a leaf"
check internal/prettytable "${P}|${AWS}|${TEMPORAL}|${ZK}"             "text tables are a leaf"
# The admin CLI speaks ZooKeeper; only explain reads workflows, through
# internal/inspect, which takes the Temporal SDK's client and nothing else of it. No
# other package the CLI links may bring the SDK in.
check cmd/nodepool  "${P}(activities|workflows|poller|worker)" "the admin CLI never links the launcher"
check_direct cmd/nodepool "${TEMPORAL}" "the admin CLI reaches Temporal only through internal/inspect"
check internal/inspect "${P}(activities|workflows|poller|worker|lifecycle|zookeeper|drivers|internal/)|${AWS}|${ZK}" "inspect only reads workflows"
hits=$(go list -f '{{join .Imports "\n"}}' ./internal/inspect | grep -E '^go\.temporal\.io/sdk/' | grep -v -x 'go.temporal.io/sdk/client' || true)
if [ -n "$hits" ]; then
	echo "check-imports: internal/inspect must use only the client of the Temporal SDK:"
	echo "$hits" | sed 's/^/    /'
	fail=1
fi
for pkg in $(go list -deps ./cmd/nodepool | grep "^$mod/"); do
	case $pkg in "$mod/cmd/nodepool" | "$mod/internal/inspect") continue ;; esac
	if go list -deps "$pkg" | grep -qE "$TEMPORAL"; then
		echo "check-imports: ${pkg#"$mod"/} brings the Temporal SDK into the admin CLI; only internal/inspect may"
		fail=1
	fi
done

# Only drivers/aws (and what wires it or validates its configuration) may reach the
# AWS SDK.
for pkg in $(go list ./... | grep -v -E "/(drivers/aws|internal/launchconfig|worker|cmd/.*|e2e|bench)$"); do
	rel=${pkg#"$mod"/}
	[ "$pkg" = "$mod" ] && continue
	if go list -deps "$pkg" | grep -qE "$AWS"; then
		echo "check-imports: $rel reaches the AWS SDK; only drivers/aws may"
		fail=1
	fi
done

# Only drivers/openstack (and what wires it or validates its configuration) may reach
# gophercloud.
for pkg in $(go list ./... | grep -v -E "/(drivers/openstack|internal/launchconfig|worker|cmd/.*|e2e|bench)$"); do
	rel=${pkg#"$mod"/}
	[ "$pkg" = "$mod" ] && continue
	if go list -deps "$pkg" | grep -qE "$GOPHERCLOUD"; then
		echo "check-imports: $rel reaches gophercloud; only drivers/openstack may"
		fail=1
	fi
done

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "check-imports: ok"
