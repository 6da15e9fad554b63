#!/usr/bin/env bash
# Soak: echo + load generator on shardnet over the in-process memory wire with seeded loss,
# rr and crr loads alternating, for SECONDS (default 60), sampled every second; then the
# Monte-Carlo TCP campaign (stack/tests/campaign.rs) with as many seeds as fit in another
# SECONDS. Fails if memory or a leak indicator grows after warm-up, if any response is
# mismatched, if a connection is left open, or if any campaign seed breaks an invariant.
#
#   scripts/soak.sh [SECONDS]
#
# Environment:
#   SOAK_OUT       where the results go (default target/soak): soak.csv, soak.png, soak.json,
#                  campaign.json, campaign.txt
#   SOAK_ARGS      extra arguments of the soak binary (see `cargo run --release -p
#                  shardnet-apps --bin soak -- --help`: --loss, --phase, --conns, --shards, ...)
#   CAMPAIGN_SECS  seconds for the campaign (default SECONDS; 0 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
out="${SOAK_OUT:-target/soak}"
campaign_secs="${CAMPAIGN_SECS:-$secs}"
mkdir -p "$out"

echo "== soak: ${secs} s of echo + loadgen (rr/crr alternating) on the lossy memory wire"
cargo build --locked --release -p shardnet-apps --bin soak
# shellcheck disable=SC2086
cargo run --locked --release -p shardnet-apps --bin soak -- \
    --duration "$secs" --csv "$out/soak.csv" --png "$out/soak.png" --json "$out/soak.json" \
    ${SOAK_ARGS:-}

if [ "$campaign_secs" != 0 ]; then
    echo "== Monte-Carlo campaign: as many seeds as fit in ${campaign_secs} s"
    SHARDNET_CAMPAIGN_SECS="$campaign_secs" SHARDNET_CAMPAIGN_JSON="$out/campaign.json" \
        cargo test --locked --release -p shardnet --test campaign -- --nocapture \
        | tee "$out/campaign.txt"
fi
echo "== soak passed: results in $out"
