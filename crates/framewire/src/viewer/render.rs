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

/// What every fragment shader starts with.
const FRAGMENT_HEAD: &str = r"#version 330 core
in vec2 uv;
out vec4 colour;
uniform sampler2D t0;
uniform sampler2D t1;
uniform sampler2D t2;
uniform float src_width;
vec3 yuv(float y, float u, float v) {
    y = (y * 255.0 - 16.0) / 219.0;
    u = (u * 255.0 - 128.0) / 224.0;
    v = (v * 255.0 - 128.0) / 224.0;
    return clamp(vec3(y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u), 0.0, 1.0);
}
";

/// One program per kind of picture: a software rasteriser (llvmpipe)
/// runs every branch of a shader for every pixel, so one shader choosing
/// at run time cost most of a 1080p frame's time on screen. Indexed by
/// [`Program`].
const FRAGMENT_MAIN: [&str; 4] = [
    // RGB(A)
    "void main() { colour = vec4(texture(t0, uv).rgb, 1.0); }",
    // BGR(A)
    "void main() { colour = vec4(texture(t0, uv).bgr, 1.0); }",
    // I420: three planes
    "void main() { colour = vec4(yuv(texture(t0, uv).r, texture(t1, uv).r, texture(t2, uv).r), 1.0); }",
    // YUYV: two pixels per texel
    "void main() {
        vec4 c = texture(t0, uv);
        float y = mod(floor(uv.x * src_width), 2.0) < 1.0 ? c.r : c.b;
        colour = vec4(yuv(y, c.g, c.a), 1.0);
    }",
];

/// Which of the programs draws a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    Rgb = 0,
    Bgr = 1,
    I420 = 2,
    Yuyv = 3,
}

/// An OpenGL 3.3 renderer.
#[derive(Debug)]
pub struct GlRenderer {
    gl: glow::Context,
    programs: [glow::Program; 4],
    vao: glow::VertexArray,
    textures: [glow::Texture; 3],
    scale: Scale,
    window: (u32, u32),
    /// Size of the picture on the textures, and its program.
    picture: Option<(u32, u32, Program)>,
    /// The textures' filter: nearest when a picture is shown pixel for
    /// pixel (cheaper in software, and exact), else linear.
    filter: u32,
}

fn gl_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A linked program of the vertex shader and `fragment`.
///
/// # Safety
/// `gl` is current on this thread.
unsafe fn program(gl: &glow::Context, fragment: &str) -> Result<glow::Program, String> {
    // SAFETY: the caller's: `gl` is current.
    unsafe {
        let program = gl.create_program().map_err(gl_err)?;
        let mut shaders = Vec::new();
        for (kind, src) in [(glow::VERTEX_SHADER, VERTEX), (glow::FRAGMENT_SHADER, fragment)] {
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
        Ok(program)
    }
}

impl GlRenderer {
    /// A renderer on `gl` (current on this thread).
    pub fn new(gl: glow::Context, scale: Scale, window: (u32, u32)) -> Result<GlRenderer, String> {
        // SAFETY: `gl` is current on this thread for these calls; every
        // object created is used only with this context.
        unsafe {
            let mut programs = Vec::new();
            for main in FRAGMENT_MAIN {
                programs.push(program(&gl, &format!("{FRAGMENT_HEAD}{main}"))?);
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
            for p in &programs {
                gl.use_program(Some(*p));
                for (i, name) in ["t0", "t1", "t2"].iter().enumerate() {
                    let loc = gl.get_uniform_location(*p, name);
                    // Cannot truncate: i < 3.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                    gl.uniform_1_i32(loc.as_ref(), i as i32);
                }
            }
            gl.pixel_store_i32(glow::UNPACK_ALIGNMENT, 1);
            Ok(GlRenderer {
                gl,
                programs: [programs[0], programs[1], programs[2], programs[3]],
                vao,
                textures: [textures[0], textures[1], textures[2]],
                scale,
                window,
                picture: None,
                filter: glow::LINEAR,
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
            let Some((w, h, kind)) = self.picture else {
                gl.viewport(0, 0, self.window.0 as i32, self.window.1 as i32);
                gl.clear_color(0.0, 0.0, 0.0, 1.0);
                gl.clear(glow::COLOR_BUFFER_BIT);
                return;
            };
            let (x, y, vw, vh) = placement(self.scale, (w, h), self.window);
            if (x, y, vw, vh) != (0, 0, self.window.0, self.window.1) {
                // Bars around the picture.
                gl.viewport(0, 0, self.window.0 as i32, self.window.1 as i32);
                gl.clear_color(0.0, 0.0, 0.0, 1.0);
                gl.clear(glow::COLOR_BUFFER_BIT);
            }
            // GL's viewport origin is bottom-left.
            let gy = self.window.1 as i32 - y - vh as i32;
            gl.viewport(x, gy, vw as i32, vh as i32);
            let program = self.programs[kind as usize];
            gl.use_program(Some(program));
            if kind == Program::Yuyv {
                gl.uniform_1_f32(gl.get_uniform_location(program, "src_width").as_ref(), w as f32);
            }
            let filter = if (vw, vh) == (w, h) {
                glow::NEAREST
            } else {
                glow::LINEAR
            };
            for (i, t) in self.textures.iter().enumerate() {
                gl.active_texture(glow::TEXTURE0 + u32::try_from(i).unwrap_or(0));
                gl.bind_texture(glow::TEXTURE_2D, Some(*t));
                if filter != self.filter {
                    for p in [glow::TEXTURE_MIN_FILTER, glow::TEXTURE_MAG_FILTER] {
                        // Cannot truncate: GL enum values are small.
                        #[allow(clippy::cast_possible_wrap)]
                        gl.tex_parameter_i32(glow::TEXTURE_2D, p, filter as i32);
                    }
                }
            }
            self.filter = filter;
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
                if format == PixelLayout::Rgba {
                    Program::Rgb
                } else {
                    Program::Bgr
                }
            }
            PixelLayout::Rgb | PixelLayout::Bgr => {
                self.upload(0, glow::RGB8, glow::RGB, width, height, buffer);
                if format == PixelLayout::Rgb {
                    Program::Rgb
                } else {
                    Program::Bgr
                }
            }
            PixelLayout::I420 => {
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                let ys = width as usize * height as usize;
                let cs = cw as usize * ch as usize;
                self.upload(0, glow::R8, glow::RED, width, height, &buffer[..ys]);
                self.upload(1, glow::R8, glow::RED, cw, ch, &buffer[ys..ys + cs]);
                self.upload(2, glow::R8, glow::RED, cw, ch, &buffer[ys + cs..ys + 2 * cs]);
                Program::I420
            }
            PixelLayout::Yuyv => {
                self.upload(0, glow::RGBA8, glow::RGBA, width / 2, height, buffer);
                Program::Yuyv
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
