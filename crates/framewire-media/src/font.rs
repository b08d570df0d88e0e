//! A 5×7 bitmap font for digits and a few separators, drawn into BGRA.

/// Glyph rows, 5 bits each (bit 4 = leftmost pixel).
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        '#' => [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
        ' ' => [0; 7],
        _ => return None,
    })
}

/// A tightly packed BGRA picture to draw into.
#[derive(Debug)]
pub struct Canvas<'a> {
    /// `width * height * 4` bytes.
    pub pixels: &'a mut [u8],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// Draws `text` at (`x`, `y`), each font pixel a `scale`×`scale` square of
/// `colour` (B, G, R, A). Characters without a glyph are skipped; whatever
/// falls outside the canvas is clipped.
pub fn draw_text(canvas: &mut Canvas<'_>, (x, y): (usize, usize), scale: usize, text: &str, colour: [u8; 4]) {
    let (width, height) = (canvas.width, canvas.height);
    let pixels = &mut *canvas.pixels;
    let mut cx = x;
    for c in text.chars() {
        if let Some(rows) = glyph(c) {
            for (ry, bits) in rows.iter().enumerate() {
                for rx in 0..5 {
                    if bits & (0x10 >> rx) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        let py = y + ry * scale + dy;
                        if py >= height {
                            continue;
                        }
                        for dx in 0..scale {
                            let px = cx + rx * scale + dx;
                            if px >= width {
                                continue;
                            }
                            let o = (py * width + px) * 4;
                            pixels[o..o + 4].copy_from_slice(&colour);
                        }
                    }
                }
            }
        }
        cx += 6 * scale;
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * 6 * scale
}
