#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, lints, unit and integration
# tests, benchmark smoke runs, the README's main job, and bounded fuzzing of every parser.
# CI (.ci/run) and the README's Quick start call this script.
#
# Environment:
#   FUZZ_SECONDS   seconds per fuzz target (default 15; 0 skips fuzzing)
#   SIM_SEEDS      seeds of the TCP simulation in release mode (default 500)
#   CAMPAIGN_SEEDS seeds per scenario of the Monte-Carlo campaign in release mode (default 200)
#   SOAK_SECONDS   seconds of the soak smoke run (default 30; 0 skips it)
#   BENCH_SMOKE=0  skip the benchmark matrix's quick run
#   SKIP_INSTALL=1 do not install anything (use what is on the machine)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq || true
  # On these machines an install can fail once with "cannot stat ... .deb": retry.
  for attempt in 1 2 3; do
    if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
      return 0
    fi
    echo "apt-get install failed (attempt $attempt), retrying" >&2
    sleep 3
  done
  return 1
}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  apt_install tcpdump
  # The AF_XDP interop tests: namespaces and veth (iproute2), offloads off (ethtool), ping,
  # and python3, bash /dev/tcp and socat as the Linux peer's clients and servers.
  apt_install iproute2 ethtool iputils-ping python3 socat
  # The DPDK crates (members of the workspace, so `--workspace` builds them): DPDK 22.11's
  # headers and libraries, libclang for bindgen, pkg-config to find them.
  apt_install libdpdk-dev libclang-dev pkg-config
  # The soak's and the benchmark matrix's PNG plots read a TrueType font at run time; the
  # matrix pins processes with taskset (util-linux).
  apt_install fonts-dejavu-core util-linux
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

# Tests that need an outside tool (tcpdump) fail instead of skipping when this is set.
export SHARDNET_REQUIRE_TOOLS=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked

step "cargo clippy and test of the apps with the dpdk feature"
cargo clippy --locked -p shardnet-apps --all-targets --features dpdk -- -D warnings
cargo test --locked -p shardnet-apps --features dpdk --lib --test cli --test shardnet_drivers
# The DPDK forwarding benchmark (bench feature dpdk; run by scripts/bench.sh, linted here).
cargo clippy --locked -p shardnet-bench --features dpdk --bins -- -D warnings

step "TCP simulation, ${SIM_SEEDS:=500} seeds, release build"
SHARDNET_SEEDS=$SIM_SEEDS cargo test --locked --release -p shardnet --test tcp_simulation

step "Monte-Carlo campaign, ${CAMPAIGN_SEEDS:=200} seeds per scenario, release build"
SHARDNET_CAMPAIGN_SEEDS=$CAMPAIGN_SEEDS cargo test --locked --release -p shardnet --test campaign -- --nocapture

step "audit: no unreviewed panicking call in stack/src"
scripts/audit-panics.sh

step "TCP bulk transfer of 1 GiB with 1% loss, release build"
cargo test --locked --release -p shardnet --test tcp_bulk -- --nocapture

step "DPDK: 1 GiB over a net_ring pair between two runtimes, release build"
cargo test --locked --release -p shardnet-dpdk --test ring_stacks -- --nocapture

step "benchmarks, once each in test mode"
cargo test --locked -p shardnet-bench --benches

step "the README's main job, short"
cargo run --locked --release -p shardnet-apps --bin loadgen -- --duration 1

if [ "${SOAK_SECONDS:=30}" != 0 ]; then
  step "soak smoke: ${SOAK_SECONDS}s of rr and crr with loss, memory and leak indicators checked"
  CAMPAIGN_SECS=0 scripts/soak.sh "$SOAK_SECONDS"
fi

if [ "${BENCH_SMOKE:-1}" != 0 ]; then
  # Every scenario of the side-by-side matrix once, short; --strict fails if anything but the
  # DPDK rows could not be measured. Results go to a scratch directory, not bench/results.
  step "benchmark matrix, quick (shardnet next to the kernel)"
  scripts/bench.sh --quick --strict --out "$(mktemp -d)"
fi

FUZZ_SECONDS=${FUZZ_SECONDS:-15}
if [ "$FUZZ_SECONDS" != 0 ]; then
  if ! command -v cargo-fuzz >/dev/null 2>&1 && [ "${SKIP_INSTALL:-0}" != 1 ]; then
    step "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  if command -v cargo-fuzz >/dev/null 2>&1; then
    # cargo-fuzz passes -Z flags to rustc; this toolchain is stable, and RUSTC_BOOTSTRAP lets
    # it accept them (the machine has exactly one toolchain, no nightly can be fetched).
    export RUSTC_BOOTSTRAP=1
    (
      cd stack
      for target in $(cargo fuzz list); do
        step "fuzz $target for ${FUZZ_SECONDS}s"
        mkdir -p "fuzz/corpus/$target"
        seeds=()
        [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
        log="fuzz/artifacts/$target.log"
        mkdir -p fuzz/artifacts
        if cargo fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
          -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
          grep -E '^Done|stat::number_of_executed_units|stat::peak_rss_mb' "$log" || tail -n 3 "$log"
        else
          # Show the failure itself (the panic or sanitizer report), not a backtrace's tail.
          grep -n -m1 -A 12 -E 'panicked|ERROR: AddressSanitizer|ERROR: libFuzzer|deadly signal|^ERROR' "$log" || tail -n 40 "$log"
          echo "fuzz target $target failed; the input is in stack/fuzz/artifacts/$target/, the log in $log" >&2
          exit 1
        fi
      done
    )
  else
    echo "cargo-fuzz is not available: fuzzing skipped" >&2
    exit 1
  fi
fi

step "all tests passed"
