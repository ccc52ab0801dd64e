#!/usr/bin/env bash
# Regenerates the bundled speech fixtures used by tests, the Live simulator and the demo.
#
#   caller_*.wav  what a phone caller says: flite voice "slt", 8 kHz mono G.711 mu-law WAV
#   agent_*.wav   what the (simulated) model replies: espeak-ng "en-us", 24 kHz mono PCM16 WAV
#   index.json    every file with its role, text, rate, encoding and duration
#
# Deterministic: same tools, same text -> same bytes (sox runs with -D, i.e. no dither).
# Needs flite, espeak-ng and sox (Debian packages of the same names).
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C

for tool in flite espeak-ng sox soxi; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Trim leading/trailing silence, then keep a short pad so end-of-speech detection is
# exercised by the audio itself rather than by a cut-off.
trim=(silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0.05 0.1)

entries=()

add_entry() {  # name role file text rate encoding
    local dur bytes
    dur=$(soxi -D "$3")
    bytes=$(stat -c %s "$3")
    entries+=("$(printf '  {"name": "%s", "role": "%s", "file": "%s", "text": "%s", "sample_rate": %s, "encoding": "%s", "duration_s": %.3f, "bytes": %s}' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$dur" "$bytes")")
}

caller() {  # name text
    flite -voice slt -t "$2" -o "$tmp/$1.wav"
    sox -D "$tmp/$1.wav" -r 8000 -c 1 -e mu-law -b 8 "$1.wav" "${trim[@]}" norm -4
    add_entry "$1" caller "$1.wav" "$2" 8000 mulaw
}

agent() {  # name text
    espeak-ng -v en-us -s 175 -p 40 -w "$tmp/$1.wav" "$2"
    sox -D "$tmp/$1.wav" -r 24000 -c 1 -e signed-integer -b 16 "$1.wav" "${trim[@]}" norm -3
    add_entry "$1" agent "$1.wav" "$2" 24000 pcm16
}

# The booking conversation of gateway/assets/scenarios/demo.yaml, in order. The agent_*
# order below is also the simulator's default reply cycle.
caller caller_book_table "Hi, I'd like to book a table for two tomorrow evening."
agent agent_greeting "Hello, thanks for calling. I can help with that. What time would you like?"
caller caller_seven_thirty "Seven thirty would be great."
agent agent_options "Of course. For tomorrow evening we have tables at six, seven thirty and nine o'clock. Our terrace is open too, and there is a set menu on weekdays."
caller caller_barge_in "Actually, wait, can we make it eight?"
agent agent_moved "No problem, I have moved it to eight o'clock. A table for two, tomorrow evening."
caller caller_goodbye "Thanks, goodbye."
agent agent_goodbye "You're welcome. Enjoy your evening, goodbye."

{
    echo "["
    for i in "${!entries[@]}"; do
        sep=","
        [[ $i -eq $((${#entries[@]} - 1)) ]] && sep=""
        echo "${entries[$i]}$sep"
    done
    echo "]"
} > index.json

echo "wrote ${#entries[@]} fixtures to $(pwd)" >&2
