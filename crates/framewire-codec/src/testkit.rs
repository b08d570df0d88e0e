//! Deterministic synthetic pictures and a PSNR measure, for tests,
//! benchmarks and test-pattern sources.
//!
//! Each generator takes a seed and always returns the same BGRA picture for
//! the same arguments (a small built-in PRNG; no outside randomness).
//! - [`screen_like`]: a desktop: flat wallpaper, windows with title bars,
//!   lines of glyph-like text, buttons and a task bar. Large flat areas and
//!   sharp edges, like a screen grab.
//! - [`natural`]: photo-like: smooth lighting gradients, soft-edged shapes
//!   and mild grain.
//! - [`camera_like`]: [`natural`] with sensor-like noise, which defeats
//!   lossless compressors the way a real camera does.

use crate::{PixelBuffer, PixelLayout};

/// SplitMix64: small, fast, good enough for test pictures.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
    /// A number in `0.0..1.0`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Fills the part of a `w`-pixel-wide BGRA picture's rectangle
/// `(x0, y0, rw, rh)` that lies inside it.
fn fill_rect(px: &mut [u8], w: usize, (x0, y0, rw, rh): (usize, usize, usize, usize), bgra: [u8; 4]) {
    let h = px.len() / (w * 4);
    let (x1, y1) = ((x0 + rw).min(w), (y0 + rh).min(h));
    for y in y0.min(h)..y1 {
        for p in px[(y * w + x0.min(x1)) * 4..(y * w + x1) * 4].chunks_exact_mut(4) {
            p.copy_from_slice(&bgra);
        }
    }
}

fn buffer(width: u32, height: u32, px: Vec<u8>) -> PixelBuffer {
    // The generators size `px` as width * height * 4.
    PixelBuffer::new(PixelLayout::Bgra, width, height, px).expect("generator sized the buffer")
}

/// A screen-like BGRA picture (see the module doc). `width` and `height`
/// must be non-zero.
pub fn screen_like(width: u32, height: u32, seed: u64) -> PixelBuffer {
    let (w, h) = (width as usize, height as usize);
    let mut rng = Rng::new(seed);
    let mut px = vec![0u8; w * h * 4];
    fill_rect(&mut px, w, (0, 0, w, h), [0x50, 0x3e, 0x2d, 0xff]);
    let windows = 3 + rng.below(3) as usize;
    for _ in 0..windows {
        let ww = w / 4 + rng.below((w / 3).max(1) as u32) as usize;
        let wh = h / 4 + rng.below((h / 3).max(1) as u32) as usize;
        let wx = rng.below((w - ww.min(w - 1)) as u32) as usize;
        let wy = rng.below((h - wh.min(h - 1)) as u32) as usize;
        let bg = if rng.below(4) == 0 {
            [0x2b, 0x2b, 0x2b, 0xff]
        } else {
            [0xfa, 0xfa, 0xfa, 0xff]
        };
        let ink = if bg[0] > 0x80 {
            [0x20, 0x20, 0x20, 0xff]
        } else {
            [0xe0, 0xe0, 0xe0, 0xff]
        };
        fill_rect(
            &mut px,
            w,
            (wx.saturating_sub(1), wy.saturating_sub(1), ww + 2, wh + 2),
            [0x80, 0x80, 0x80, 0xff],
        );
        fill_rect(&mut px, w, (wx, wy, ww, wh), bg);
        fill_rect(&mut px, w, (wx, wy, ww, 28), [0xd0, 0x90, 0x30, 0xff]);
        // Text: lines of "words" made of 6x10 glyphs from random bit patterns.
        let mut ty = wy + 40;
        while ty + 12 < (wy + wh).min(h) {
            let mut tx = wx + 10;
            let line_end = wx + ww.saturating_sub(10 + rng.below((ww / 3).max(1) as u32) as usize);
            while tx + 6 < line_end.min(w) {
                let word = 2 + rng.below(8) as usize;
                for _ in 0..word {
                    if tx + 6 >= line_end.min(w) {
                        break;
                    }
                    let bits = rng.next_u64();
                    for gy in 0..10 {
                        for gx in 0..5 {
                            if bits >> ((gy * 5 + gx) % 64) & 1 == 1 {
                                let o = ((ty + gy) * w + tx + gx) * 4;
                                px[o..o + 4].copy_from_slice(&ink);
                            }
                        }
                    }
                    tx += 6;
                }
                tx += 6;
            }
            ty += 18;
        }
        // A couple of buttons.
        for i in 0..2 {
            let bx = wx + ww.saturating_sub(100 * (i + 1));
            fill_rect(
                &mut px,
                w,
                (bx, (wy + wh).saturating_sub(36), 90, 26),
                [0xe0, 0x70, 0x20, 0xff],
            );
        }
    }
    // Task bar with icons.
    let bar = 40.min(h);
    fill_rect(&mut px, w, (0, h - bar, w, bar), [0x20, 0x20, 0x20, 0xff]);
    let mut x = 8;
    while x + 24 < w {
        let c = [rng.below(256) as u8, rng.below(256) as u8, rng.below(256) as u8, 0xff];
        fill_rect(&mut px, w, (x, h - bar + 8, 24, 24.min(bar)), c);
        x += 40;
        if x > 600 {
            break;
        }
    }
    buffer(width, height, px)
}

fn photo(width: u32, height: u32, seed: u64, noise: u32) -> PixelBuffer {
    let (w, h) = (width as usize, height as usize);
    let mut rng = Rng::new(seed);
    let top = [
        rng.unit() * 120.0 + 100.0,
        rng.unit() * 120.0 + 100.0,
        rng.unit() * 60.0 + 180.0,
    ];
    let bottom = [
        rng.unit() * 100.0 + 40.0,
        rng.unit() * 100.0 + 60.0,
        rng.unit() * 80.0 + 20.0,
    ];
    // Soft shapes: separable Gaussian blobs, so each needs one row and one
    // column table.
    let blobs: Vec<([f32; 3], Vec<f32>, Vec<f32>)> = (0..7)
        .map(|_| {
            let colour = [rng.unit() * 255.0, rng.unit() * 255.0, rng.unit() * 255.0];
            let (cx, cy) = (rng.unit() * w as f32, rng.unit() * h as f32);
            let s = (0.05 + rng.unit() * 0.15) * w.max(h) as f32;
            let gx = (0..w).map(|x| (-((x as f32 - cx) / s).powi(2) / 2.0).exp()).collect();
            let gy = (0..h).map(|y| (-((y as f32 - cy) / s).powi(2) / 2.0).exp()).collect();
            (colour, gx, gy)
        })
        .collect();
    let mut px = vec![0u8; w * h * 4];
    for (y, row) in px.chunks_exact_mut(w * 4).enumerate() {
        let t = y as f32 / h as f32;
        for (x, p) in row.chunks_exact_mut(4).enumerate() {
            let s = x as f32 / w as f32;
            let mut c = [0f32; 3];
            for (i, ci) in c.iter_mut().enumerate() {
                *ci = top[i] * (1.0 - t) + bottom[i] * t + 20.0 * (s - 0.5);
            }
            for (colour, gx, gy) in &blobs {
                let a = 0.8 * gx[x] * gy[y];
                for i in 0..3 {
                    c[i] += a * (colour[i] - c[i]);
                }
            }
            for (i, ci) in c.iter().enumerate() {
                let n = if noise == 0 {
                    0
                } else {
                    // Triangle-distributed grain in -noise..=noise.
                    rng.below(noise + 1) as i32 + rng.below(noise + 1) as i32 - noise as i32
                };
                // BGRA: channel i (R, G, B) goes to byte 2 - i.
                p[2 - i] = (*ci as i32 + n).clamp(0, 255) as u8;
            }
            p[3] = 0xff;
        }
    }
    buffer(width, height, px)
}

/// A photo-like BGRA picture with mild grain (see the module doc).
pub fn natural(width: u32, height: u32, seed: u64) -> PixelBuffer {
    photo(width, height, seed, 2)
}

/// A camera-like BGRA picture: [`natural`] content with sensor noise.
pub fn camera_like(width: u32, height: u32, seed: u64) -> PixelBuffer {
    photo(width, height, seed, 8)
}

/// Peak signal-to-noise ratio in dB over the R, G and B channels of two
/// pictures of the same size (any layouts); infinite when identical, `None`
/// when sizes differ.
pub fn psnr(a: &PixelBuffer, b: &PixelBuffer) -> Option<f64> {
    if a.width() != b.width() || a.height() != b.height() {
        return None;
    }
    let a = a.convert(PixelLayout::Rgb).ok()?;
    let b = b.convert(PixelLayout::Rgb).ok()?;
    let (da, db) = (a.data(), b.data());
    let sum: u64 = da
        .iter()
        .zip(db.iter())
        .map(|(x, y)| (i64::from(*x) - i64::from(*y)).pow(2) as u64)
        .sum();
    if sum == 0 {
        return Some(f64::INFINITY);
    }
    let mse = sum as f64 / da.len() as f64;
    Some(10.0 * (255.0f64 * 255.0 / mse).log10())
}
