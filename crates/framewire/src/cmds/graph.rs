//! `framewire graph`: the controller's wanted graph over its HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use framewire_web::client;

/// The wanted graph of a controller: export it, edit it, apply it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire graph export > wanted.toml\n  \
framewire graph apply wanted.toml\n  \
FRAMEWIRE_TOKEN=fw_... framewire graph apply --url http://10.0.0.5:7480 wanted.json\n\n\
The file is TOML ([[edge]] tables) or JSON ({\"edge\": [...]}), see docs/controller.md.\n\
apply is all or nothing: if any edge is refused nothing changes, and every refusal is printed.\n\
With users configured, a token is needed (framewire user token NAME; operator role to apply).")]
pub struct Args {
    #[command(subcommand)]
    cmd: GraphCmd,
    /// The controller's web address.
    #[arg(long, global = true, env = "FRAMEWIRE_URL", default_value = "http://127.0.0.1:7480")]
    url: String,
    /// API token (Authorization: Bearer); not needed when the controller has no users.
    #[arg(long, global = true, env = "FRAMEWIRE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds to wait for the controller.
    #[arg(long, global = true, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Debug, clap::Subcommand)]
enum GraphCmd {
    /// Print the wanted graph.
    Export {
        /// toml or json.
        #[arg(long, default_value = "toml", value_parser = ["toml", "json"])]
        format: String,
    },
    /// Replace the wanted graph with FILE (.toml or .json; `-` reads TOML or JSON from stdin).
    Apply {
        /// The wanted graph.
        file: PathBuf,
    },
}

/// The controller said no (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout).context("--timeout")?;
    let auth = args.token.as_ref().map(|t| format!("Bearer {}", t.trim()));
    let mut headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    match args.cmd {
        GraphCmd::Export { format } => {
            let accept = if format == "toml" {
                "application/toml"
            } else {
                "application/json"
            };
            headers.push(("Accept", accept));
            let r = client::request(&args.url, "GET", "/api/wanted", &headers, b"", timeout).await?;
            check(&r)?;
            let mut text = r.text();
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(&text).context("the answer is not JSON")?;
                text = serde_json::to_string_pretty(&v)? + "\n";
            }
            print!("{text}");
        }
        GraphCmd::Apply { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let json = match file.extension().and_then(|e| e.to_str()) {
                Some("json") => true,
                Some("toml") => false,
                _ => text.trim_start().starts_with('{'),
            };
            headers.push((
                "Content-Type",
                if json { "application/json" } else { "application/toml" },
            ));
            let r = client::request(&args.url, "PUT", "/api/wanted", &headers, text.as_bytes(), timeout).await?;
            check(&r)?;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            println!("applied: {} edge(s)", v["edges"].as_u64().unwrap_or(0));
        }
    }
    Ok(())
}

fn check(r: &client::HttpResponse) -> anyhow::Result<()> {
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    let mut msg = format!("HTTP {}: {}", r.status, r.error_message());
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
        for f in v["refusals"].as_array().into_iter().flatten() {
            msg.push_str(&format!(
                "\n  edge {} ({}): {}",
                f["index"],
                f["edge"].as_str().unwrap_or(""),
                f["reason"].as_str().unwrap_or("")
            ));
        }
    }
    if r.status == 401 {
        msg.push_str("\n  (give a token: --token or FRAMEWIRE_TOKEN; framewire user token NAME makes one)");
    }
    Err(Refused(msg).into())
}
