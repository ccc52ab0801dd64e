#!/usr/bin/env bash
# Regenerates the recorded prompts the gateway plays itself, without the model: when a call
# cannot be served (no such agent; later, the Live service failing for good), the caller hears
# one of these instead of dead air. 8 kHz mono G.711 mu-law WAV, ready to send to Twilio as is.
# Needs espeak-ng and sox (Debian packages of the same names). Deterministic (sox -D).
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

prompt() {  # name text
    espeak-ng -v en-us -s 160 -w "$tmp/$1.wav" "$2"
    sox -D "$tmp/$1.wav" -r 8000 -c 1 -e mu-law -b 8 "$1.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0.1 0.2
}

prompt line_unavailable "Sorry, this line is not available right now. Please try again later. Goodbye."
