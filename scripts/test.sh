#!/usr/bin/env bash
# Everything the project checks: formatting, vet, and every test (unit, fuzz
# seeds, end-to-end calls on real sockets).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# One package at a time: the lab and call tests measure gaps of a few hundred
# milliseconds, which two packages' tests fighting over two cores would blur.
go test -count=1 -p 1 -timeout 20m ./...
