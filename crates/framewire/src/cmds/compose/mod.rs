//! `framewire compose`: one change at a time to a running compose source
//! (docs/compose.md). Each command reads the source's table
//! (SOURCE_GET), changes it (`edit`) and sets it back (SOURCE_SET); the
//! source takes it at its next frame with no gap.

mod edit;

use std::time::Duration;

use anyhow::bail;
use framewire_proto::control::{Name, SourceTable};
use framewire_proto::{Request, Response};

use crate::util;
pub use edit::Spec;

/// Change a running compose source: its layout, its inputs, one tile.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire compose show 127.0.0.1:7400 wall\n  \
framewire compose layout 127.0.0.1:7400 wall pip\n  \
framewire compose add 127.0.0.1:7400 wall lobby=10.0.0.7:7400/cam\n  \
framewire compose move 127.0.0.1:7400 wall lobby 1          # lobby into the first tile\n  \
framewire compose from 127.0.0.1:7400 wall lobby 10.0.0.8:7400/cam   # same tile, another camera\n  \
framewire compose tile 127.0.0.1:7400 wall lobby rect=0,0,960,540 z=1 border=2 on-loss=freeze\n  \
framewire compose rm 127.0.0.1:7400 wall lobby\n\n\
Tile keys: rect=X,Y,W,H (canvas pixels), crop=X,Y,W,H (shares of the picture, 0 to 1), z=N\n\
(higher covers lower), opacity=0..1, fit=keep|fill, label=TEXT|none, border=PIXELS,\n\
on-loss=slate|freeze. Changing a tile of a grid, pip or side-by-side layout turns it into a\n\
custom one with the same tiles. A change the source refuses (a tile outside the canvas, an\n\
input that cannot be pulled) changes nothing and says why.")]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Print the inputs and the tiles as drawn.
    Show {
        /// The node, HOST[:PORT].
        addr: String,
        /// The compose source's stream name.
        name: String,
        /// One JSON object: inputs, layout, tiles.
        #[arg(long)]
        json: bool,
    },
    /// Set a ready-made layout: grid, pip or side-by-side.
    Layout { addr: String, name: String, layout: String },
    /// Add an input, [NAME=][HOST:PORT/]STREAM.
    Add {
        addr: String,
        name: String,
        input: String,
        /// Its tile, X,Y,W,H (needed when the layout is custom).
        #[arg(long, value_parser = parse_rect)]
        rect: Option<framewire_media::compose::Rect>,
    },
    /// Take an input and its tiles off.
    Rm { addr: String, name: String, input: String },
    /// Take an input's frames from another stream or node: [HOST:PORT/]STREAM.
    From {
        addr: String,
        name: String,
        input: String,
        from: String,
    },
    /// Move an input into tile SLOT (1-based, as `show` lists them); the
    /// input there takes its place.
    Move {
        addr: String,
        name: String,
        input: String,
        slot: usize,
    },
    /// Change an input's tile: key=value ... (see below).
    Tile {
        addr: String,
        name: String,
        input: String,
        #[arg(required = true)]
        props: Vec<String>,
    },
}

fn parse_rect(s: &str) -> Result<framewire_media::compose::Rect, String> {
    edit::parse_rect(s).map_err(|e| e.to_string())
}

const TIMEOUT: Duration = Duration::from_secs(5);

async fn get(c: &mut framewire_net::Client, name: &str) -> anyhow::Result<Spec> {
    let Response::SourceGet(SourceTable { table }) = c.request(Request::SourceGet(Name { name: name.into() })).await?
    else {
        bail!("the node answered SOURCE_GET with something else");
    };
    Spec::parse(&table)
}

fn show(spec: &Spec, name: &str, json: bool) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({
            "name": name,
            "size": [spec.width, spec.height],
            "layout": spec.layout,
            "inputs": spec.inputs.iter().map(|i| serde_json::json!({
                "name": edit::input_name(i),
                "from": edit::input_from(i),
            })).collect::<Vec<_>>(),
            "tiles": spec.tiles,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{name}: {}x{}, layout {}", spec.width, spec.height, spec.layout);
    println!("inputs:");
    for i in &spec.inputs {
        println!("  {:<16} {}", edit::input_name(i), edit::input_from(i));
    }
    println!("tiles:");
    for (n, t) in spec.tiles.iter().enumerate() {
        let mut extra = Vec::new();
        if t.crop != framewire_media::compose::Crop::ALL {
            extra.push(format!("crop {},{},{},{}", t.crop.x, t.crop.y, t.crop.w, t.crop.h));
        }
        if t.z != 0 {
            extra.push(format!("z {}", t.z));
        }
        if t.opacity < 1.0 {
            extra.push(format!("opacity {}", t.opacity));
        }
        if t.fit == framewire_media::compose::Fit::Fill {
            extra.push("fill".into());
        }
        if t.border > 0 {
            extra.push(format!("border {}", t.border));
        }
        if t.on_loss == framewire_media::compose::OnLoss::Freeze {
            extra.push("freezes on loss".into());
        }
        if let Some(l) = &t.label {
            extra.push(format!("label {l:?}"));
        }
        println!(
            "  {:>2}. {:<16} {},{},{},{}  {}",
            n + 1,
            t.input,
            t.rect.x,
            t.rect.y,
            t.rect.w,
            t.rect.h,
            extra.join(", ")
        );
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (addr, name) = match &args.cmd {
        Cmd::Show { addr, name, .. }
        | Cmd::Layout { addr, name, .. }
        | Cmd::Add { addr, name, .. }
        | Cmd::Rm { addr, name, .. }
        | Cmd::From { addr, name, .. }
        | Cmd::Move { addr, name, .. }
        | Cmd::Tile { addr, name, .. } => (addr.clone(), name.clone()),
    };
    let mut c = util::connect(&addr, TIMEOUT).await?;
    let mut spec = get(&mut c, &name).await?;
    let done = match args.cmd {
        Cmd::Show { json, .. } => return show(&spec, &name, json),
        Cmd::Layout { layout, .. } => {
            spec.set_layout(&layout)?;
            format!("layout {layout}")
        }
        Cmd::Add { input, rect, .. } => {
            spec.add(&input, rect)?;
            format!("`{}` added", edit::input_name(&input))
        }
        Cmd::Rm { input, .. } => {
            spec.remove(&input)?;
            format!("`{input}` removed")
        }
        Cmd::From { input, from, .. } => {
            spec.set_from(&input, &from)?;
            format!("`{input}` now from {from}")
        }
        Cmd::Move { input, slot, .. } => {
            spec.move_to(&input, slot)?;
            format!("`{input}` in tile {slot}")
        }
        Cmd::Tile { input, props, .. } => {
            spec.set_tile(&input, &props)?;
            format!("`{input}`'s tile: {}", props.join(" "))
        }
    };
    let table = spec.to_toml()?;
    let Response::SourceSet(_) = c.request(Request::SourceSet(SourceTable { table })).await? else {
        bail!("the node answered SOURCE_SET with something else");
    };
    println!("{}: {name}: {done}", c.peer().name);
    Ok(())
}
