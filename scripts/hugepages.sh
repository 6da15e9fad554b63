#!/usr/bin/env bash
# Reserves (or releases) 2 MiB hugepages for DPDK. shardnet-dpdk's Eal::default_args() uses
# them (--in-memory) when at least 256 MiB are free, and plain memory (--no-huge -m 512)
# otherwise, so this is optional: hugepages make mempools faster (fewer TLB misses) and are
# what a real NIC's DMA wants.
#
#   scripts/hugepages.sh [PAGES]   reserve PAGES pages (default 256, i.e. 512 MiB)
#   scripts/hugepages.sh 0         give them back
set -euo pipefail
pages=${1:-256}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "$pages" | $SUDO tee /proc/sys/vm/nr_hugepages >/dev/null
grep -E '^HugePages_(Total|Free)|^Hugepagesize' /proc/meminfo
got=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
if [ "$got" -lt "$pages" ]; then
  echo "only $got of $pages hugepages could be reserved (memory is fragmented)" >&2
  exit 1
fi
