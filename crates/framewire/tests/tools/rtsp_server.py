#!/usr/bin/env python3
"""A real RTSP server for framewire's tests: GStreamer's RTSP server
(gst-rtsp-server, through python3-gi) serving a live test picture.

    rtsp_server.py --port 8554 --codec h264|h265|mjpeg [--size 640x360] [--fps 30] [--gop 30]
                   [--user NAME:PASSWORD] [--bitrate KBIT] [--pattern ball|snow|...]
    rtsp_server.py --port 8555 --relay rtsp://127.0.0.1:8554/cam

With --relay, it serves what another RTSP server sends (H.264, no
re-encoding: depayloaded and payloaded again, one upstream session shared
by every client), as a relay or NVR restreams a camera.

Serves rtsp://127.0.0.1:PORT/cam (RTP over UDP or TCP, as the client asks)
and prints "ready" on stdout once it listens. Runs until killed. With
--user, a client must authenticate with HTTP Digest as that user.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--codec", choices=["h264", "h265", "mjpeg"], default="h264")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--gop", type=int, default=30)
    ap.add_argument("--user", help="NAME:PASSWORD a client must give (Digest)")
    ap.add_argument("--pattern", default="ball", help="videotestsrc pattern (snow: hard to compress)")
    ap.add_argument("--bitrate", type=int, default=0, help="H.264/H.265 bit rate in kbit/s (default: the encoder's)")
    ap.add_argument("--relay", help="serve this RTSP URL's H.264 instead of a test picture")
    a = ap.parse_args()
    w, h = a.size.split("x")
    src = (
        f"videotestsrc is-live=true pattern={a.pattern} ! video/x-raw,width={w},height={h},framerate={a.fps}/1 "
        "! videoconvert ! video/x-raw,format=I420"
    )
    rate = f"bitrate={a.bitrate} " if a.bitrate else ""
    enc = {
        "h264": f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={a.gop} bframes=0 {rate}"
        "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
        "h265": f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={a.gop} {rate}"
        "! rtph265pay name=pay0 pt=96 config-interval=-1",
        "mjpeg": "jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26",
    }[a.codec]
    launch = f"( {src} ! {enc} )"
    if a.relay:
        launch = (
            f"( rtspsrc location={a.relay} protocols=tcp latency=0 ! rtph264depay "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if a.user:
        name, password = a.user.split(":", 1)
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_digest(name, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{a.port}", file=sys.stderr)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
