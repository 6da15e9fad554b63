#!/usr/bin/env bash
# Test hosts for the AF_XDP interop tests: two network namespaces joined by a veth pair.
#
#   snet-k  the Linux kernel peer: veth "snet-k0", 198.18.0.1/24
#   snet-s  the shardnet side:     veth "snet-s0", no kernel IPv4 address (shardnet uses
#           198.18.0.2 through AF_XDP on this device)
#
# Usage: scripts/netns.sh up|down|install
#   up       (re)creates both namespaces and the veth pair; idempotent: leftovers of an earlier
#            (failed) run are deleted first
#   down     deletes both namespaces (and with them the veth pair); idempotent
#   install  installs what the tests need (iproute2, ethtool, python3) with apt-get
#
# Addresses come from 198.18.0.0/15 (RFC 2544) only. The veth ends have one RX and one TX
# queue each (native XDP on veth needs equal queue counts on both ends). Checksum and
# segmentation offloads are off on the kernel side, so that the kernel sends complete
# checksums and MTU-sized frames (AF_XDP has no offload metadata).
set -euo pipefail

NS_K=snet-k
NS_S=snet-s
DEV_K=snet-k0
DEV_S=snet-s0
ADDR_K=198.18.0.1/24

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  # An install can fail once on these machines: retry once.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
    { sleep 2; apt-get install -y -qq --no-install-recommends "${missing[@]}"; }
}

install() {
  local need=()
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}

down() {
  ip netns del "$NS_K" 2>/dev/null || true
  ip netns del "$NS_S" 2>/dev/null || true
  # A veth left in the root namespace by a run that died half-way.
  ip link del "$DEV_K" 2>/dev/null || true
  ip link del "$DEV_S" 2>/dev/null || true
}

up() {
  install
  down
  trap 'down' ERR
  ip netns add "$NS_K"
  ip netns add "$NS_S"
  ip link add "$DEV_K" numtxqueues 1 numrxqueues 1 type veth \
    peer name "$DEV_S" numtxqueues 1 numrxqueues 1
  ip link set "$DEV_K" netns "$NS_K"
  ip link set "$DEV_S" netns "$NS_S"
  ip -n "$NS_K" link set lo up
  ip -n "$NS_S" link set lo up
  ip -n "$NS_K" addr add "$ADDR_K" dev "$DEV_K"
  ip -n "$NS_K" link set "$DEV_K" up
  ip -n "$NS_S" link set "$DEV_S" up
  # The shardnet side must not answer for itself: no IPv6 (no DAD/ND traffic into the kernel).
  ip netns exec "$NS_S" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$NS_K" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$NS_K" ethtool -K "$DEV_K" tx off tso off gso off >/dev/null
  ip netns exec "$NS_S" ethtool -K "$DEV_S" tx off tso off gso off gro off >/dev/null 2>&1 || true
  trap - ERR
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install ;;
  *) echo "usage: $0 up|down|install" >&2; exit 2 ;;
esac
