//! What a viewer window shows, as the task that feeds it sees it: the
//! newest decoded picture, or a NO SIGNAL slate saying why there is none.
//!
//! A feed (a subscription over the network for `framewire view`, a
//! node's local output for a `view:` sink) holds a [`ScreenHandle`]; the
//! window thread holds the same [`Shown`] and is woken through the event
//! loop's proxy.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use framewire_codec::{Decoder, PixelBuffer, PixelLayout, Registry};
use framewire_media::font::{Canvas, draw_text, text_width};
use framewire_proto::{EventInfo, StreamOpen};
use winit::event_loop::EventLoopProxy;

/// Why the window thread is woken.
#[derive(Debug)]
pub enum Wake {
    /// The screen has a new picture or slate.
    Update(u64),
    /// Open a window for a screen (a `view:` sink starting).
    Open(Box<super::window::ScreenSpec>),
    /// Close a screen's window (its sink stops).
    Close(u64),
    /// Leave the event loop; with an error to report, if any.
    Quit(Option<String>),
}

/// The newest decoded picture.
#[derive(Debug)]
pub struct Latest {
    pub pic: PixelBuffer,
    pub timestamp_ns: u64,
}

/// What one screen shows next.
#[derive(Debug, Default)]
pub struct Shown {
    /// A picture not shown yet.
    pub latest: Option<Latest>,
    /// Why there is no picture (the slate's text); `None` while live.
    pub slate: Option<String>,
    /// The window is gone (closed by its user, or it could not open).
    pub gone: bool,
}

/// A feed's hold on its screen.
#[derive(Debug, Clone)]
pub struct ScreenHandle {
    pub id: u64,
    pub stream: String,
    pub shown: Arc<Mutex<Shown>>,
    pub proxy: EventLoopProxy<Wake>,
}

impl ScreenHandle {
    fn lock(&self) -> MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shows a picture (the slate goes). False when the window is gone.
    pub fn picture(&self, pic: PixelBuffer, timestamp_ns: u64) -> bool {
        {
            let mut s = self.lock();
            if s.gone {
                return false;
            }
            s.latest = Some(Latest { pic, timestamp_ns });
            s.slate = None;
        }
        self.proxy.send_event(Wake::Update(self.id)).is_ok()
    }

    /// Shows the NO SIGNAL slate with `reason` until the next picture.
    /// False when the window is gone.
    pub fn no_signal(&self, reason: &str) -> bool {
        {
            let mut s = self.lock();
            if s.gone {
                return false;
            }
            if s.slate.as_deref() == Some(reason) {
                return true;
            }
            tracing::info!(stream = %self.stream, reason, "NO SIGNAL");
            s.latest = None;
            s.slate = Some(reason.to_owned());
        }
        self.proxy.send_event(Wake::Update(self.id)).is_ok()
    }

    /// Whether the window is gone.
    pub fn gone(&self) -> bool {
        self.lock().gone
    }
}

/// A stream event's reason as the slate says it: `upstream-lost: …`.
pub fn reason_text(info: &EventInfo) -> String {
    if info.message.is_empty() {
        info.reason.to_string()
    } else {
        format!("{}: {}", info.reason, info.message)
    }
}

/// A decoder for the stream, or the slate's text saying why there is none.
pub fn decoder_for(registry: &Registry, open: &StreamOpen) -> Result<Box<dyn Decoder>, String> {
    registry
        .negotiate(open)
        .map_err(|e| format!("cannot show format `{}`: {e}", open.format))
}

/// The slate's size (the renderer scales it to the window like a frame).
pub const SLATE_SIZE: (u32, u32) = (960, 540);

/// The NO SIGNAL picture: the stream's name and the reason, on dark blue.
pub fn slate(stream: &str, reason: &str) -> PixelBuffer {
    const BACKGROUND: [u8; 4] = [0x50, 0x28, 0x20, 0xff]; // B, G, R, A: #202850
    const WHITE: [u8; 4] = [0xff, 0xff, 0xff, 0xff];
    const GREY: [u8; 4] = [0xc0, 0xc0, 0xc0, 0xff];
    let (w, h) = (SLATE_SIZE.0 as usize, SLATE_SIZE.1 as usize);
    let mut pixels = BACKGROUND.repeat(w * h);
    let mut canvas = Canvas {
        pixels: &mut pixels,
        width: w,
        height: h,
    };
    let centred = |text: &str, scale: usize| w.saturating_sub(text_width(text, scale)) / 2;
    draw_text(&mut canvas, (centred("NO SIGNAL", 10), 150), 10, "NO SIGNAL", WHITE);
    let name = fit(stream, w, 4);
    draw_text(&mut canvas, (centred(&name, 4), 270), 4, &name, WHITE);
    // The reason on up to three lines of what fits.
    let per_line = w / (6 * 2) - 4;
    let chars: Vec<char> = reason.chars().collect();
    for (i, line) in chars.chunks(per_line).take(3).enumerate() {
        let line: String = line.iter().collect();
        draw_text(&mut canvas, (centred(&line, 2), 340 + i * 24), 2, &line, GREY);
    }
    PixelBuffer::new(PixelLayout::Bgra, SLATE_SIZE.0, SLATE_SIZE.1, pixels).expect("the slate's size is its buffer's")
}

/// `text` shortened with `...` to fit `width` pixels at `scale`.
fn fit(text: &str, width: usize, scale: usize) -> String {
    let max = width / (6 * scale) - 2;
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 3).collect();
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slate_is_dark_blue_with_white_letters() {
        let pic = slate("studio-camera-1", "upstream-lost: connection refused");
        assert_eq!((pic.width(), pic.height()), SLATE_SIZE);
        let px = |x: usize, y: usize| {
            let o = (y * SLATE_SIZE.0 as usize + x) * 4;
            let d = pic.data();
            [d[o], d[o + 1], d[o + 2]]
        };
        assert_eq!(px(5, 5), [0x50, 0x28, 0x20]);
        // "NO SIGNAL" at scale 10 is 540 px wide from x = 210, rows 150..220.
        let white = (150..220)
            .flat_map(|y| (210..750).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y) == [0xff; 3])
            .count();
        assert!(white > 5000, "{white} white pixels in the title");
        // The reason's line is drawn (grey).
        assert!((340..354).any(|y| (0..960).any(|x| px(x, y) == [0xc0; 3])));
    }

    #[test]
    fn a_long_name_is_shortened() {
        let long = "x".repeat(100);
        let s = fit(&long, 960, 4);
        assert!(s.ends_with("...") && text_width(&s, 4) <= 960, "{s}");
        assert_eq!(fit("cam", 960, 4), "cam");
    }
}
