#!/usr/bin/env bash
# `make run`: the whole system on one machine, for trying it out.
#   ZooKeeper        127.0.0.1:2181, data in .run/zookeeper
#   Temporal         127.0.0.1:7233, Web UI http://127.0.0.1:8233, database .run/temporal.db
#   EC2 endpoint     127.0.0.1:8780, a simulated AWS region
#   launcher         bin/nodepool-launcher -c examples/nodepool.yaml (sim and aws providers)
# Everything stops on Ctrl-C. State in .run/ survives restarts (delete it to start over).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
run="$root/.run"
mkdir -p "$run"

# The ports examples/nodepool.yaml names.
ZK_PORT=2181
EC2_PORT=8780
TEMPORAL_PORT=7233
TEMPORAL_UI_PORT=8233
# The simulated EC2 endpoint accepts any credentials; the AWS SDK wants some.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-sim}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-sim}"

pids=()
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "run: stopping"
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	scripts/zookeeper.sh stop "$run/zookeeper" >/dev/null || true
	echo "run: stopped"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for p in "$ZK_PORT" "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" "$EC2_PORT"; do
	if port_busy "$p"; then
		echo "run: port $p on 127.0.0.1 is in use; stop what uses it or set another port (see scripts/run.sh)" >&2
		exit 1
	fi
done

echo "run: starting ZooKeeper"
scripts/zookeeper.sh start "$run/zookeeper" "$ZK_PORT" >/dev/null

echo "run: starting Temporal (database $run/temporal.db)"
bin/temporal-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
	--db "$run/temporal.db" >"$run/temporal.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
	grep -q "temporal-dev ready" "$run/temporal.log" 2>/dev/null && break
	kill -0 "${pids[-1]}" 2>/dev/null || { cat "$run/temporal.log" >&2; exit 1; }
	sleep 0.2
done

echo "run: starting the EC2 endpoint"
bin/ec2sim --listen "127.0.0.1:$EC2_PORT" >"$run/ec2sim.log" 2>&1 &
pids+=($!)

echo "run: starting the launcher"
TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" bin/nodepool-launcher -c examples/nodepool.yaml \
	>"$run/launcher.log" 2>&1 &
pids+=($!)
sleep 2
kill -0 "${pids[-1]}" 2>/dev/null || { cat "$run/launcher.log" >&2; exit 1; }

cat <<INFO

  nodepool-temporal is running.

    ZooKeeper      127.0.0.1:$ZK_PORT
    Temporal       127.0.0.1:$TEMPORAL_PORT
    Temporal Web   http://127.0.0.1:$TEMPORAL_UI_PORT
    EC2 endpoint   http://127.0.0.1:$EC2_PORT (simulated AWS)
    launcher       bin/nodepool-launcher -c examples/nodepool.yaml
    logs           .run/*.log

  In another terminal, act as Zuul:

    bin/nodepool -c examples/nodepool.yaml request ubuntu-jammy
    bin/nodepool -c examples/nodepool.yaml list

  Ctrl-C stops everything.

INFO
tail -n 0 -F "$run/launcher.log" &
pids+=($!)
wait -n "${pids[@]:0:3}" || true
# Ctrl-C reaches every process of the terminal's group at once; give the trap a moment
# to run before calling the exit unexpected.
sleep 0.5
echo "run: a component exited on its own; see .run/*.log" >&2
