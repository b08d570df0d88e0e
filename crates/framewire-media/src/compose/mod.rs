//! The compositor's engine: several pictures on one canvas, placed by a
//! [`Layout`] that can be replaced between two frames. Sans-IO: the caller
//! hands in each input's state (its newest picture, or why there is none)
//! and gets one I420 picture back; subscribing, decoding and pacing are the
//! source's (`framewire-net`, `sources::compose`).
//!
//! Work is done in the I420 planes: each tile's picture is cropped and
//! scaled plane by plane (`fast_image_resize`, SIMD), then copied or
//! blended in. An input with no picture shows the NO SIGNAL slate with its
//! name and the reason, or its last picture (`on_loss = freeze`).

mod draw;
pub mod layout;
#[cfg(test)]
mod tests;

use framewire_codec::{PixelBuffer, PixelLayout};

pub use self::layout::{Crop, Fit, Layout, LayoutError, OnLoss, Preset, Rect, Tile};

/// What an input has to show now.
#[derive(Debug, Clone, Copy)]
pub enum InputState<'a> {
    /// Its newest picture (any layout; I420 is used as it is).
    Live(&'a PixelBuffer),
    /// No picture now: why, and the last one seen, if any.
    Lost {
        reason: &'a str,
        last: Option<&'a PixelBuffer>,
    },
}

/// Draws the canvas.
#[derive(Debug)]
pub struct Compositor {
    width: u32,
    height: u32,
    inputs: Vec<String>,
    layout: Layout,
    planes: draw::Planes,
}

impl Compositor {
    /// A compositor of `inputs` on a `width`×`height` canvas.
    pub fn new(width: u32, height: u32, inputs: Vec<String>, layout: Layout) -> Result<Compositor, LayoutError> {
        layout.check(width, height, &inputs)?;
        Ok(Compositor {
            width,
            height,
            inputs,
            layout,
            planes: draw::Planes::new(width, height),
        })
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The inputs' names.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Canvas size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Replaces the layout from the next frame on; a layout that breaks a
    /// rule is refused with the reason and nothing changes.
    pub fn set_layout(&mut self, layout: Layout) -> Result<(), LayoutError> {
        layout.check(self.width, self.height, &self.inputs)?;
        self.layout = layout;
        Ok(())
    }

    /// Replaces the inputs and the layout together (adding or removing an
    /// input); refused whole like [`Compositor::set_layout`].
    pub fn set_inputs(&mut self, inputs: Vec<String>, layout: Layout) -> Result<(), LayoutError> {
        layout.check(self.width, self.height, &inputs)?;
        self.inputs = inputs;
        self.layout = layout;
        Ok(())
    }

    /// Draws one frame: each tile, lowest `z` first, from `state(input)`.
    pub fn compose<'a>(&mut self, state: impl Fn(&str) -> InputState<'a>) -> PixelBuffer {
        self.planes.clear();
        let mut order: Vec<&Tile> = self.layout.tiles.iter().collect();
        order.sort_by_key(|t| t.z);
        for tile in order {
            let shown = match state(&tile.input) {
                InputState::Live(pic) => Some(pic),
                InputState::Lost { last: Some(pic), .. } if tile.on_loss == OnLoss::Freeze => Some(pic),
                InputState::Lost { reason, .. } => {
                    self.planes.slate(tile, reason);
                    None
                }
            };
            if let Some(pic) = shown {
                let converted;
                let pic = if pic.layout() == PixelLayout::I420 {
                    pic
                } else {
                    match pic.convert(PixelLayout::I420) {
                        Ok(p) => {
                            converted = p;
                            &converted
                        }
                        Err(e) => {
                            self.planes.slate(tile, &format!("cannot show: {e}"));
                            continue;
                        }
                    }
                };
                self.planes.picture(tile, pic);
            }
            self.planes.decorate(tile);
        }
        self.planes.picture_buffer()
    }
}
