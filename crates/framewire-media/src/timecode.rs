//! A time code in the picture: a frame's capture time and sequence number
//! as large black and white cells, so that a reader that sees only the
//! picture (a decoded frame, a window's pixels, a browser's canvas) knows
//! when that picture was captured, and the time it takes to reach the
//! screen can be measured on any path.
//!
//! **Layout.** A band across the whole width, from 2/3 to 3/4 of the
//! picture's height (the test pattern's band between its bars and its
//! text), split into 2 rows of 34 cells. Each row starts with a white and a
//! black reference cell, then 32 data bits, most significant first, white
//! for 1. The 64 bits are the capture time in microseconds modulo 2^40
//! (about 12.7 days), the sequence number modulo 2^16, and a CRC-8 of the
//! seven bytes before it.
//!
//! **Reading.** The band and the cells are found by proportion alone, so
//! a picture scaled by any factor reads the same way. Each cell's middle
//! half (in both directions) is averaged and compared with the midpoint of
//! its row's reference cells; a picture whose reference cells differ by
//! less than 64 levels, or whose checksum does not match, has no code. At
//! 1920×1080 a cell is 56×45 pixels, and 14×11 at a quarter of that size:
//! the code survives JPEG and H.264 at ordinary quality and that scaling.

use framewire_codec::{PixelBuffer, PixelLayout};

/// Cells per row: two reference cells and 32 bits.
const COLS: usize = 34;
/// Rows of cells.
const ROWS: usize = 2;
/// Bits of the capture time kept (microseconds).
const TIME_BITS: u32 = 40;

/// What the code carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCode {
    /// Capture time in microseconds, modulo 2^40.
    pub time_us: u64,
    /// Sequence number, modulo 2^16.
    pub sequence: u16,
}

impl TimeCode {
    /// The code of a frame captured at `timestamp_ns` (Unix time).
    pub fn new(sequence: u64, timestamp_ns: u64) -> TimeCode {
        TimeCode {
            time_us: (timestamp_ns / 1_000) & ((1 << TIME_BITS) - 1),
            // Modulo 2^16 by design.
            #[allow(clippy::cast_possible_truncation)]
            sequence: sequence as u16,
        }
    }

    /// The capture time in nanoseconds (microsecond precision): the
    /// latest time with these low bits that is not after `now_ns`.
    pub fn capture_ns(&self, now_ns: u64) -> u64 {
        let now_us = now_ns / 1_000;
        let span = 1u64 << TIME_BITS;
        let base = now_us - now_us % span;
        let t = base + self.time_us;
        let t = if t > now_us { t.saturating_sub(span) } else { t };
        t * 1_000
    }

    /// The 64 bits drawn.
    fn bits(&self) -> u64 {
        let body = (self.time_us << 16) | u64::from(self.sequence);
        (body << 8) | u64::from(crc8(&body.to_be_bytes()[1..]))
    }

    fn from_bits(bits: u64) -> Option<TimeCode> {
        let body = bits >> 8;
        // The low byte is the checksum.
        #[allow(clippy::cast_possible_truncation)]
        let sum = bits as u8;
        if crc8(&body.to_be_bytes()[1..]) != sum {
            return None;
        }
        Some(TimeCode {
            time_us: body >> 16,
            // The low 16 bits of the body.
            #[allow(clippy::cast_possible_truncation)]
            sequence: body as u16,
        })
    }
}

/// CRC-8 (polynomial 0x07).
fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
    }
    crc
}

/// The rows of the band in a picture `height` high.
fn band(height: usize) -> (usize, usize) {
    (height * 2 / 3, height * 3 / 4)
}

/// A cell's rectangle: columns `x0..x1`, rows `y0..y1`.
fn cell(width: usize, height: usize, row: usize, col: usize) -> (usize, usize, usize, usize) {
    let (top, bottom) = band(height);
    let h = bottom - top;
    (
        col * width / COLS,
        (col + 1) * width / COLS,
        top + row * h / ROWS,
        top + (row + 1) * h / ROWS,
    )
}

/// Every cell of `code` in a `width`×`height` picture: whether it is
/// white, and its rectangle (columns `x0..x1`, rows `y0..y1`).
fn cells(width: usize, height: usize, code: TimeCode) -> impl Iterator<Item = (bool, (usize, usize, usize, usize))> {
    let bits = code.bits();
    (0..ROWS).flat_map(move |row| {
        (0..COLS).map(move |col| {
            let white = match col {
                0 => true,
                1 => false,
                _ => bits >> (63 - (row * 32 + col - 2)) & 1 == 1,
            };
            (white, cell(width, height, row, col))
        })
    })
}

/// Sets pixels `x0..x1` of a row of `bpp`-byte pixels to `px`.
fn fill(row: &mut [u8], bpp: usize, x0: usize, x1: usize, px: &[u8]) {
    if let Some(line) = row.get_mut(x0 * bpp..x1 * bpp) {
        for p in line.chunks_exact_mut(bpp) {
            p.copy_from_slice(px);
        }
    }
}

/// Draws `code` into a BGRA picture (`width`×`height`, rows `width * 4`
/// bytes apart), over whatever the band held.
pub fn draw(bgra: &mut [u8], width: usize, height: usize, code: TimeCode) {
    for (white, (x0, x1, y0, y1)) in cells(width, height, code) {
        let v = if white { 255 } else { 0 };
        for y in y0..y1 {
            if let Some(row) = bgra.get_mut(y * width * 4..(y + 1) * width * 4) {
                fill(row, 4, x0, x1, &[v, v, v, 255]);
            }
        }
    }
}

/// A copy of `pic` with `code` drawn into it in the picture's own layout:
/// the overlay for a source whose pictures are not the test pattern's
/// (e.g. `x11:…,timecode=true`). In YUV layouts the cells are luma 235 or
/// 16 with neutral chroma.
pub fn overlay(pic: &PixelBuffer, code: TimeCode) -> PixelBuffer {
    let (w, h) = (pic.width() as usize, pic.height() as usize);
    let layout = pic.layout();
    let mut data = pic.tight_bytes().to_vec();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for (white, (x0, x1, y0, y1)) in cells(w, h, code) {
        let (v, y_v) = if white { (255, 235) } else { (0, 16) };
        for y in y0..y1 {
            match layout {
                PixelLayout::Bgra | PixelLayout::Rgba => {
                    fill(&mut data[y * w * 4..(y + 1) * w * 4], 4, x0, x1, &[v, v, v, 255])
                }
                PixelLayout::Bgr | PixelLayout::Rgb => {
                    fill(&mut data[y * w * 3..(y + 1) * w * 3], 3, x0, x1, &[v, v, v])
                }
                PixelLayout::Yuyv => {
                    for x in x0..x1 {
                        data[y * w * 2 + x * 2] = y_v;
                        data[y * w * 2 + x * 2 + 1] = 128;
                    }
                }
                PixelLayout::I420 => fill(&mut data[y * w..(y + 1) * w], 1, x0, x1, &[y_v]),
                // A layout added later: left without a code (the reader
                // counts such pictures as having none).
                _ => {}
            }
        }
        if layout == PixelLayout::I420 {
            for cy in y0 / 2..y1.div_ceil(2).min(ch) {
                for plane in 0..2 {
                    let at = w * h + plane * cw * ch + cy * cw;
                    fill(&mut data[at..at + cw], 1, x0 / 2, x1.div_ceil(2).min(cw), &[128]);
                }
            }
        }
    }
    // Cannot fail: the same layout and size as a picture that was valid.
    PixelBuffer::new(layout, pic.width(), pic.height(), data).expect("an overlaid picture keeps its size")
}

/// Reads the code from a grey (luma) picture, rows `stride` bytes apart.
pub fn read_luma(luma: &[u8], width: usize, height: usize, stride: usize) -> Option<TimeCode> {
    if stride < width || height == 0 || luma.len() < stride * (height - 1) + width {
        return None;
    }
    read_with(width, height, |x, y| luma[y * stride + x])
}

/// Reads the code from a BGRA picture (a screen grab), rows `stride`
/// bytes apart.
pub fn read_bgra(bgra: &[u8], width: usize, height: usize, stride: usize) -> Option<TimeCode> {
    if stride < width * 4 || height == 0 || bgra.len() < stride * (height - 1) + width * 4 {
        return None;
    }
    read_with(width, height, |x, y| {
        let p = &bgra[y * stride + x * 4..y * stride + x * 4 + 3];
        // BT.601 luma in 8 bits: at most 255.
        #[allow(clippy::cast_possible_truncation)]
        let l = ((u32::from(p[0]) * 29 + u32::from(p[1]) * 150 + u32::from(p[2]) * 77) >> 8) as u8;
        l
    })
}

/// Reads the code from a `width`×`height` picture whose luma at (x, y)
/// `luma` gives.
fn read_with(width: usize, height: usize, luma: impl Fn(usize, usize) -> u8) -> Option<TimeCode> {
    if width < COLS * 2 || height < 24 {
        return None;
    }
    let mean = |row: usize, col: usize| -> u32 {
        let (x0, x1, y0, y1) = cell(width, height, row, col);
        // The middle half of the cell in both directions.
        let (xa, xb) = (x0 + (x1 - x0) / 4, x1 - (x1 - x0) / 4);
        let (ya, yb) = (y0 + (y1 - y0) / 4, y1 - (y1 - y0) / 4);
        let (mut sum, mut n) = (0u32, 0u32);
        for y in ya..yb.max(ya + 1) {
            for x in xa..xb.max(xa + 1) {
                sum += u32::from(luma(x, y));
                n += 1;
            }
        }
        sum / n.max(1)
    };
    let mut bits = 0u64;
    for row in 0..ROWS {
        let (white, black) = (mean(row, 0), mean(row, 1));
        if white < black + 64 {
            return None;
        }
        let mid = u32::midpoint(white, black);
        for col in 2..COLS {
            bits = (bits << 1) | u64::from(mean(row, col) > mid);
        }
    }
    TimeCode::from_bits(bits)
}

/// Reads the code from a decoded picture of any layout.
pub fn read(pic: &PixelBuffer) -> Option<TimeCode> {
    read_in(pic, 0, 0, pic.width(), pic.height())
}

/// Reads the code from the `w`×`h` rectangle at (`x`, `y`) of a decoded
/// picture of any layout (a tile of a composed picture, say); `None` for
/// a rectangle outside the picture.
pub fn read_in(pic: &PixelBuffer, x: u32, y: u32, w: u32, h: u32) -> Option<TimeCode> {
    if x.checked_add(w)? > pic.width() || y.checked_add(h)? > pic.height() {
        return None;
    }
    let converted;
    let pic = if pic.layout() == PixelLayout::I420 {
        pic
    } else {
        converted = pic.convert(PixelLayout::I420).ok()?;
        &converted
    };
    let p = pic.plane(0);
    let start = p.offset + y as usize * p.stride + x as usize;
    read_luma(pic.data().get(start..)?, w as usize, h as usize, p.stride)
}

#[cfg(test)]
mod tests;
