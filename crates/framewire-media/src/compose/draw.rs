//! Drawing on the I420 canvas: scaled pictures, slates, labels, borders.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use framewire_codec::{PixelBuffer, PixelLayout};

use super::layout::{Fit, Rect, Tile};
use crate::font::{Canvas, draw_text, text_width};

/// Black, in limited-range YUV.
const BLACK: [u8; 3] = [16, 128, 128];
/// White.
const WHITE: [u8; 3] = [235, 128, 128];
/// The slate's dark blue (sRGB 16, 32, 96).
const SLATE: [u8; 3] = [46, 159, 116];

/// The canvas: Y, then U and V at half size, in one buffer.
pub(super) struct Planes {
    w: usize,
    h: usize,
    data: Vec<u8>,
    resizer: Resizer,
}

impl std::fmt::Debug for Planes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Planes({}x{})", self.w, self.h)
    }
}

impl Planes {
    pub(super) fn new(width: u32, height: u32) -> Planes {
        let (w, h) = (width as usize, height as usize);
        Planes {
            w,
            h,
            data: vec![0; w * h * 3 / 2],
            resizer: Resizer::new(),
        }
    }

    /// Plane `k`'s offset, width and height.
    fn plane(&self, k: usize) -> (usize, usize, usize) {
        let (cw, ch) = (self.w / 2, self.h / 2);
        match k {
            0 => (0, self.w, self.h),
            1 => (self.w * self.h, cw, ch),
            _ => (self.w * self.h + cw * ch, cw, ch),
        }
    }

    pub(super) fn clear(&mut self) {
        let ys = self.w * self.h;
        self.data[..ys].fill(BLACK[0]);
        self.data[ys..].fill(128);
    }

    /// Fills `r` (canvas pixels, clipped) with a colour.
    fn fill(&mut self, r: Rect, yuv: [u8; 3]) {
        for (k, &v) in yuv.iter().enumerate() {
            let s = usize::from(k > 0);
            let (off, pw, ph) = self.plane(k);
            let (x0, y0) = ((r.x as usize >> s).min(pw), (r.y as usize >> s).min(ph));
            let (x1, y1) = (((r.x + r.w) as usize >> s).min(pw), ((r.y + r.h) as usize >> s).min(ph));
            for y in y0..y1 {
                self.data[off + y * pw + x0..off + y * pw + x1].fill(v);
            }
        }
    }

    /// `pic` (I420) in `tile`: cropped, scaled, copied or blended in.
    pub(super) fn picture(&mut self, tile: &Tile, pic: &PixelBuffer) {
        debug_assert_eq!(pic.layout(), PixelLayout::I420);
        let tight;
        let pic = if pic.is_tight() {
            pic
        } else {
            tight = pic.to_tight();
            &tight
        };
        let (pw, ph) = (f64::from(pic.width()), f64::from(pic.height()));
        let c = tile.crop;
        let (cw, ch) = ((c.w * pw).max(1.0), (c.h * ph).max(1.0));
        let r = tile.rect;
        // Where the picture lands: the whole tile, or the largest part of
        // it with the crop's shape, centred; even, for the chroma planes.
        let (dw, dh) = match tile.fit {
            Fit::Fill => (r.w, r.h),
            Fit::Keep => {
                let s = (f64::from(r.w) / cw).min(f64::from(r.h) / ch);
                // Within the tile: a product of sizes below 2^32.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                ((cw * s) as u32, (ch * s) as u32)
            }
        };
        let (dw, dh) = ((dw & !1).max(2), (dh & !1).max(2));
        let (dx, dy) = ((r.x + (r.w - dw) / 2) & !1, (r.y + (r.h - dh) / 2) & !1);
        let opaque = tile.opacity >= 1.0;
        if opaque && (dw, dh) != (r.w, r.h) {
            self.fill(r, BLACK);
        }
        // Opacity 0..=1 as 0..=256.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let alpha = (tile.opacity.clamp(0.0, 1.0) * 256.0).round() as u32;
        let (src_w, src_h) = (pic.width() as usize, pic.height() as usize);
        for k in 0..3 {
            let s = u32::from(k > 0);
            let p = pic.plane(k);
            let (sw, sh) = if k == 0 {
                (src_w, src_h)
            } else {
                (src_w.div_ceil(2), src_h.div_ceil(2))
            };
            let Some(bytes) = pic.data().get(p.offset..p.offset + sw * sh) else {
                return;
            };
            // One pixel type only (grey bytes): typed, so that only its
            // code is built, not every type's the untyped API dispatches to.
            let Ok(src) = TypedImageRef::<U8>::from_buffer(sw as u32, sh as u32, bytes) else {
                return;
            };
            let scale = if k == 0 { 1.0 } else { 0.5 };
            let (tw, th) = ((dw >> s).max(1), (dh >> s).max(1));
            let mut scaled = vec![0u8; tw as usize * th as usize];
            let Ok(mut dst) = TypedImage::<U8>::from_buffer(tw, th, &mut scaled) else {
                return;
            };
            let opts = ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                .crop(c.x * pw * scale, c.y * ph * scale, cw * scale, ch * scale);
            if self.resizer.resize_typed(&src, &mut dst, &opts).is_err() {
                return;
            }
            drop(dst);
            let (off, cpw, _) = self.plane(k);
            let (ox, oy) = ((dx >> s) as usize, (dy >> s) as usize);
            for (row, line) in scaled.chunks_exact(tw as usize).enumerate() {
                let at = off + (oy + row) * cpw + ox;
                let Some(out) = self.data.get_mut(at..at + line.len()) else {
                    break;
                };
                if opaque {
                    out.copy_from_slice(line);
                } else {
                    for (o, &v) in out.iter_mut().zip(line) {
                        // A weighted mean of two bytes: a byte.
                        #[allow(clippy::cast_possible_truncation)]
                        let m = ((u32::from(v) * alpha + u32::from(*o) * (256 - alpha)) >> 8) as u8;
                        *o = m;
                    }
                }
            }
        }
    }

    /// White text at (`x`, `y`), each font pixel `scale` pixels square.
    fn text(&mut self, (x, y): (usize, usize), scale: usize, text: &str) {
        let (tw, th) = (text_width(text, scale), 7 * scale);
        if tw == 0 {
            return;
        }
        let mut px = vec![0u8; tw * th * 4];
        draw_text(
            &mut Canvas {
                pixels: &mut px,
                width: tw,
                height: th,
            },
            (0, 0),
            scale,
            text,
            [255; 4],
        );
        let (cw, ch) = (self.w / 2, self.h / 2);
        let uv = self.w * self.h;
        for row in 0..th {
            for col in 0..tw {
                let (cx, cy) = (x + col, y + row);
                if px[(row * tw + col) * 4] == 0 || cx >= self.w || cy >= self.h {
                    continue;
                }
                self.data[cy * self.w + cx] = WHITE[0];
                if cx / 2 < cw && cy / 2 < ch {
                    self.data[uv + cy / 2 * cw + cx / 2] = 128;
                    self.data[uv + cw * ch + cy / 2 * cw + cx / 2] = 128;
                }
            }
        }
    }

    /// The NO SIGNAL slate in `tile`: the input's name and `reason`.
    pub(super) fn slate(&mut self, tile: &Tile, reason: &str) {
        let r = tile.rect;
        self.fill(r, SLATE);
        let (w, h) = (r.w as usize, r.h as usize);
        let big = (w / text_width("NO SIGNAL", 1)).min(h / 28).max(1);
        let small = (big / 2).max(1);
        let lines = [
            ("NO SIGNAL".to_owned(), big),
            (fit(&tile.input, w, small), small),
            (fit(reason, w, small), small),
        ];
        let total: usize = lines.iter().map(|(_, s)| 9 * s).sum();
        let mut y = r.y as usize + h.saturating_sub(total) / 2;
        for (text, scale) in lines {
            let x = r.x as usize + w.saturating_sub(text_width(&text, scale)) / 2;
            self.text((x, y), scale, &text);
            y += 9 * scale;
        }
    }

    /// The tile's border and label, over its picture.
    pub(super) fn decorate(&mut self, tile: &Tile) {
        let r = tile.rect;
        if tile.border > 0 {
            let b = (tile.border + 1) & !1;
            for edge in [
                Rect { h: b, ..r },
                Rect {
                    y: r.y + r.h - b,
                    h: b,
                    ..r
                },
                Rect { w: b, ..r },
                Rect {
                    x: r.x + r.w - b,
                    w: b,
                    ..r
                },
            ] {
                self.fill(edge, WHITE);
            }
        }
        if let Some(label) = tile.label.as_deref().filter(|l| !l.is_empty()) {
            let scale = (r.h as usize / 120).max(1);
            let text = fit(label, r.w as usize - 4 * scale, scale);
            let (tw, th) = (text_width(&text, scale), 7 * scale);
            // `& !1`: the box's corners on even pixels, chroma aligned.
            #[allow(clippy::cast_possible_truncation)]
            let pad = (2 * scale) as u32;
            #[allow(clippy::cast_possible_truncation)]
            let boxed = Rect {
                x: r.x + tile.border,
                y: (r.y + r.h - th as u32 - 2 * pad - tile.border) & !1,
                w: ((tw as u32 + 2 * pad + 1) & !1).min(r.w - tile.border),
                h: (th as u32 + 2 * pad + 1) & !1,
            };
            self.fill(boxed, BLACK);
            self.text(((boxed.x + pad) as usize, (boxed.y + pad) as usize), scale, &text);
        }
    }

    /// The canvas as a picture.
    pub(super) fn picture_buffer(&self) -> PixelBuffer {
        // Cannot fail: the buffer is exactly an I420 picture of this size.
        #[allow(clippy::cast_possible_truncation)]
        PixelBuffer::new(PixelLayout::I420, self.w as u32, self.h as u32, self.data.clone())
            .expect("the canvas is an I420 picture")
    }
}

/// `text` shortened with `..` to fit `width` pixels at `scale`.
fn fit(text: &str, width: usize, scale: usize) -> String {
    let most = width / (6 * scale).max(1);
    if text.chars().count() <= most {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(most.saturating_sub(2)).collect();
    s.push_str("..");
    s
}
