//! Where each input goes on the canvas: tiles, the three presets, and the
//! rules a layout must keep (checked before it replaces the one in use).

use std::fmt;

/// A rectangle in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl fmt::Display for Rect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}+{}+{}", self.w, self.h, self.x, self.y)
    }
}

/// The part of an input's picture a tile shows, as shares of its width
/// and height (0..=1): the whole picture by default.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Crop {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Crop {
    /// The whole picture.
    pub const ALL: Crop = Crop {
        x: 0.0,
        y: 0.0,
        w: 1.0,
        h: 1.0,
    };
}

/// How a picture of another shape fills its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// The whole picture, its shape kept, black bars around it.
    #[default]
    Keep,
    /// Stretched to the tile.
    Fill,
}

/// What a tile shows while its input has no picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnLoss {
    /// The NO SIGNAL slate with the input's name and the reason.
    #[default]
    Slate,
    /// The last picture, if there was one (else the slate).
    Freeze,
}

/// One input's place on the canvas.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tile {
    /// The input shown (its name among the compositor's inputs).
    pub input: String,
    pub rect: Rect,
    #[serde(default = "all")]
    pub crop: Crop,
    /// Drawn in rising order: a higher tile covers a lower one.
    #[serde(default)]
    pub z: i32,
    /// 0 (unseen) to 1 (covers what is under it).
    #[serde(default = "one")]
    pub opacity: f64,
    #[serde(default)]
    pub fit: Fit,
    /// A caption in the tile's lower left corner.
    #[serde(default)]
    pub label: Option<String>,
    /// A white frame this many pixels wide inside the tile's edge.
    #[serde(default)]
    pub border: u32,
    #[serde(default)]
    pub on_loss: OnLoss,
}

fn all() -> Crop {
    Crop::ALL
}
fn one() -> f64 {
    1.0
}

impl Tile {
    /// `input` in `rect`, whole, opaque, its shape kept, labelled with
    /// its name.
    pub fn new(input: &str, rect: Rect) -> Tile {
        Tile {
            input: input.to_owned(),
            rect,
            crop: Crop::ALL,
            z: 0,
            opacity: 1.0,
            fit: Fit::Keep,
            label: Some(input.to_owned()),
            border: 0,
            on_loss: OnLoss::Slate,
        }
    }
}

/// The ready-made layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Equal tiles, as square a grid as the inputs need.
    Grid,
    /// The first input fills the canvas, the second a quarter-width
    /// window in its lower right corner (later ones are not shown).
    Pip,
    /// The inputs in one row, equal widths.
    SideBySide,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Preset, String> {
        match s {
            "grid" => Ok(Preset::Grid),
            "pip" => Ok(Preset::Pip),
            "side-by-side" => Ok(Preset::SideBySide),
            other => Err(format!("unknown layout `{other}` (grid, pip, side-by-side)")),
        }
    }
}

/// Why a layout was refused; the layout in use stays.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("the canvas must be 16x16 to 7680x4320 with even sides, not {0}x{1}")]
    Canvas(u32, u32),
    #[error("tile of `{input}` at {rect} is outside the {width}x{height} canvas")]
    Outside {
        input: String,
        rect: Rect,
        width: u32,
        height: u32,
    },
    #[error("tile of `{input}` at {rect} is smaller than 2x2")]
    TooSmall { input: String, rect: Rect },
    #[error("no input is called `{0}` (the compositor's inputs: {1})")]
    UnknownInput(String, String),
    #[error("tile of `{0}`: opacity must be 0 to 1, not {1}")]
    Opacity(String, f64),
    #[error("tile of `{0}`: the crop must lie within the picture (shares 0 to 1, not empty)")]
    Crop(String),
    #[error("tile of `{0}`: a label has at most 64 characters and a border at most a quarter of the tile")]
    Decoration(String),
    #[error("at most {0} tiles")]
    TooMany(usize),
}

/// Tiles at most.
pub const MAX_TILES: usize = 64;

/// Tiles on a canvas.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub tiles: Vec<Tile>,
}

/// `v` rounded down to an even number (chroma rows and columns pair up).
fn even(v: u32) -> u32 {
    v & !1
}

impl Layout {
    /// A preset for `inputs` on a `width`×`height` canvas.
    pub fn preset(p: Preset, width: u32, height: u32, inputs: &[String]) -> Layout {
        let n = u32::try_from(inputs.len()).unwrap_or(u32::MAX).max(1);
        let rect = |x: u32, y: u32, w: u32, h: u32| Rect {
            x: even(x),
            y: even(y),
            w: even(w),
            h: even(h),
        };
        let tiles = match p {
            Preset::Grid => {
                // The smallest square-ish grid that holds them.
                let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
                let rows = n.div_ceil(cols);
                let (tw, th) = (width / cols, height / rows);
                inputs
                    .iter()
                    .zip(0u32..)
                    .map(|(name, i)| Tile::new(name, rect((i % cols) * tw, (i / cols) * th, tw, th)))
                    .collect()
            }
            Preset::SideBySide => {
                let tw = width / n;
                inputs
                    .iter()
                    .zip(0u32..)
                    .map(|(name, i)| Tile::new(name, rect(i * tw, 0, tw, height)))
                    .collect()
            }
            Preset::Pip => {
                let mut tiles = Vec::new();
                if let Some(main) = inputs.first() {
                    let mut t = Tile::new(main, rect(0, 0, width, height));
                    t.fit = Fit::Fill;
                    tiles.push(t);
                }
                if let Some(inset) = inputs.get(1) {
                    let (w, h) = (width / 4, height / 4);
                    let margin = width / 32;
                    let mut t = Tile::new(inset, rect(width - w - margin, height - h - margin, w, h));
                    t.z = 1;
                    t.border = 2;
                    tiles.push(t);
                }
                tiles
            }
        };
        Layout { tiles }
    }

    /// Whether this layout can be drawn on a `width`×`height` canvas with
    /// these inputs; the first rule broken, if any.
    pub fn check(&self, width: u32, height: u32, inputs: &[String]) -> Result<(), LayoutError> {
        check_canvas(width, height)?;
        if self.tiles.len() > MAX_TILES {
            return Err(LayoutError::TooMany(MAX_TILES));
        }
        for t in &self.tiles {
            let r = t.rect;
            let name = || t.input.clone();
            if !inputs.contains(&t.input) {
                return Err(LayoutError::UnknownInput(name(), inputs.join(", ")));
            }
            if r.w < 2 || r.h < 2 {
                return Err(LayoutError::TooSmall { input: name(), rect: r });
            }
            if u64::from(r.x) + u64::from(r.w) > u64::from(width) || u64::from(r.y) + u64::from(r.h) > u64::from(height)
            {
                return Err(LayoutError::Outside {
                    input: name(),
                    rect: r,
                    width,
                    height,
                });
            }
            if !(0.0..=1.0).contains(&t.opacity) {
                return Err(LayoutError::Opacity(name(), t.opacity));
            }
            let c = t.crop;
            let share = |v: f64| (0.0..=1.0).contains(&v);
            if !(share(c.x)
                && share(c.y)
                && c.w > 0.0
                && c.h > 0.0
                && c.x + c.w <= 1.0 + 1e-9
                && c.y + c.h <= 1.0 + 1e-9)
            {
                return Err(LayoutError::Crop(name()));
            }
            let long_label = t.label.as_ref().is_some_and(|l| l.chars().count() > 64);
            if long_label || t.border > r.w.min(r.h) / 4 {
                return Err(LayoutError::Decoration(name()));
            }
        }
        Ok(())
    }
}

/// Whether a canvas of `width`×`height` can be drawn.
pub fn check_canvas(width: u32, height: u32) -> Result<(), LayoutError> {
    if !(16..=7680).contains(&width)
        || !(16..=4320).contains(&height)
        || !width.is_multiple_of(2)
        || !height.is_multiple_of(2)
    {
        return Err(LayoutError::Canvas(width, height));
    }
    Ok(())
}
