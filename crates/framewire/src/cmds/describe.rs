//! `framewire describe ADDR`: what a node is (DESCRIBE), in words.

use std::time::Duration;

use framewire_proto::{Request, Response};

use crate::util;

/// Describe a node: name, software, functions, features, process, uptime.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// Print one JSON object (docs/cli.md).
    #[arg(long)]
    json: bool,
}

/// `3 d 4 h`, `2 h 5 min`, `4 min 3 s`, `12 s`.
pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {} s", s % 60),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let Response::Describe(d) = client.request(Request::Describe).await? else {
        anyhow::bail!("the node answered DESCRIBE with something else");
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&framewire_proto::json::description(&d))?
        );
        return Ok(());
    }
    let list = |v: Vec<String>| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    for (k, v) in [
        ("name", d.name.clone()),
        ("software", d.software.clone()),
        ("protocol", d.protocol_version.to_string()),
        ("site", d.site_id.to_string()),
        ("functions", list(framewire_proto::json::functions(d.function_flags))),
        ("features", list(framewire_proto::json::features(d.features))),
        ("process", format!("{} on {}", d.pid, d.hostname)),
        ("uptime", uptime(d.uptime_ms)),
        ("streams", d.streams.to_string()),
        ("port", d.tcp_port.to_string()),
    ] {
        println!("{k:<10} {v}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn uptime_reads_as_a_person_says_it() {
        assert_eq!(super::uptime(12_400), "12 s");
        assert_eq!(super::uptime(243_000), "4 min 3 s");
        assert_eq!(super::uptime(7_500_000), "2 h 5 min");
        assert_eq!(super::uptime(273_600_000), "3 d 4 h");
    }
}
