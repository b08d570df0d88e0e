#!/usr/bin/env python3
"""A real RTSP server for framewire's tests: GStreamer's RTSP server
(gst-rtsp-server, through python3-gi) serving a live test picture.

    rtsp_server.py --port 8554 --codec h264|h265|mjpeg [--size 640x360] [--fps 30] [--gop 30]
                   [--user NAME:PASSWORD] [--bitrate KBIT] [--pattern ball|snow|...]
    rtsp_server.py --port 8555 --relay rtsp://127.0.0.1:8554/cam
    rtsp_server.py --port 8556 --codec h264 --size 1920x1080 --clip 10 [...]

With --relay, it serves what another RTSP server sends (H.264, no
re-encoding: depayloaded and payloaded again, one upstream session shared
by every client), as a relay or NVR restreams a camera.

With --clip SECS (H.264 only), the picture is encoded once at start, SECS
seconds of it, and then served from memory in a loop at --fps: the
server's own work per frame is payloading, not encoding, as when a
benchmark's cameras must not compete with what is measured. SECS should
be a whole number of GOPs, so that the loop starts on a keyframe.

Serves rtsp://127.0.0.1:PORT/cam (RTP over UDP or TCP, as the client asks)
and prints "ready" on stdout once it listens. Runs until killed. With
--user, a client must authenticate with HTTP Digest as that user.
"""
import argparse
import sys
import time

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
    ap.add_argument("--clip", type=int, default=0, help="encode SECS of H.264 once and serve it in a loop")
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
    clip = None
    if a.clip:
        if a.codec != "h264":
            sys.exit("--clip serves H.264 only")
        clip = encode_clip(f"{src} ! {enc.split(' ! video/x-h264')[0]}", a.clip * a.fps)
        launch = (
            "( appsrc name=clip is-live=true format=time do-timestamp=false max-buffers=4 leaky-type=downstream "
            f"caps=video/x-h264,stream-format=byte-stream,alignment=au,framerate={a.fps}/1 "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if clip:
        factory.connect("media-configure", lambda _f, media: play_clip(media, clip, a.fps))
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


def encode_clip(pipeline, frames):
    """The access units of `frames` frames of `pipeline`, encoded once."""
    p = Gst.parse_launch(
        pipeline.replace("is-live=true", f"num-buffers={frames}")
        + " ! video/x-h264,profile=baseline,stream-format=byte-stream,alignment=au ! appsink name=out sync=false"
    )
    out = p.get_by_name("out")
    p.set_state(Gst.State.PLAYING)
    units = []
    while True:
        sample = out.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        units.append(buf.extract_dup(0, buf.get_size()))
    p.set_state(Gst.State.NULL)
    if len(units) != frames:
        sys.exit(f"the clip has {len(units)} frames, not {frames}")
    return units


def play_clip(media, units, fps):
    """Pushes the clip's access units into this media's source, `fps` a
    second of the pipeline's running time, each stamped with its own
    regular time, until the media is torn down."""
    src = media.get_element().get_by_name("clip")
    state = {"n": 0, "rt0": None, "live": True}

    def gone(*_):
        state["live"] = False

    media.connect("unprepared", gone)

    def tick():
        if not state["live"]:
            return False
        clock = src.get_clock()
        if clock is None or src.current_state != Gst.State.PLAYING:
            return True
        rt = clock.get_time() - src.get_base_time()
        if state["rt0"] is None:
            state["rt0"] = rt
        due = (rt - state["rt0"]) * fps // Gst.SECOND + 1
        while state["n"] < due:
            n = state["n"]
            buf = Gst.Buffer.new_wrapped(units[n % len(units)])
            buf.pts = state["rt0"] + n * Gst.SECOND // fps
            buf.duration = Gst.SECOND // fps
            src.emit("push-buffer", buf)
            state["n"] += 1
        return True

    GLib.timeout_add(3, tick)


if __name__ == "__main__":
    main()
