#!/usr/bin/env bash
# The relay's benchmarks (`make bench`): the fast path's cost and allocations,
# the memory of an allocation, and Parley's relay beside coturn and plain
# pion/turn, each pinned to core 0 with the load on core 1, in alternating
# rounds (PARLEY_RELAYBENCH_ROUNDS, default 3; about 4 minutes a round).
# docs/performance.md ("Relay beside coturn") explains the numbers.
# Needs Debian's coturn (scripts/deps.sh installs it as root) and 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
go test -run '^$' -bench 'ForwardChannelData' -benchtime 3s ./relay/
go test -run '^$' -bench 'MemoryPerAllocation' -benchtime 1x ./relay/
go test -run '^$' -bench 'RelayBesideCoturn' -benchtime 1x -timeout 60m ./relay/
