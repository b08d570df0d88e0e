//! `framewire ls ADDR`: the streams a node serves.

use std::time::Duration;

use framewire_proto::{Request, Response};

use crate::util;

/// List the streams a node serves.
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
    let Response::ListStreams(streams) = client.request(Request::ListStreams).await? else {
        anyhow::bail!("the node answered LIST_STREAMS with something else");
    };
    if args.json {
        let v: Vec<serde_json::Value> = streams.iter().map(framewire_proto::json::stream).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{} ({})", client.peer().name, client.addr());
    if streams.is_empty() {
        println!("  no streams");
    }
    println!(
        "{:<24} {:<10} {:<10} {:>11} {:>8} {:<12} {:>5} {:>10}",
        "STREAM", "FORMAT", "PIXELS", "SIZE", "FPS", "STATE", "SUBS", "FRAMES"
    );
    for s in streams {
        let o = &s.open;
        let fps = if o.fps_den == 0 {
            0.0
        } else {
            f64::from(o.fps_num) / f64::from(o.fps_den)
        };
        println!(
            "{:<24} {:<10} {:<10} {:>11} {:>8.2} {:<12} {:>5} {:>10}",
            o.name,
            o.format.to_string(),
            o.pixel_format.to_string(),
            format!("{}x{}", o.width, o.height),
            fps,
            format!("{:?}", s.state).to_lowercase(),
            s.subscribers,
            s.frames
        );
    }
    Ok(())
}
