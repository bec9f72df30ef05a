#!/usr/bin/env bash
# Speaks the announcements of the callback dialplan with espeak-ng and writes them the way
# Asterisk's wav format reads them: OUT_DIR/<language>/<name>.wav (a name may have a folder:
# digits/9), 8000 Hz, mono, 16-bit
# signed PCM, silence trimmed at both ends, peaks normalized to -1 dBFS. The texts and
# voices are in examples/asterisk/sounds/prompts.tsv. The same table and the same
# espeak-ng and sox give the same bytes (no dither, sox's repeatable mode).
#
#   scripts/make_prompts.sh OUT_DIR [TABLE]
#
# The build runs it (target callback_prompts) into build/share/callback/sounds/.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  echo "usage: $0 OUT_DIR [TABLE]" >&2
  exit 2
fi
out_dir=$1
table=${2:-"$(cd "$(dirname "$0")/.." && pwd)/examples/asterisk/sounds/prompts.tsv"}

for tool in espeak-ng sox; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "make_prompts: $tool is not installed (scripts/setup.sh installs espeak-ng and sox)" >&2
    exit 1
  fi
done
[ -r "$table" ] || { echo "make_prompts: cannot read $table" >&2; exit 1; }

# Words per minute: a little slower than espeak-ng's 175, for a phone line.
speed=150

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count=0
line_no=0
while IFS=$'\t' read -r language name voice text || [ -n "$language" ]; do
  line_no=$((line_no + 1))
  case "$language" in '' | '#'* | language) continue ;; esac
  # The table names files and folders: nothing that could leave OUT_DIR.
  # A name may have one folder, as Asterisk's digits/9.
  if ! [[ $language =~ ^[A-Za-z0-9_-]{2,16}$ && $name =~ ^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)?$ && -n $voice &&
          -n $text ]]; then
    echo "make_prompts: $table: line $line_no: expected language, name, voice and text separated by tabs" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$out_dir/$language/$name")"
  printf '%s' "$text" | espeak-ng -v "$voice" -s "$speed" -b 1 --stdin -w "$work/spoken.wav"
  # Trim (reverse, trim the start, reverse back), resample with sox's best filter, then
  # normalize the peak; written to a temporary name first so a failure leaves no half file.
  sox -R -D -V1 "$work/spoken.wav" -r 8000 -c 1 -b 16 -e signed-integer "$work/prompt.wav" \
    silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse \
    rate -v 8000 \
    gain -n -1
  mv -f "$work/prompt.wav" "$out_dir/$language/$name.wav"
  count=$((count + 1))
done <"$table"

if [ "$count" -eq 0 ]; then
  echo "make_prompts: $table has no prompts" >&2
  exit 1
fi
echo "make_prompts: $count prompts in $out_dir"
