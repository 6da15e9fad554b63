#!/usr/bin/env bash
# Lists every call that can panic by design (`unwrap`, `expect`, `panic!`, `unreachable!`,
# `todo!`, `unimplemented!`) in the stack's library code, test code left out, and fails if one
# is not in scripts/audit-panics.allow with the reason it cannot fail on network input.
#
# Left out as test code: files that only exist as test modules (`tests.rs`, `*_tests.rs`, and
# any file declared with `#[cfg(test)] mod name;`) and the body of every `#[cfg(test)]` item.
# clippy already denies `unwrap_used`/`expect_used` outside tests (stack/src/lib.rs), so what
# remains is mostly the `unreachable!` of a proven invariant; this script keeps the list
# reviewed.
#
#   scripts/audit-panics.sh          check (exit 1 on an unreviewed site)
#   scripts/audit-panics.sh --list   print every site
set -euo pipefail
cd "$(dirname "$0")/.."
allow=scripts/audit-panics.allow

# Files declared as test-only modules.
test_mods=$( (grep -rhE -A1 '^\s*#\[cfg\(test\)\]\s*$' stack/src --include=*.rs || true) \
    | (grep -oE '^\s*(pub(\([a-z]+\))? )?mod [a-z_0-9]+;' || true) \
    | (grep -oE '[a-z_0-9]+;' || true) | tr -d ';' | sort -u)

sites=$(
    find stack/src -name '*.rs' | sort | while read -r f; do
        base=$(basename "$f" .rs)
        case "$base" in tests | *_tests) continue ;; esac
        if printf '%s\n' "$test_mods" | grep -qx "$base"; then continue; fi
        awk -v file="$f" '
            # Skip the item after #[cfg(test)] (a module or function body), by brace depth.
            /#\[cfg\(test\)\]/ { skip_next = 1; next }
            skip_next && !skipping {
                if ($0 ~ /;[[:space:]]*$/ && $0 !~ /\{/) { skip_next = 0; next }
                if ($0 ~ /\{/) { skipping = 1; depth = 0 }
            }
            skipping {
                n = gsub(/\{/, "{"); m = gsub(/\}/, "}"); depth += n - m
                if (depth <= 0) { skipping = 0; skip_next = 0 }
                next
            }
            /^[[:space:]]*\/\// { next }
            /\.unwrap\(\)|\.expect\(|panic!\(|unreachable!\(|todo!\(|unimplemented!\(/ {
                line = $0; sub(/^[[:space:]]+/, "", line)
                printf "%s:%d: %s\n", file, NR, line
            }
        ' "$f"
    done
)

if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "$sites"
    exit 0
fi

missing=0
while IFS= read -r site; do
    [ -z "$site" ] && continue
    file=${site%%:*}
    code=${site#*: }
    # An allow entry is `file<TAB>code<TAB>reason`: matched on file and code, not line number.
    if ! awk -F'\t' -v f="$file" -v c="$code" '$1 == f && $2 == c { found = 1 } END { exit !found }' "$allow"; then
        echo "unreviewed: $site"
        missing=1
    fi
done <<< "$sites"
count=$(printf '%s\n' "$sites" | grep -c . || true)
if [ "$missing" = 1 ]; then
    echo "audit-panics: add each site above to $allow with why it cannot fail, or remove it"
    exit 1
fi
echo "audit-panics: $count reviewed site(s) in stack/src library code, none unreviewed"
