//! The renderer interface and its OpenGL implementation (glow).
//!
//! A renderer takes one decoded picture at a time ([`Renderer::render_frame`])
//! and draws it scaled into the window: letterboxed (aspect kept, black
//! bars) or stretched. The GL renderer uploads the picture as textures
//! (one RGBA/RGB texture, three R8 planes for I420, or YUYV packed two
//! pixels per RGBA texel) and converts YUV to RGB (BT.601 limited range,
//! like `framewire-codec`) in the fragment shader. Another backend (Vulkan)
//! implements the same trait.

use framewire_codec::PixelLayout;
use glow::HasContext;

/// How a picture fills a window of another shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// Keep the aspect ratio; black bars fill the rest.
    Letterbox,
    /// Fill the window; the aspect ratio may change.
    Stretch,
}

/// Where a picture of `src` size lands in a window of `win` size:
/// `(x, y, width, height)` in window pixels, y down.
pub fn placement(scale: Scale, src: (u32, u32), win: (u32, u32)) -> (i32, i32, u32, u32) {
    if scale == Scale::Stretch || src.0 == 0 || src.1 == 0 {
        return (0, 0, win.0, win.1);
    }
    let (sw, sh, ww, wh) = (u64::from(src.0), u64::from(src.1), u64::from(win.0), u64::from(win.1));
    // Cannot truncate: each result is at most the window's own u32 size.
    #[allow(clippy::cast_possible_truncation)]
    let (w, h) = if ww * sh <= wh * sw {
        (ww as u32, (ww * sh / sw) as u32)
    } else {
        ((wh * sw / sh) as u32, wh as u32)
    };
    let x = i32::try_from((win.0 - w) / 2).unwrap_or(0);
    let y = i32::try_from((win.1 - h) / 2).unwrap_or(0);
    (x, y, w, h)
}

/// Maps a window position to source pixel coordinates (may fall outside
/// the picture, e.g. in a letterbox bar).
pub fn window_to_source(scale: Scale, src: (u32, u32), win: (u32, u32), pos: (f64, f64)) -> (i32, i32) {
    let (x, y, w, h) = placement(scale, src, win);
    if w == 0 || h == 0 {
        return (0, 0);
    }
    let sx = (pos.0 - f64::from(x)) * f64::from(src.0) / f64::from(w);
    let sy = (pos.1 - f64::from(y)) * f64::from(src.1) / f64::from(h);
    // Saturating float-to-int casts; window coordinates are small.
    #[allow(clippy::cast_possible_truncation)]
    (sx.floor() as i32, sy.floor() as i32)
}

/// Draws pictures into a window.
pub trait Renderer {
    /// Draws one tightly packed picture of `width` x `height` in `format`
    /// scaled into the window (then the caller presents it).
    fn render_frame(&mut self, buffer: &[u8], width: u32, height: u32, format: PixelLayout) -> Result<(), String>;
    /// The window's drawable size changed.
    fn resize(&mut self, width: u32, height: u32);
    /// Redraws the last picture (after a resize or expose).
    fn redraw(&mut self);
}

const VERTEX: &str = r"#version 330 core
out vec2 uv;
void main() {
    vec2 p = vec2(float((gl_VertexID & 1) * 2 - 1), float((gl_VertexID >> 1) * 2 - 1));
    uv = vec2((p.x + 1.0) * 0.5, (1.0 - p.y) * 0.5);
    gl_Position = vec4(p, 0.0, 1.0);
}
";

const FRAGMENT: &str = r"#version 330 core
in vec2 uv;
out vec4 colour;
uniform sampler2D t0;
uniform sampler2D t1;
uniform sampler2D t2;
// 0 rgba, 1 bgra, 2 rgb, 3 bgr, 4 i420, 5 yuyv
uniform int mode;
uniform float src_width;
vec3 yuv(float y, float u, float v) {
    y = (y * 255.0 - 16.0) / 219.0;
    u = (u * 255.0 - 128.0) / 224.0;
    v = (v * 255.0 - 128.0) / 224.0;
    return clamp(vec3(y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u), 0.0, 1.0);
}
void main() {
    vec4 c = texture(t0, uv);
    if (mode == 0 || mode == 2) {
        colour = vec4(c.rgb, 1.0);
    } else if (mode == 1 || mode == 3) {
        colour = vec4(c.bgr, 1.0);
    } else if (mode == 4) {
        colour = vec4(yuv(c.r, texture(t1, uv).r, texture(t2, uv).r), 1.0);
    } else {
        float px = floor(uv.x * src_width);
        float y = mod(px, 2.0) < 1.0 ? c.r : c.b;
        colour = vec4(yuv(y, c.g, c.a), 1.0);
    }
}
";

/// An OpenGL 3.3 renderer.
#[derive(Debug)]
pub struct GlRenderer {
    gl: glow::Context,
    program: glow::Program,
    vao: glow::VertexArray,
    textures: [glow::Texture; 3],
    scale: Scale,
    window: (u32, u32),
    /// Size of the picture on the textures, and its shader mode.
    picture: Option<(u32, u32, i32)>,
}

fn gl_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl GlRenderer {
    /// A renderer on `gl` (current on this thread).
    pub fn new(gl: glow::Context, scale: Scale, window: (u32, u32)) -> Result<GlRenderer, String> {
        // SAFETY: `gl` is current on this thread for these calls; every
        // object created is used only with this context.
        unsafe {
            let program = gl.create_program().map_err(gl_err)?;
            let mut shaders = Vec::new();
            for (kind, src) in [(glow::VERTEX_SHADER, VERTEX), (glow::FRAGMENT_SHADER, FRAGMENT)] {
                let s = gl.create_shader(kind).map_err(gl_err)?;
                gl.shader_source(s, src);
                gl.compile_shader(s);
                if !gl.get_shader_compile_status(s) {
                    return Err(format!("shader: {}", gl.get_shader_info_log(s)));
                }
                gl.attach_shader(program, s);
                shaders.push(s);
            }
            gl.link_program(program);
            if !gl.get_program_link_status(program) {
                return Err(format!("program: {}", gl.get_program_info_log(program)));
            }
            for s in shaders {
                gl.detach_shader(program, s);
                gl.delete_shader(s);
            }
            let vao = gl.create_vertex_array().map_err(gl_err)?;
            let mut textures = Vec::new();
            for _ in 0..3 {
                let t = gl.create_texture().map_err(gl_err)?;
                gl.bind_texture(glow::TEXTURE_2D, Some(t));
                for (p, v) in [
                    (glow::TEXTURE_MIN_FILTER, glow::LINEAR),
                    (glow::TEXTURE_MAG_FILTER, glow::LINEAR),
                    (glow::TEXTURE_WRAP_S, glow::CLAMP_TO_EDGE),
                    (glow::TEXTURE_WRAP_T, glow::CLAMP_TO_EDGE),
                ] {
                    // Cannot truncate: GL enum values are small.
                    #[allow(clippy::cast_possible_wrap)]
                    gl.tex_parameter_i32(glow::TEXTURE_2D, p, v as i32);
                }
                textures.push(t);
            }
            gl.use_program(Some(program));
            for (i, name) in ["t0", "t1", "t2"].iter().enumerate() {
                let loc = gl.get_uniform_location(program, name);
                // Cannot truncate: i < 3.
                #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                gl.uniform_1_i32(loc.as_ref(), i as i32);
            }
            gl.pixel_store_i32(glow::UNPACK_ALIGNMENT, 1);
            Ok(GlRenderer {
                gl,
                program,
                vao,
                textures: [textures[0], textures[1], textures[2]],
                scale,
                window,
                picture: None,
            })
        }
    }

    fn upload(&self, unit: usize, internal: u32, format: u32, w: u32, h: u32, data: &[u8]) {
        // SAFETY: the context is current; `data` holds w*h texels of
        // `format` (checked by the caller), rows tightly packed
        // (UNPACK_ALIGNMENT 1).
        unsafe {
            self.gl
                .active_texture(glow::TEXTURE0 + u32::try_from(unit).unwrap_or(0));
            self.gl.bind_texture(glow::TEXTURE_2D, Some(self.textures[unit]));
            #[allow(clippy::cast_possible_wrap)]
            self.gl.tex_image_2d(
                glow::TEXTURE_2D,
                0,
                internal as i32,
                w as i32,
                h as i32,
                0,
                format,
                glow::UNSIGNED_BYTE,
                glow::PixelUnpackData::Slice(Some(data)),
            );
        }
    }

    fn draw(&mut self) {
        // SAFETY: the context is current; the program, VAO and textures are
        // this context's.
        unsafe {
            let gl = &self.gl;
            gl.viewport(0, 0, self.window.0 as i32, self.window.1 as i32);
            gl.clear_color(0.0, 0.0, 0.0, 1.0);
            gl.clear(glow::COLOR_BUFFER_BIT);
            let Some((w, h, mode)) = self.picture else { return };
            let (x, y, vw, vh) = placement(self.scale, (w, h), self.window);
            // GL's viewport origin is bottom-left.
            let gy = self.window.1 as i32 - y - vh as i32;
            gl.viewport(x, gy, vw as i32, vh as i32);
            gl.use_program(Some(self.program));
            gl.uniform_1_i32(gl.get_uniform_location(self.program, "mode").as_ref(), mode);
            gl.uniform_1_f32(gl.get_uniform_location(self.program, "src_width").as_ref(), w as f32);
            for (i, t) in self.textures.iter().enumerate() {
                gl.active_texture(glow::TEXTURE0 + u32::try_from(i).unwrap_or(0));
                gl.bind_texture(glow::TEXTURE_2D, Some(*t));
            }
            gl.bind_vertex_array(Some(self.vao));
            gl.draw_arrays(glow::TRIANGLE_STRIP, 0, 4);
        }
    }
}

impl Renderer for GlRenderer {
    fn render_frame(&mut self, buffer: &[u8], width: u32, height: u32, format: PixelLayout) -> Result<(), String> {
        let need = format.frame_size(width, height).map_err(gl_err)?;
        if buffer.len() < need {
            return Err(format!(
                "{format:?} {width}x{height} needs {need} bytes, got {}",
                buffer.len()
            ));
        }
        let mode = match format {
            PixelLayout::Rgba | PixelLayout::Bgra => {
                self.upload(0, glow::RGBA8, glow::RGBA, width, height, buffer);
                if format == PixelLayout::Rgba { 0 } else { 1 }
            }
            PixelLayout::Rgb | PixelLayout::Bgr => {
                self.upload(0, glow::RGB8, glow::RGB, width, height, buffer);
                if format == PixelLayout::Rgb { 2 } else { 3 }
            }
            PixelLayout::I420 => {
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                let ys = width as usize * height as usize;
                let cs = cw as usize * ch as usize;
                self.upload(0, glow::R8, glow::RED, width, height, &buffer[..ys]);
                self.upload(1, glow::R8, glow::RED, cw, ch, &buffer[ys..ys + cs]);
                self.upload(2, glow::R8, glow::RED, cw, ch, &buffer[ys + cs..ys + 2 * cs]);
                4
            }
            PixelLayout::Yuyv => {
                self.upload(0, glow::RGBA8, glow::RGBA, width / 2, height, buffer);
                5
            }
            other => return Err(format!("cannot show {other:?}")),
        };
        self.picture = Some((width, height, mode));
        self.draw();
        Ok(())
    }

    fn resize(&mut self, width: u32, height: u32) {
        self.window = (width, height);
    }

    fn redraw(&mut self) {
        self.draw();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_and_mapping() {
        assert_eq!(placement(Scale::Letterbox, (320, 240), (800, 400)), (133, 0, 533, 400));
        assert_eq!(placement(Scale::Letterbox, (320, 240), (640, 800)), (0, 160, 640, 480));
        assert_eq!(placement(Scale::Stretch, (320, 240), (800, 400)), (0, 0, 800, 400));
        assert_eq!(
            window_to_source(Scale::Letterbox, (320, 240), (640, 800), (200.0, 260.0)),
            (100, 50)
        );
        assert_eq!(
            window_to_source(Scale::Stretch, (320, 240), (640, 480), (639.0, 479.0)),
            (319, 239)
        );
    }
}
