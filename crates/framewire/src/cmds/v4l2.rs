//! `framewire v4l2 ls ADDR` and `framewire v4l2 ctrl ADDR DEVICE [NAME[=VALUE]...]`:
//! a node's V4L2 devices and their controls, over the control protocol.

use std::time::Duration;

use anyhow::{Context, bail};
use framewire_media::v4l2_names::{control_key, fourcc_str};
use framewire_proto::control::{ControlValue, GetControls, Name, SetControls, V4l2Control, V4l2FrameSize};
use framewire_proto::{ControlType, Request, Response};

use crate::util;

/// V4L2 devices of a node: list them, read and set their controls.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List a node's V4L2 capture devices with their formats, sizes and rates.
    Ls(LsArgs),
    /// Show a device's controls, or set them: `NAME=VALUE` (names as listed,
    /// case-insensitive, spaces as `_`; menu values by index or item name;
    /// booleans as 0/1/true/false). `NAME` alone shows one control.
    Ctrl(CtrlArgs),
}

#[derive(Debug, clap::Args)]
struct LsArgs {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire v4l2 ctrl 127.0.0.1 /dev/video0\n  \
framewire v4l2 ctrl 127.0.0.1 cam brightness=200 'white balance automatic=0'\n  \
framewire v4l2 ctrl 127.0.0.1 cam test_pattern='100% Colorbar'")]
struct CtrlArgs {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// The device: its path on the node (`/dev/video0`) or the name of the stream capturing it.
    device: String,
    /// `NAME=VALUE` to set, `NAME` to show; none: show every control.
    settings: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Sub::Ls(a) => ls(a).await,
        Sub::Ctrl(a) => ctrl(a).await,
    }
}

fn size_text(s: &V4l2FrameSize) -> String {
    let rate = |&(n, d): &(u32, u32)| if n == 0 { 0.0 } else { f64::from(d) / f64::from(n) };
    let rates: Vec<String> = s.intervals.iter().map(|i| format!("{}", rate(i))).collect();
    let size = if s.kind == 0 {
        format!("{}x{}", s.width, s.height)
    } else {
        format!(
            "{}x{}-{}x{} (step {}x{})",
            s.width, s.height, s.max_width, s.max_height, s.step_width, s.step_height
        )
    };
    if rates.is_empty() {
        size
    } else {
        format!("{size} @ {} fps", rates.join("/"))
    }
}

async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let Response::V4l2ListDevices(devices) = client.request(Request::V4l2ListDevices).await? else {
        bail!("the node answered V4L2_LIST_DEVICES with something else");
    };
    if args.json {
        let v: Vec<serde_json::Value> = devices.iter().map(framewire_proto::json::v4l2_device).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{} ({})", client.peer().name, client.addr());
    if devices.is_empty() {
        println!("  no V4L2 capture devices");
    }
    for d in devices {
        println!(
            "{}  {} ({}, {}) caps 0x{:08x}",
            d.path, d.card, d.driver, d.bus, d.capabilities
        );
        for f in &d.formats {
            println!("  {} {}", fourcc_str(f.fourcc), f.description);
            for s in &f.sizes {
                println!("    {}", size_text(s));
            }
        }
    }
    Ok(())
}

fn find<'a>(controls: &'a [V4l2Control], name: &str) -> anyhow::Result<&'a V4l2Control> {
    let k = control_key(name);
    let by_id = name.strip_prefix("0x").and_then(|h| u32::from_str_radix(h, 16).ok());
    controls
        .iter()
        .find(|c| control_key(&c.name) == k || Some(c.id) == by_id)
        .with_context(|| {
            let names: Vec<String> = controls.iter().map(|c| control_key(&c.name)).collect();
            format!("no control `{name}` (controls: {})", names.join(", "))
        })
}

fn parse_value(c: &V4l2Control, text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" if c.ctrl_type == ControlType::Boolean => return Ok(1),
        "false" | "off" | "no" if c.ctrl_type == ControlType::Boolean => return Ok(0),
        _ => {}
    }
    if let Some(h) = t.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).with_context(|| format!("`{t}` is not a number"));
    }
    if let Ok(v) = t.parse::<i64>() {
        return Ok(v);
    }
    if let Some(m) = c
        .menu
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(t) || control_key(&m.name) == control_key(t))
    {
        return Ok(i64::from(m.index));
    }
    if c.ctrl_type == ControlType::Button && t.is_empty() {
        return Ok(1);
    }
    bail!("`{t}` is not a value for {} ({})", c.name, c.ctrl_type)
}

fn flags_text(f: u32) -> String {
    let names = [
        (0x1, "disabled"),
        (0x2, "grabbed"),
        (0x4, "read-only"),
        (0x8, "update"),
        (0x10, "inactive"),
        (0x20, "slider"),
        (0x40, "write-only"),
        (0x80, "volatile"),
        (0x100, "has-payload"),
        (0x200, "execute-on-write"),
    ];
    let v: Vec<&str> = names.iter().filter(|(b, _)| f & b != 0).map(|(_, n)| *n).collect();
    v.join(",")
}

async fn ctrl(args: CtrlArgs) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let Response::V4l2ListControls(controls) = client
        .request(Request::V4l2ListControls(Name::from(args.device.as_str())))
        .await?
    else {
        bail!("the node answered V4L2_LIST_CONTROLS with something else");
    };
    let mut sets = Vec::new();
    let mut shows = Vec::new();
    for s in &args.settings {
        match s.split_once('=') {
            Some((n, v)) => {
                let c = find(&controls, n)?;
                sets.push(ControlValue {
                    id: c.id,
                    value: parse_value(c, v)?,
                });
            }
            None => shows.push(find(&controls, s)?.id),
        }
    }
    let values = if sets.is_empty() {
        let req = GetControls {
            device: args.device.clone(),
            ids: shows.clone(),
        };
        let Response::V4l2GetControls(v) = client.request(Request::V4l2GetControls(req)).await? else {
            bail!("the node answered V4L2_GET_CONTROLS with something else");
        };
        v
    } else {
        let req = SetControls {
            device: args.device.clone(),
            values: sets.clone(),
        };
        let Response::V4l2SetControls(v) = client.request(Request::V4l2SetControls(req)).await? else {
            bail!("the node answered V4L2_SET_CONTROLS with something else");
        };
        v
    };
    let value_of = |id: u32| values.iter().find(|v| v.id == id).map(|v| v.value);
    let shown: Vec<&V4l2Control> = controls
        .iter()
        .filter(|c| {
            if !sets.is_empty() {
                sets.iter().any(|s| s.id == c.id)
            } else if !shows.is_empty() {
                shows.contains(&c.id)
            } else {
                true
            }
        })
        .collect();
    if args.json {
        let v: Vec<serde_json::Value> = shown
            .iter()
            .map(|c| {
                let mut v = framewire_proto::json::v4l2_control(c, value_of(c.id));
                // The name as `v4l2-ctl` writes it, which `--set KEY=VALUE` takes.
                v["key"] = serde_json::json!(control_key(&c.name));
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<32} {:<10} {:<12} {:>12} {:>12} {:>5} {:>12} {:>12}  FLAGS",
        "CONTROL", "ID", "TYPE", "MIN", "MAX", "STEP", "DEFAULT", "VALUE"
    );
    for c in shown {
        let value = value_of(c.id).map_or("-".to_owned(), |v| {
            match c.menu.iter().find(|m| i64::from(m.index) == v) {
                Some(m) if c.ctrl_type == ControlType::Menu => format!("{v} ({})", m.name),
                _ => v.to_string(),
            }
        });
        println!(
            "{:<32} 0x{:08x} {:<12} {:>12} {:>12} {:>5} {:>12} {:>12}  {}",
            control_key(&c.name),
            c.id,
            c.ctrl_type.to_string(),
            c.min,
            c.max,
            c.step,
            c.default,
            value,
            flags_text(c.flags)
        );
        if sets.is_empty() && shows.is_empty() {
            for m in &c.menu {
                println!("{:>36} {}", m.index, m.name);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::control::MenuItem;

    fn ctl(name: &str, t: ControlType) -> V4l2Control {
        V4l2Control {
            id: 0x0098_0900,
            class: 0x0098_0000,
            ctrl_type: t,
            name: name.into(),
            min: 0,
            max: 255,
            step: 1,
            default: 128,
            flags: 0,
            menu: vec![MenuItem {
                index: 1,
                name: "100% Colorbar".into(),
                value: 1,
            }],
        }
    }

    #[test]
    fn names_and_values() {
        let cs = vec![
            ctl("White Balance, Automatic", ControlType::Boolean),
            ctl("Test Pattern", ControlType::Menu),
        ];
        assert_eq!(
            find(&cs, "white balance automatic").unwrap().name,
            "White Balance, Automatic"
        );
        assert_eq!(
            find(&cs, "WHITE_BALANCE_AUTOMATIC").unwrap().name,
            "White Balance, Automatic"
        );
        assert!(find(&cs, "0x00980900").is_ok());
        let e = find(&cs, "exposure").unwrap_err().to_string();
        assert!(e.contains("white_balance_automatic, test_pattern"), "{e}");
        assert_eq!(parse_value(&cs[0], "on").unwrap(), 1);
        assert_eq!(parse_value(&cs[1], "100% colorbar").unwrap(), 1);
        assert_eq!(parse_value(&cs[1], "0x10").unwrap(), 16);
        assert!(parse_value(&cs[1], "blue").is_err());
    }
}
