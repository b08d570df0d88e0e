//! `framewire monitors ADDR`: the monitors of a node's X display (LIST_MONITORS).

use std::time::Duration;

use framewire_proto::{Request, Response};

use crate::util;

/// List the monitors of a node's X display.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let Response::ListMonitors(monitors) = client.request(Request::ListMonitors).await? else {
        anyhow::bail!("the node answered LIST_MONITORS with something else");
    };
    if args.json {
        let v: Vec<serde_json::Value> = monitors.iter().map(framewire_proto::json::monitor).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<20} {:>11} {:>12} {:>11} {:>9} {:<7}",
        "MONITOR", "SIZE", "POSITION", "MM", "HZ", "PRIMARY"
    );
    for m in monitors {
        println!(
            "{:<20} {:>11} {:>12} {:>11} {:>9.2} {:<7}",
            m.name,
            format!("{}x{}", m.width, m.height),
            format!("+{}+{}", m.x, m.y),
            format!("{}x{}", m.width_mm, m.height_mm),
            f64::from(m.refresh_mhz) / 1000.0,
            if m.primary { "yes" } else { "" }
        );
    }
    Ok(())
}
