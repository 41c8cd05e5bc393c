#!/usr/bin/env bash
# Installs the Debian packages mem1lab needs, skipping those already present.
#   scripts/deps.sh test        C toolchain for cgo (go-sqlite3) and Node for the tiny model server
#   scripts/deps.sh run         + OpenGL/X11 headers for the Fyne desktop build
#   scripts/deps.sh screenshot  + Xvfb and ImageMagick for headless screenshots
set -euo pipefail
want=(gcc pkg-config)
case "${1:-test}" in
  test) ;;
  run) want+=(libgl1-mesa-dev xorg-dev libxkbcommon-dev libwayland-dev) ;;
  screenshot) want+=(libgl1-mesa-dev xorg-dev libxkbcommon-dev libwayland-dev xvfb xauth imagemagick xdotool) ;;
  *) echo "deps.sh: unknown profile '$1' (want test, run or screenshot)" >&2; exit 2 ;;
esac
command -v node >/dev/null 2>&1 || want+=(nodejs npm)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
