//! Whether an upstream is alive, sans IO: a pulled edge feeds it what it
//! heard and when, and asks what a silence means. A live stream is
//! *stalled* after max(2 s, 10 frame intervals) without a word from its
//! upstream; half that long without a frame, the upstream is asked for a
//! sign of life (a DESCRIBE), so an upstream that is alive but sends this
//! stream nothing for a while (a low-priority stream on a capped link, see
//! docs/relay.md, "Links") is not taken for a frozen one. A quiet stream
//! (its upstream says interrupted) is asked each such window, and a window
//! without an answer is a stall.

/// How long a live stream may go without a frame before its upstream is
/// stalled: 10 frame intervals, at least 2 s.
const STALL_MIN: std::time::Duration = std::time::Duration::from_secs(2);
/// The same for a stream of unknown rate, or before STREAM_OPEN.
const STALL_UNKNOWN_RATE: std::time::Duration = std::time::Duration::from_secs(10);
/// The request id of the DESCRIBE a quiet edge sends as a ping.
pub(crate) const PING_REQUEST: u16 = 0xfff0;

/// What a silence means: fine, time to ask for a sign of life, or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Fine,
    Ping,
    Stalled(std::time::Duration),
}

/// The liveness of one session, sans IO: fed what was heard and when,
/// asked what a silence means.
#[derive(Debug)]
pub(crate) struct Liveness {
    window: std::time::Duration,
    /// The upstream says its stream is live: frames are due.
    live: bool,
    last_heard: std::time::Instant,
    pinged_at: Option<std::time::Instant>,
}

impl Liveness {
    pub(crate) fn new(now: std::time::Instant) -> Liveness {
        Liveness {
            window: STALL_UNKNOWN_RATE,
            live: false,
            last_heard: now,
            pinged_at: None,
        }
    }

    /// The stream opened: frames are due, at most `window` apart.
    pub(crate) fn live(&mut self, window: std::time::Duration) {
        self.window = window;
        self.live = true;
    }

    /// The upstream said its stream is interrupted: no frames are due.
    pub(crate) fn quiet(&mut self) {
        self.live = false;
    }

    pub(crate) fn resumed(&mut self) {
        self.live = true;
    }

    pub(crate) fn heard(&mut self, now: std::time::Instant) {
        self.last_heard = now;
        self.pinged_at = None;
    }

    /// How often to look (a quarter window, at least 100 ms).
    pub(crate) fn check_every(&self) -> std::time::Duration {
        (self.window / 4).max(std::time::Duration::from_millis(100))
    }

    pub(crate) fn check(&mut self, now: std::time::Instant) -> Check {
        let silent = now.saturating_duration_since(self.last_heard);
        if let Some(at) = self.pinged_at {
            // Live: frames were due all along, so the window counts from
            // the last word. Quiet: a whole window for the answer.
            let waited = if self.live {
                silent
            } else {
                now.saturating_duration_since(at)
            };
            if waited >= self.window {
                return Check::Stalled(silent);
            }
            return Check::Fine;
        }
        let ask_after = if self.live { self.window / 2 } else { self.window };
        if silent < ask_after {
            return Check::Fine;
        }
        if self.live && silent >= self.window {
            return Check::Stalled(silent);
        }
        self.pinged_at = Some(now);
        Check::Ping
    }
}

pub(crate) fn stall_window(open: &framewire_proto::StreamOpen) -> std::time::Duration {
    if open.fps_num == 0 || open.fps_den == 0 {
        return STALL_UNKNOWN_RATE;
    }
    let interval = f64::from(open.fps_den) / f64::from(open.fps_num);
    std::time::Duration::from_secs_f64((10.0 * interval).min(3600.0)).max(STALL_MIN)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_live_stream_is_stalled_after_its_window_a_quiet_one_after_an_unanswered_ping() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.live(Duration::from_secs(2));
        assert_eq!(l.check_every(), Duration::from_millis(500));
        l.heard(t0 + Duration::from_secs(1));
        assert_eq!(l.check(t0 + Duration::from_millis(1900)), Check::Fine);
        // Half a window without a frame: asked for a sign of life.
        assert_eq!(l.check(t0 + Duration::from_secs(2)), Check::Ping);
        assert_eq!(l.check(t0 + Duration::from_millis(2900)), Check::Fine);
        // No answer by the window's end: stalled.
        assert_eq!(
            l.check(t0 + Duration::from_secs(3)),
            Check::Stalled(Duration::from_secs(2))
        );
        // An upstream that answers is alive, frames or not.
        l.heard(t0 + Duration::from_secs(3));
        assert_eq!(l.check(t0 + Duration::from_secs(4)), Check::Ping);
        l.heard(t0 + Duration::from_millis(4100));
        assert_eq!(l.check(t0 + Duration::from_millis(5000)), Check::Fine);
        assert_eq!(l.check(t0 + Duration::from_millis(5200)), Check::Ping);
        // Quiet (the upstream said interrupted): a ping first, then a window for the answer.
        l.quiet();
        l.heard(t0);
        assert_eq!(l.check(t0 + Duration::from_secs(2)), Check::Ping);
        assert_eq!(l.check(t0 + Duration::from_secs(3)), Check::Fine);
        assert!(matches!(l.check(t0 + Duration::from_secs(4)), Check::Stalled(_)));
        // An answer clears the ping.
        l.heard(t0 + Duration::from_secs(4));
        assert_eq!(l.check(t0 + Duration::from_secs(5)), Check::Fine);
    }

    #[test]
    fn the_window_is_ten_frames_and_at_least_two_seconds() {
        let mut o = framewire_proto::StreamOpen {
            format: framewire_proto::Format::Mjpeg,
            pixel_format: framewire_proto::PixelFormat::None,
            origin: framewire_proto::Origin::LibjpegTurbo,
            width: 1,
            height: 1,
            fps_num: 10,
            fps_den: 1,
            name: "s".into(),
            codec_config: Default::default(),
        };
        assert_eq!(stall_window(&o), Duration::from_secs(2));
        o.fps_num = 1;
        assert_eq!(stall_window(&o), Duration::from_secs(10));
        o.fps_num = 0;
        assert_eq!(stall_window(&o), STALL_UNKNOWN_RATE);
    }
}
