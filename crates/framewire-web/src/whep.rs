//! WebRTC playback (WHEP, draft-ietf-wish-whep): `POST /whep/{node}/{stream}`
//! with the browser's SDP offer answers `201 Created` with the SDP answer
//! and the session's URL in `Location`; `DELETE` on that URL ends it.
//!
//! The video is H.264 as the node has it (a stream in another format is
//! taken as its `STREAM~h264` transcoding output), every access unit in
//! order from a keyframe, packetized by `str0m` (sans-IO WebRTC: ICE-lite
//! with one host candidate, DTLS-SRTP). A keyframe request from the
//! browser (PLI or FIR) goes to the stream's source as REQUEST_KEYFRAME.
//! Each session is one task with its own UDP socket on the web server's
//! address, and counts as a stream against the viewer's limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use framewire_controller::Preview;
use framewire_proto::Format;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::auth::Role;
use crate::limits::Slot;
use crate::server::LocalAddr;
use crate::{ApiError, App};

/// Largest SDP offer taken.
const MAX_OFFER: usize = 64 << 10;
/// A session whose browser never connects ends after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// At most one keyframe request a second goes to the source.
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);

/// The running sessions, by id: DELETE ends one.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, oneshot::Sender<()>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The address the session's UDP socket binds and announces: the web
/// server's own, or (listening on every address) the one the browser
/// reached.
fn media_ip(app: &App, local: Option<LocalAddr>) -> Option<IpAddr> {
    let ip = app.listen.ip();
    if !ip.is_unspecified() {
        return Some(ip);
    }
    local.map(|l| l.0.ip()).filter(|ip| !ip.is_unspecified())
}

/// The H.264 preview of `stream`: the stream itself, or its `~h264` output.
async fn h264_preview(app: &App, node: &str, stream: &str) -> Result<Preview, ApiError> {
    let p = app.backend.preview(node, stream, &[Format::H264]).await?;
    if p.open.format == Format::H264 {
        return Ok(p);
    }
    drop(p);
    let derived = format!("{stream}~h264");
    let p = app.backend.preview(node, &derived, &[Format::H264]).await?;
    if p.open.format != Format::H264 {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{node}/{stream} cannot be given as H.264"),
        ));
    }
    Ok(p)
}

/// POST /whep/{node}/{stream} (viewer): an SDP offer in, an SDP answer out.
pub(crate) async fn offer(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, stream)): Path<(String, String)>,
    local: Option<Extension<LocalAddr>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/sdp"));
    if !is_sdp {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a WHEP offer is Content-Type: application/sdp",
        ));
    }
    if body.len() > MAX_OFFER {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "SDP offer too large"));
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "SDP offer not UTF-8"))?;
    let offer = SdpOffer::from_sdp_string(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("SDP offer does not parse: {e}")))?;
    let ip = media_ip(&app, local.map(|Extension(l)| l)).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no address to offer WebRTC on: give --web a specific address",
        )
    })?;
    let slot = crate::stream::stream_slot(&app, &who.user)?;
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("no UDP port for WebRTC: {e}")))?;
    let local = socket
        .local_addr()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp")
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("host candidate: {e}")))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("SDP offer refused: {e}")))?;
    // The offer's video m-line, with H.264 this server can send.
    let video = video_mid(text).and_then(|mid| pick(&mut rtc, mid).map(|pt| (mid, pt)));
    if video.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the offer has no video this server can send (H.264, packetization mode 1)",
        ));
    }
    // The stream last: a refused offer starts nothing on the node.
    let preview = h264_preview(&app, &node, &stream).await?;
    let id = crate::auth::random_csrf();
    let (stop_tx, stop_rx) = oneshot::channel();
    app.whep.lock().insert(id.clone(), stop_tx);
    info!(node, stream, user = %who.user, %local, "WHEP session");
    let session = Session {
        rtc,
        socket,
        local,
        preview,
        video,
        connected: false,
        started: false,
        asked: None,
        frames: 0,
    };
    let app2 = app.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        if let Err(e) = session.run(stop_rx, &app2, slot).await {
            debug!(error = %e, "WHEP session ended");
        }
        app2.whep.lock().remove(&id2);
    });
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/whep/{node}/{stream}/{id}")),
        ],
        answer.to_sdp_string(),
    )
        .into_response())
}

/// DELETE /whep/{node}/{stream}/{id} (viewer): ends the session.
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((_node, _stream, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    match app.whep.lock().remove(&id) {
        Some(stop) => {
            let _ = stop.send(());
            Ok(StatusCode::OK.into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such WHEP session")),
    }
}

struct Session {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    preview: Preview,
    /// The negotiated video m-line and payload type.
    video: Option<(Mid, Pt)>,
    connected: bool,
    /// A keyframe went out: later frames decode.
    started: bool,
    /// When a keyframe was last asked of the source.
    asked: Option<Instant>,
    frames: u64,
}

impl Session {
    async fn run(mut self, mut stop: oneshot::Receiver<()>, app: &App, _slot: Slot<String>) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let born = Instant::now();
        let mut buf = vec![0u8; 2048];
        let mut stopping = false;
        loop {
            let deadline = match self.poll().await? {
                Some(t) => t,
                None => return Ok(()),
            };
            if !self.connected && born.elapsed() > CONNECT_TIMEOUT {
                return Err("the browser did not connect".into());
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r.map_err(|e| err(&e))?;
                    if let Ok(contents) = (&buf[..n]).try_into() {
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents,
                        });
                        self.rtc.handle_input(input).map_err(|e| err(&e))?;
                    }
                }
                f = self.preview.frames.recv() => match f {
                    Some(f) => self.frame(&f)?,
                    None => {
                        self.rtc.disconnect();
                        return Ok(());
                    }
                },
                () = sleep => self.rtc.handle_input(Input::Timeout(Instant::now())).map_err(|e| err(&e))?,
                r = &mut stop, if !stopping => {
                    let _ = r;
                    stopping = true;
                    self.rtc.disconnect();
                }
                _ = app.stopped() => {
                    self.rtc.disconnect();
                    return Ok(());
                }
            }
        }
    }

    /// Sends what the connection has to send and takes its events; the
    /// next deadline, or `None` when it ended.
    async fn poll(&mut self) -> Result<Option<Instant>, String> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(None);
            }
            match self.rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(t) => return Ok(Some(t)),
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.keyframe();
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return Ok(None),
                    Event::KeyframeRequest(_) => self.keyframe(),
                    _ => {}
                },
            }
        }
    }

    /// Asks the source for a keyframe (at most once a second).
    fn keyframe(&mut self) {
        if self.asked.is_some_and(|t| t.elapsed() < KEYFRAME_INTERVAL) {
            return;
        }
        self.asked = Some(Instant::now());
        if let Some(k) = &self.preview.keyframes {
            let _ = k.try_send(());
        }
    }

    /// One access unit: written from the first keyframe once connected.
    fn frame(&mut self, f: &framewire_controller::PreviewFrame) -> Result<(), String> {
        let keyframe = f.flags & 1 != 0;
        let Some((mid, pt)) = self.video.filter(|_| self.connected) else {
            return Ok(());
        };
        // After a gap (the preview skipped to a keyframe), only a keyframe.
        if f.flags & 2 != 0 && !keyframe {
            self.started = false;
        }
        self.started |= keyframe;
        if !self.started {
            self.keyframe();
            return Ok(());
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(());
        };
        let ticks = u64::try_from(u128::from(f.timestamp_ns) * 90_000 / 1_000_000_000).unwrap_or(0);
        writer
            .write(pt, Instant::now(), MediaTime::from_90khz(ticks), f.data.to_vec())
            .map_err(|e| e.to_string())?;
        self.frames += 1;
        Ok(())
    }
}

/// The payload type for H.264 in packetization mode 1: constrained
/// baseline (what the node's encoder makes) if the browser takes it.
fn pick(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    let h264 = |p: &&str0m::format::PayloadParams| {
        let s = p.spec();
        s.codec == Codec::H264 && s.format.packetization_mode == Some(1)
    };
    let params: Vec<_> = writer.payload_params().filter(h264).cloned().collect();
    let best = params
        .iter()
        .find(|p| p.spec().format.profile_level_id.is_some_and(|id| id >> 8 == 0x42e0))
        .or(params.first());
    if best.is_none() {
        warn!("the browser offered no H.264 in packetization mode 1");
    }
    best.map(|p| p.pt())
}

/// The `a=mid` of the offer's first video m-line.
fn video_mid(sdp: &str) -> Option<Mid> {
    let mut video = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            video = m.starts_with("video ");
        } else if video && let Some(mid) = line.trim_end().strip_prefix("a=mid:") {
            return Some(Mid::from(mid));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_video_mid_is_the_video_m_lines() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        assert_eq!(super::video_mid(sdp).map(|m| m.to_string()), Some("1".into()));
        assert_eq!(super::video_mid("v=0\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\r\n"), None);
        assert_eq!(super::video_mid("not sdp"), None);
    }
}
