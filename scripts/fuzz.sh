#!/usr/bin/env bash
# Runs every fuzz target of the module, one after another, each for
# FUZZTIME (default 30s): `make fuzz` or `FUZZTIME=5m scripts/fuzz.sh`.
# `make test` already runs every target's seed corpus (f.Add and testdata/)
# as ordinary tests. New inputs that crash a target are written under the
# package's testdata/fuzz/ by go test; commit them to keep them as seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
fuzztime=${FUZZTIME:-30s}
n=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
    n=$((n + 1))
  done
done
echo "fuzzed $n targets, $fuzztime each"
