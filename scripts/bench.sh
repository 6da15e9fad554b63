#!/usr/bin/env bash
# shardnet next to the Linux kernel, in one run on this machine: builds the apps and the
# benchmark binaries (release), then runs the scenario matrix (bench/src/bin/matrix.rs) as
# root and writes bench/results/<date>-<host>.json, .md and PNG plots.
#
# Usage: scripts/bench.sh [--quick] [matrix options...]
#   --quick       every part once, short (CI smoke: a few minutes; with --strict, exit 1
#                 if anything but the DPDK parts could not be measured)
#   --reps N      repetitions per stack and scenario (default 5)
#   --secs S      seconds per load (default 4)
#   --only LIST   memory,veth,dpdk,ceiling,churn,scale
#   --scenarios LIST  rr1,rr64,crr_server_close,crr_client_close,stream,rr64_open (side-by-side rows)
#   (cargo run --release -p shardnet-bench --bin matrix -- --help for the rest)
#
# Needs: root (network namespaces, AF_XDP), iproute2, ethtool, iputils-ping, util-linux
# (taskset), DPDK's development files for the dpdk rows (libdpdk-dev, libclang-dev,
# pkg-config), and a TrueType font for the plots (fonts-dejavu-core). The namespace parts
# take the exclusive lock /tmp/shardnet-af-xdp-interop.lock that every namespace test takes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi

target="${CARGO_TARGET_DIR:-target}"
features=()
if pkg-config --exists libdpdk 2>/dev/null; then
  features=(--features dpdk)
else
  echo "bench.sh: no libdpdk (pkg-config): the apps are built without DPDK; the DPDK rows will say why they did not run" >&2
fi
cargo build --locked --release -p shardnet-apps "${features[@]}" --bin loadgen --bin echo
cargo build --locked --release -p shardnet-bench --bin matrix --bin xdp_forward --bin conn_memory
# The raw DPDK forwarding ceiling, where this branch has it.
if [ -f bench/src/bin/dpdk_forward.rs ] && [ ${#features[@]} -gt 0 ]; then
  cargo build --locked --release -p shardnet-bench --features dpdk --bin dpdk_forward || \
    echo "bench.sh: dpdk_forward did not build; its row will say so" >&2
fi

export SHARDNET_BENCH_COMMAND="scripts/bench.sh $*"
exec "$target/release/matrix" --bin-dir "$target/release" "$@"
