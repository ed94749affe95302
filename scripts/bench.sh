#!/usr/bin/env bash
# `make bench`: builds the benchmark (bin/npbench) and runs it against the binaries in
# bin/ (make bench builds them first). See docs/benchmarks.md for what it measures.
#
# usage: scripts/bench.sh [npbench flags]
#        make bench BENCH_FLAGS="--quick"
#        make bench BENCH_FLAGS="--driver aws --scenarios burst"
#        make bench BENCH_FLAGS="--waiting 10000"            # 10,000 requests waiting at max-servers 2
#        make bench BENCH_FLAGS="--scenarios burst --burst 1000"  # with the engine floor
#        make bench BENCH_FLAGS="--cost 1,10,100,1000"        # cost per node by burst size
#        make bench BENCH_FLAGS="--cluster --scenarios burst" # on the production topology
#
# Flags come from BENCH_FLAGS and then from the arguments; `scripts/bench.sh -h` lists
# them. The report goes to standard output, progress to standard error. The run stops
# every process it started, also on Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

go build -trimpath -o bin/npbench ./bench
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags.
exec bin/npbench --bin bin ${BENCH_FLAGS:-} "$@"
