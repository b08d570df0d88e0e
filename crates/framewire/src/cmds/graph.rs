//! `framewire graph`: the controller's wanted graph over its HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use framewire_web::client;

/// The wanted graph of a controller: export it, edit it, apply it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire graph export > wanted.toml\n  \
framewire graph apply wanted.toml      # refused if someone changed the graph since the export\n  \
framewire graph apply --token-file ~/.config/framewire/token --url http://10.0.0.5:7480 wanted.json\n\n\
The file is TOML ([[edge]] tables) or JSON ({\"edge\": [...]}), see docs/controller.md.\n\
apply is all or nothing: if any edge is refused nothing changes, and every refusal is printed.\n\
With users configured, a token is needed (framewire user token NAME; operator role to apply):\n\
from a file (--token-file, FRAMEWIRE_TOKEN_FILE) or the environment (FRAMEWIRE_TOKEN), never on\n\
the command line, where every user of the machine can read it (ps).")]
pub struct Args {
    #[command(subcommand)]
    cmd: GraphCmd,
    /// The controller's web address.
    #[arg(long, global = true, env = "FRAMEWIRE_URL", default_value = "http://127.0.0.1:7480")]
    url: String,
    /// A file holding the API token (Authorization: Bearer); not needed
    /// when the controller has no users. The token itself can also come
    /// from the environment variable FRAMEWIRE_TOKEN.
    #[arg(long, global = true, env = "FRAMEWIRE_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
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
    /// A file from `graph export` carries the graph's version: it is applied
    /// only if nobody changed the graph since (else refused, nothing changes).
    Apply {
        /// The wanted graph.
        file: PathBuf,
        /// Apply only if the graph is at this version (as `graph export`
        /// writes it) [default: the file's `# version:` line, if any].
        #[arg(long, value_name = "VERSION", conflicts_with = "force")]
        if_match: Option<String>,
        /// Apply whatever the graph's version now (overwrites changes made
        /// since the file was exported).
        #[arg(long)]
        force: bool,
    },
}

/// The API token: from `--token-file` (or `FRAMEWIRE_TOKEN_FILE`), else
/// from `FRAMEWIRE_TOKEN`. A file others can read is used with a warning.
fn token(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        if framewire_controller::store::readable_by_others(path) == Some(true) {
            eprintln!(
                "framewire: warning: {} can be read by other users: chmod 600 it",
                path.display()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the token file {}", path.display()))?;
        let t = text.trim();
        anyhow::ensure!(!t.is_empty(), "the token file {} is empty", path.display());
        return Ok(Some(t.to_owned()));
    }
    Ok(std::env::var("FRAMEWIRE_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

/// The controller said no (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout).context("--timeout")?;
    let auth = token(args.token_file.as_deref())?.map(|t| format!("Bearer {t}"));
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
            let version = r.header("etag").map(|t| t.trim_matches('"').to_owned());
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(&text).context("the answer is not JSON")?;
                text = serde_json::to_string_pretty(&v)? + "\n";
                if let Some(v) = &version {
                    eprintln!("version: {v} (graph apply --if-match {v} applies only if nobody changed it since)");
                }
            } else if let Some(v) = &version {
                text = format!("{VERSION_LINE}{v}\n{text}");
            }
            print!("{text}");
        }
        GraphCmd::Apply { file, if_match, force } => {
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
            let expected = match (force, if_match) {
                (true, _) => None,
                (false, Some(v)) => Some(v),
                (false, None) => file_version(&text),
            };
            let tag = expected.as_ref().map(|v| format!("\"{v}\""));
            if let Some(t) = &tag {
                headers.push(("If-Match", t.as_str()));
            }
            let r = client::request(&args.url, "PUT", "/api/wanted", &headers, text.as_bytes(), timeout).await?;
            if r.status == 412 {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                return Err(Refused(format!(
                    "the wanted graph changed since version {} (it is now {}); nothing was applied.\n  \
                     Export it again and redo the change, or apply with --force to overwrite it",
                    expected.unwrap_or_default(),
                    v["version"].as_str().unwrap_or("?")
                ))
                .into());
            }
            check(&r)?;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            println!(
                "applied: {} edge(s), version {}",
                v["edges"].as_u64().unwrap_or(0),
                v["version"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// The line `graph export` puts first in a TOML file.
const VERSION_LINE: &str = "# version: ";

/// The version a file from `graph export` carries.
fn file_version(text: &str) -> Option<String> {
    text.lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .find_map(|l| l.strip_prefix(VERSION_LINE))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
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
        msg.push_str("\n  (give a token: --token-file FILE or FRAMEWIRE_TOKEN; framewire user token NAME makes one)");
    }
    Err(Refused(msg).into())
}
