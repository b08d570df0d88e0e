#!/usr/bin/env bash
# What the demo needs on Debian 12 / Ubuntu, and nothing more: the build's
# system packages and ffmpeg (the demo's archive records through it).
# scripts/setup.sh adds what the tests need. A progress line per step.
# Extra Debian package names given as arguments are installed with these.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { printf 'setup [%3ss] %s\n' "$(($(date +%s) - t0))" "$*"; }

#   gcc g++ libc6-dev cmake nasm pkg-config   the build: libjpeg-turbo (vendored), OpenH264 (C++)
#   ffmpeg                                    the archiver's muxer (the demo records)
PACKAGES=(gcc g++ libc6-dev cmake nasm pkg-config ffmpeg "$@")

step "checking ${#PACKAGES[@]} system packages"
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  step "apt-get update"
  $SUDO apt-get update -qq
  step "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "system packages present"
fi
if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing: install it with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
step "Rust $(rustc --version | cut -d' ' -f2) present"
