//! One change to a compose source's table, as SOURCE_GET gave it: the
//! table in, the table to SOURCE_SET out. Pure, so every change is tested
//! without a node; the node checks the result again (and refuses it with
//! the reason, changing nothing).

use anyhow::{Context, bail};
use framewire_media::compose::{Crop, Fit, Layout, OnLoss, Preset, Rect, Tile};

/// A compose source's table, with the parts a change touches read out.
#[derive(Debug, Clone)]
pub struct Spec {
    table: toml::Table,
    /// `[NAME=][HOST:PORT/]STREAM` each.
    pub inputs: Vec<String>,
    pub width: u32,
    pub height: u32,
    /// `grid`, `pip`, `side-by-side` or `custom`.
    pub layout: String,
    /// The tiles as drawn (a preset's worked out).
    pub tiles: Vec<Tile>,
}

/// An input's name in the layout: `NAME=` if given, else its stream.
pub fn input_name(spec: &str) -> &str {
    let spec = spec.trim();
    match spec.split_once('=') {
        Some((n, _)) => n.trim(),
        None => spec.rsplit_once('/').map_or(spec, |(_, s)| s),
    }
}

/// Where an input's frames come from: `[HOST:PORT/]STREAM`.
pub fn input_from(spec: &str) -> &str {
    spec.split_once('=').map_or(spec, |(_, r)| r).trim()
}

fn size(table: &toml::Table) -> anyhow::Result<(u32, u32)> {
    let s = table.get("size").and_then(toml::Value::as_str).unwrap_or("1920x1080");
    let (w, h) = s.split_once(['x', 'X']).context("size is not WxH")?;
    Ok((w.parse()?, h.parse()?))
}

impl Spec {
    /// Reads a table SOURCE_GET answered; refused unless it is a compose
    /// source's.
    pub fn parse(text: &str) -> anyhow::Result<Spec> {
        let table: toml::Table = toml::from_str(text).context("the node's table is not TOML")?;
        let kind = table.get("kind").and_then(toml::Value::as_str).unwrap_or_default();
        if kind != "compose" {
            bail!(
                "`{}` is a `{kind}` source, not a compose source",
                table.get("name").and_then(toml::Value::as_str).unwrap_or("?")
            );
        }
        let inputs: Vec<String> = match table.get("inputs") {
            Some(toml::Value::String(s)) => s
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => bail!("the compose source has no inputs"),
        };
        let (width, height) = size(&table)?;
        let layout = table
            .get("layout")
            .and_then(toml::Value::as_str)
            .unwrap_or("grid")
            .to_owned();
        let labels = table.get("labels").and_then(toml::Value::as_bool).unwrap_or(true);
        let tiles = if layout == "custom" {
            let t = table.get("tile").cloned().unwrap_or(toml::Value::Array(Vec::new()));
            t.try_into::<Vec<Tile>>().context("the tiles do not parse")?
        } else {
            let preset: Preset = layout.parse().map_err(anyhow::Error::msg)?;
            let names: Vec<String> = inputs.iter().map(|i| input_name(i).to_owned()).collect();
            let mut tiles = Layout::preset(preset, width, height, &names).tiles;
            if !labels {
                for t in &mut tiles {
                    t.label = None;
                }
            }
            tiles
        };
        Ok(Spec {
            table,
            inputs,
            width,
            height,
            layout,
            tiles,
        })
    }

    /// The table to SOURCE_SET.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let mut t = self.table.clone();
        t.insert(
            "inputs".into(),
            toml::Value::Array(self.inputs.iter().cloned().map(toml::Value::String).collect()),
        );
        t.insert("layout".into(), toml::Value::String(self.layout.clone()));
        if self.layout == "custom" {
            t.insert("tile".into(), toml::Value::try_from(&self.tiles).context("the tiles")?);
            // Tiles carry their own labels.
            t.remove("labels");
        } else {
            t.remove("tile");
        }
        toml::to_string(&t).context("the table")
    }

    fn position(&self, input: &str) -> anyhow::Result<usize> {
        self.inputs
            .iter()
            .position(|i| input_name(i) == input)
            .with_context(|| {
                let names: Vec<&str> = self.inputs.iter().map(|i| input_name(i)).collect();
                format!("no input is called `{input}` (inputs: {})", names.join(", "))
            })
    }

    /// A preset's tiles become the custom layout, drawn as before.
    fn make_custom(&mut self) {
        self.layout = "custom".into();
    }

    /// SetLayout: one of the presets (tiles worked out again).
    pub fn set_layout(&mut self, layout: &str) -> anyhow::Result<()> {
        let preset: Preset = layout.parse().map_err(anyhow::Error::msg)?;
        let names: Vec<String> = self.inputs.iter().map(|i| input_name(i).to_owned()).collect();
        self.tiles = Layout::preset(preset, self.width, self.height, &names).tiles;
        self.layout = layout.to_owned();
        self.table.remove("labels");
        Ok(())
    }

    /// An input added: last in a preset's order; in a custom layout in
    /// its own tile at `rect` (required there), above the others.
    pub fn add(&mut self, input: &str, rect: Option<Rect>) -> anyhow::Result<()> {
        let name = input_name(input).to_owned();
        if self.inputs.iter().any(|i| input_name(i) == name) {
            bail!("an input is already called `{name}` (name the new one: NAME=[HOST:PORT/]STREAM)");
        }
        if self.layout == "custom" {
            let rect = rect.context("the layout is custom: give the new input's tile with --rect X,Y,W,H")?;
            let mut tile = Tile::new(&name, rect);
            tile.z = self.tiles.iter().map(|t| t.z).max().map_or(0, |z| z + 1);
            self.tiles.push(tile);
        } else if rect.is_some() {
            bail!(
                "--rect is for a custom layout; this one is `{}` (set a tile's rect with `compose tile`)",
                self.layout
            );
        }
        self.inputs.push(input.trim().to_owned());
        Ok(())
    }

    /// ClearSource: an input and its tiles taken off.
    pub fn remove(&mut self, input: &str) -> anyhow::Result<()> {
        let i = self.position(input)?;
        if self.inputs.len() == 1 {
            bail!("`{input}` is the only input: a compose source needs one (remove the source instead)");
        }
        self.inputs.remove(i);
        self.tiles.retain(|t| t.input != input);
        Ok(())
    }

    /// SetSource: the input's frames from another stream or node; its name
    /// and tiles stay.
    pub fn set_from(&mut self, input: &str, from: &str) -> anyhow::Result<()> {
        let i = self.position(input)?;
        if from.trim().is_empty() || from.contains('=') {
            bail!("`{from}`: expected [HOST:PORT/]STREAM");
        }
        self.inputs[i] = format!("{input}={}", from.trim());
        Ok(())
    }

    /// An input moved to tile `slot` (1-based, in the order `show` lists
    /// the tiles); the input there takes its place.
    pub fn move_to(&mut self, input: &str, slot: usize) -> anyhow::Result<()> {
        let n = self.tiles.len();
        if slot == 0 || slot > n {
            bail!("there is no tile {slot} (tiles 1 to {n})");
        }
        if !self.tiles.iter().any(|t| t.input == input) {
            bail!("`{input}` is in no tile");
        }
        let other = self.tiles[slot - 1].input.clone();
        if other == input {
            return Ok(());
        }
        if self.layout == "custom" {
            for t in &mut self.tiles {
                let swap = if t.input == input {
                    &other
                } else if t.input == other {
                    input
                } else {
                    continue;
                };
                if t.label.as_deref() == Some(t.input.as_str()) {
                    t.label = Some(swap.to_owned());
                }
                t.input = swap.to_owned();
            }
        } else {
            let (a, b) = (self.position(input)?, self.position(&other)?);
            self.inputs.swap(a, b);
            let names: Vec<String> = self.inputs.iter().map(|i| input_name(i).to_owned()).collect();
            let preset: Preset = self.layout.parse().map_err(anyhow::Error::msg)?;
            let labels: Vec<bool> = self.tiles.iter().map(|t| t.label.is_some()).collect();
            self.tiles = Layout::preset(preset, self.width, self.height, &names).tiles;
            for (t, l) in self.tiles.iter_mut().zip(labels) {
                if !l {
                    t.label = None;
                }
            }
        }
        Ok(())
    }

    /// SetSourceState and the rest of a tile: `key=value` each, applied to
    /// every tile of `input`. A preset layout becomes a custom one with
    /// the same tiles first.
    pub fn set_tile(&mut self, input: &str, props: &[String]) -> anyhow::Result<()> {
        self.position(input)?;
        if props.is_empty() {
            bail!("nothing to change: give key=value (rect, crop, z, opacity, fit, label, border, on-loss)");
        }
        if !self.tiles.iter().any(|t| t.input == input) {
            bail!("`{input}` is in no tile");
        }
        self.make_custom();
        for p in props {
            let (k, v) = p.split_once('=').with_context(|| format!("`{p}` is not key=value"))?;
            for t in self.tiles.iter_mut().filter(|t| t.input == input) {
                set_prop(t, k.trim(), v.trim())?;
            }
        }
        Ok(())
    }
}

/// Four numbers, `A,B,C,D`.
fn four<T: std::str::FromStr>(v: &str, what: &str) -> anyhow::Result<[T; 4]> {
    let parts: Vec<T> = v
        .split(',')
        .map(|s| s.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("`{v}` is not {what}"))?;
    parts.try_into().map_err(|_| anyhow::anyhow!("`{v}` is not {what}"))
}

/// `X,Y,W,H` in canvas pixels.
pub fn parse_rect(v: &str) -> anyhow::Result<Rect> {
    let [x, y, w, h] = four::<u32>(v, "X,Y,W,H")?;
    Ok(Rect { x, y, w, h })
}

fn set_prop(t: &mut Tile, k: &str, v: &str) -> anyhow::Result<()> {
    let num = |what: &str| anyhow::anyhow!("{k}: `{v}` is not {what}");
    match k {
        "rect" => t.rect = parse_rect(v)?,
        "crop" => {
            let [x, y, w, h] = four::<f64>(v, "X,Y,W,H as shares of the picture (0 to 1)")?;
            t.crop = Crop { x, y, w, h };
        }
        "z" => t.z = v.parse().map_err(|_| num("a whole number"))?,
        "opacity" => t.opacity = v.parse().map_err(|_| num("a number from 0 to 1"))?,
        "fit" => {
            t.fit = match v {
                "keep" => Fit::Keep,
                "fill" => Fit::Fill,
                _ => bail!("fit: `{v}` is not keep or fill"),
            }
        }
        "label" => t.label = (!v.is_empty() && v != "none").then(|| v.to_owned()),
        "border" => t.border = v.parse().map_err(|_| num("a number of pixels"))?,
        "on-loss" | "on_loss" => {
            t.on_loss = match v {
                "slate" => OnLoss::Slate,
                "freeze" => OnLoss::Freeze,
                _ => bail!("on-loss: `{v}` is not slate or freeze"),
            }
        }
        other => bail!("unknown tile key `{other}` (rect, crop, z, opacity, fit, label, border, on-loss)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str =
        "kind = \"compose\"\nname = \"wall\"\nsize = \"640x360\"\ninputs = \"a;b;c=h:1/cam;d\"\nlabels = false\n";

    fn again(s: &Spec) -> Spec {
        Spec::parse(&s.to_toml().unwrap()).unwrap()
    }

    #[test]
    fn a_preset_reads_as_its_tiles_and_round_trips() {
        let s = Spec::parse(GRID).unwrap();
        assert_eq!(s.inputs, ["a", "b", "c=h:1/cam", "d"]);
        assert_eq!((s.width, s.height, s.layout.as_str()), (640, 360, "grid"));
        assert_eq!(s.tiles[2].input, "c");
        assert_eq!(
            s.tiles[3].rect,
            Rect {
                x: 320,
                y: 180,
                w: 320,
                h: 180
            }
        );
        assert!(s.tiles.iter().all(|t| t.label.is_none()));
        let back = again(&s);
        assert_eq!((back.inputs, back.tiles), (s.inputs, s.tiles));
        let e = Spec::parse("kind = \"solid\"\nname = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("not a compose source"), "{e}");
    }

    #[test]
    fn a_tile_change_turns_a_preset_custom_and_keeps_the_others() {
        let mut s = Spec::parse(GRID).unwrap();
        let before = s.tiles.clone();
        s.set_tile(
            "b",
            &[
                "rect=0,0,640,360".into(),
                "z=2".into(),
                "opacity=0.5".into(),
                "on-loss=freeze".into(),
            ],
        )
        .unwrap();
        let s = again(&s);
        assert_eq!(s.layout, "custom");
        let b = s.tiles.iter().find(|t| t.input == "b").unwrap();
        assert_eq!(
            (b.rect, b.z, b.opacity, b.on_loss),
            (
                Rect {
                    x: 0,
                    y: 0,
                    w: 640,
                    h: 360
                },
                2,
                0.5,
                OnLoss::Freeze
            )
        );
        assert_eq!(
            s.tiles.iter().find(|t| t.input == "a"),
            before.iter().find(|t| t.input == "a")
        );
        let mut s = s;
        assert!(
            s.set_tile("b", &["fit=sideways".into()])
                .unwrap_err()
                .to_string()
                .contains("keep or fill")
        );
        assert!(
            s.set_tile("b", &["colour=red".into()])
                .unwrap_err()
                .to_string()
                .contains("unknown tile key")
        );
        assert!(
            s.set_tile("zz", &["z=1".into()])
                .unwrap_err()
                .to_string()
                .contains("no input is called `zz`")
        );
    }

    #[test]
    fn inputs_are_added_removed_moved_and_pointed_elsewhere() {
        let mut s = Spec::parse(GRID).unwrap();
        s.move_to("d", 1).unwrap();
        assert_eq!(again(&s).tiles[0].input, "d");
        assert_eq!(again(&s).tiles[3].input, "a");
        s.remove("c").unwrap();
        s.add("e=h:2/cam", None).unwrap();
        s.set_from("a", "h:3/other").unwrap();
        let s2 = again(&s);
        assert_eq!(s2.inputs, ["d", "b", "a=h:3/other", "e=h:2/cam"]);
        assert!(s2.tiles.iter().all(|t| t.label.is_none()), "labels stay off");
        let mut s = s2;
        assert!(s.add("b", None).unwrap_err().to_string().contains("already called `b`"));
        s.set_layout("side-by-side").unwrap();
        assert_eq!(
            again(&s).tiles[1].rect,
            Rect {
                x: 160,
                y: 0,
                w: 160,
                h: 360
            }
        );
        // Custom: an input added needs its rectangle; moves swap tiles.
        s.set_tile("d", &["label=DOOR".into()]).unwrap();
        assert!(s.add("f", None).unwrap_err().to_string().contains("--rect"));
        s.add("f", Some(parse_rect("10,10,100,50").unwrap())).unwrap();
        s.move_to("f", 1).unwrap();
        let s = again(&s);
        assert_eq!(s.tiles[0].input, "f");
        assert_eq!(
            s.tiles[0].label.as_deref(),
            Some("DOOR"),
            "a caption stays with its tile"
        );
        assert_eq!(s.tiles.last().unwrap().input, "d");
        let mut one = Spec::parse("kind = \"compose\"\nname = \"w\"\ninputs = [\"a\"]\n").unwrap();
        assert!(one.remove("a").unwrap_err().to_string().contains("only input"));
    }
}
