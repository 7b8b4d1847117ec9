#!/usr/bin/env bash
# Screenshots of a timeline page (src/sim/timeline.rs) in headless Chromium.
#
#   scripts/timeline_shot.sh HTML_FILE OUT_PNG [WIDTHxHEIGHT...]
#
# Sizes default to 1600x900 and 1024x700. With one size the shot is OUT_PNG;
# with several, each is OUT_PNG with the size appended (out-1600x900.png).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 HTML_FILE OUT_PNG [WIDTHxHEIGHT...]" >&2
    exit 2
fi
html=$1
out=$2
shift 2
sizes=("$@")
if [ "${#sizes[@]}" -eq 0 ]; then
    sizes=(1600x900 1024x700)
fi

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "$0: chromium not found; install it with: apt-get install -y chromium" >&2
    exit 1
fi
if [ ! -f "$html" ]; then
    echo "$0: no such file: $html" >&2
    exit 1
fi
absolute=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

for size in "${sizes[@]}"; do
    if ! [[ "$size" =~ ^([0-9]+)x([0-9]+)$ ]]; then
        echo "$0: bad size $size (want WIDTHxHEIGHT)" >&2
        exit 2
    fi
    width=${BASH_REMATCH[1]}
    height=${BASH_REMATCH[2]}
    target=$out
    if [ "${#sizes[@]}" -gt 1 ]; then
        target="${out%.png}-${size}.png"
    fi
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars \
        --window-size="$width,$height" --screenshot="$target" "file://$absolute" \
        >/dev/null 2>&1 || {
        echo "$0: chromium failed for $size" >&2
        exit 1
    }
    if [ ! -s "$target" ]; then
        echo "$0: chromium wrote no screenshot to $target" >&2
        exit 1
    fi
    echo "$target"
done
