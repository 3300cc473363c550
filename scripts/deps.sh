#!/usr/bin/env bash
# Installs what Parley's build and tests need and is missing: Debian packages
# (as root, via apt) and Go modules. Safe to run again: it only installs what
# is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if ! command -v go >/dev/null; then
  echo "deps: Go 1.26 or later is required (https://go.dev/dl/); it is not on PATH" >&2
  exit 1
fi

need=()
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev pkg-config)
pkg-config --exists opusfile 2>/dev/null || need+=(libopusfile-dev pkg-config)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
# The network tests build NATs and firewalls in namespaces and capture packets.
# They need root; without root they skip (outside CI), so these are only
# installed when we are root.
if [ "$(id -u)" = 0 ]; then
  command -v ip >/dev/null || need+=(iproute2)
  command -v iptables >/dev/null || need+=(iptables)
  command -v nft >/dev/null || need+=(nftables)
  command -v tcpdump >/dev/null || need+=(tcpdump)
  command -v ethtool >/dev/null || need+=(ethtool)
  # The login server's PostgreSQL store is tested against a real server.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  # The browser tests drive Debian's headless Chromium (web client).
  command -v chromium >/dev/null || need+=(chromium)
  # The ACME test gets and renews certificates from Pebble, Let's Encrypt's
  # test CA, in the lab (curl reads its root certificate there).
  command -v pebble >/dev/null || need+=(pebble)
  command -v curl >/dev/null || need+=(curl)
  # The relay's interop test and `make bench` use coturn's own TURN client and
  # load generator (turnutils_uclient, turnutils_peer) and its turnserver.
  command -v turnutils_uclient >/dev/null || need+=(coturn)
  # A lab router that maps ports when asked (UPnP IGD, NAT-PMP): miniupnpd,
  # nftables build. Its package ships no service, so nothing starts on
  # install; the lab runs it in a router's namespace (internal/netlab).
  command -v miniupnpd >/dev/null || need+=(miniupnpd-nftables)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages: ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts and enables coturn's daemon on install (under systemd): it
  # would hold port 3478, which `make up` and the tests want. Only the tools
  # are needed; the benchmark starts its own turnserver.
  if [[ " ${need[*]} " == *" coturn "* ]]; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now coturn.service >/dev/null 2>&1 || true
    else
      invoke-rc.d coturn stop >/dev/null 2>&1 || true
    fi
  fi
fi

go mod download

# The browser tests check the page with axe-core (accessibility), a pinned
# version kept in .cache/npm (ignored by git); without npm those checks skip
# (and fail under CI).
AXE_CORE=4.10.3
if ! grep -qs "\"version\": \"$AXE_CORE\"" .cache/npm/node_modules/axe-core/package.json; then
  if command -v npm >/dev/null; then
    echo "deps: installing axe-core@$AXE_CORE into .cache/npm" >&2
    npm install --prefix .cache/npm --no-save --no-audit --no-fund --silent "axe-core@$AXE_CORE" >&2 ||
      echo "deps: could not install axe-core: the browser tests' accessibility checks will skip" >&2
  else
    echo "deps: npm is not installed: the browser tests' accessibility checks (axe-core) will skip" >&2
  fi
fi
