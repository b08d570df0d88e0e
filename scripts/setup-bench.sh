#!/usr/bin/env bash
# Installs what `framewire bench relay` and `bench ingest` compare against, on
# Debian 12 / Ubuntu:
# GStreamer (the peer relay: tcpserversrc, gdppay/gdpdepay, tee, tcpserversink,
# fpsdisplaysink) and iperf3 (the loopback TCP ceiling), through scripts/setup.sh
# with the build dependencies. Idempotent: installs only what is missing.
# Not used by CI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

#   gstreamer1.0-tools         gst-launch-1.0
#   gstreamer1.0-plugins-base  tcp{client,server}{src,sink}, videotestsrc
#   gstreamer1.0-plugins-good  multifilesrc, imagefreeze
#   gstreamer1.0-plugins-bad   gdppay / gdpdepay, fpsdisplaysink
#   gstreamer1.0-x             ximagesink (bench latency's peer viewer)
#   iperf3                     loopback TCP ceiling
"$here/setup.sh" gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-x iperf3

gst-launch-1.0 --version | head -2
iperf3 --version | head -1
echo "setup-bench: done"
