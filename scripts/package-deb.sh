#!/usr/bin/env bash
# Builds framewire's Debian package with cargo-deb: the binary, the
# systemd unit, the default host configuration, the docs, the shared-memory
# ring's C header, shell completions and man pages (generated from the
# command line's definition). docs/operations.md, "Debian package".
#   ./scripts/package-deb.sh            release build → target/debian/framewire_*.deb
#   PROFILE=dev ./scripts/package-deb.sh   the debug binary the tests built (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
case "$PROFILE" in
  release) bin=target/release/framewire; cargo build --release --locked -p framewire ;;
  dev) bin=target/debug/framewire; [ -x "$bin" ] || cargo build --locked -p framewire ;;
  *) echo "PROFILE is release or dev" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: scripts/setup.sh installs it" >&2; exit 1; }
gen=target/package
rm -rf "$gen" && mkdir -p "$gen/completions" "$gen/man"
"$bin" completions bash > "$gen/completions/framewire"
"$bin" completions zsh > "$gen/completions/_framewire"
"$bin" completions fish > "$gen/completions/framewire.fish"
"$bin" man "$gen/man" 2>/dev/null
gzip -9n "$gen"/man/*.1
# The debug binary is not stripped: stripping it takes longer than the rest.
extra=()
[ "$PROFILE" = dev ] && extra=(--no-strip)
cargo deb --locked -p framewire --no-build --profile "$PROFILE" "${extra[@]}" -o target/debian/ 2>&1 | grep -v '^warning: ' || true
ls target/debian/framewire_*.deb
