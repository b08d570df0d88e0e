#!/usr/bin/env bash
# Installs what framewire needs to build and test on Debian 12 / Ubuntu:
# the demo's part (scripts/setup-demo.sh), the tests' system packages
# through apt (idempotent: only what is missing), and the cargo tools the
# test script uses. Safe to run again and again.
# Extra Debian package names given as arguments are installed with the rest
# (scripts/setup-bench.sh uses that for the benchmarks' peers).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the demo needs first (the build's packages and ffmpeg), then what
# the tests need besides, by purpose:
#   ffmpeg                  codec interop tests, archiver backend, benchmarks
#   qemu-system-x86 busybox-static kmod v4l-utils python3
#                           V4L2 device tests: a VM with the kernel's vivid driver
#                           (scripts/vivid-vm.sh; v4l2-ctl runs inside it)
#   xvfb libgl1-mesa-dri x11-xserver-utils x11-apps xauth
#                           X11 tests: virtual displays, Mesa llvmpipe for the
#                           viewer window, xsetroot/xrandr, xwd screenshots
#   python3-prometheus-client  the reference parser the /metrics test checks its output with
#   chromium                browser tests of the controller's web UI (web-tests/, playwright-core)
#   python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,bad,ugly}
#                           a real RTSP server for the ingest tests (GStreamer's, with
#                           x264enc, x265enc, jpegenc and their RTP payloaders)
#   gstreamer1.0-tools gstreamer1.0-libav
#                           GStreamer as an RTSP client of the node's server
#                           (gst-launch-1.0, rtspsrc, avdec_h264)
#   systemd                 systemd-analyze: the service unit is verified (packaging/)
#   openssl                 a certificate's key hash for Chromium to trust (the HTTPS browser test)
#   nftables iproute2       the site tests' link between namespaces: a DNAT through a delay proxy, tbf rates
TEST_PACKAGES=(qemu-system-x86 busybox-static kmod v4l-utils python3
  xvfb libgl1-mesa-dri x11-xserver-utils x11-apps xauth python3-prometheus-client chromium
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools gstreamer1.0-libav systemd openssl nftables iproute2 "$@")
bash scripts/setup-demo.sh "${TEST_PACKAGES[@]}"

# cargo-fuzz drives the fuzz smoke run (stable toolchain, --sanitizer none).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "setup: installing cargo-fuzz $CARGO_FUZZ_VERSION (about two minutes, once)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi
# cargo-deb builds the Debian package (scripts/package-deb.sh, tested in CI).
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "setup: installing cargo-deb $CARGO_DEB_VERSION (under a minute, once)"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
# The browser tests' driver (playwright-core, pinned by web-tests/package-lock.json;
# it drives Debian's chromium, it downloads no browser). Needs Node.js 18 or later.
if ! command -v npm >/dev/null; then
  # Debian packages npm apart from nodejs (NodeSource's nodejs bundles it).
  echo "setup: installing nodejs and npm for the browser tests"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm ci --prefix web-tests --no-audit --no-fund --silent
# The V4L2 test VM's kernel and initramfs (Debian's kernel package, downloaded once, cached).
bash scripts/vivid-vm.sh --prepare
echo "setup: done"
