//! `framewire source add|set|get|rm`: a node's sources at run time.

use std::time::Duration;

use anyhow::Context;
use framewire_proto::control::{Name, SourceTable};
use framewire_proto::{Request, Response};

use crate::config::spec::parse_source;
use crate::util;

/// A node's sources while it runs: add one, change one, remove one.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire source add 127.0.0.1:7400 test-pattern:bars,size=640x360,fps=30\n  \
framewire source set 127.0.0.1:7400 test-pattern:bars,size=1280x720,fps=15,format=qoi\n  \
framewire source set 127.0.0.1:7400 v4l2:cam,device=/dev/video2      # swap the device\n  \
framewire source get 127.0.0.1:7400 bars\n  \
framewire source rm 127.0.0.1:7400 bars\n\n\
SPEC is written as for `framewire node --source` (see `framewire node --help`). `set` replaces the\n\
source's whole spec (keys left out take their defaults); its subscribers stay and see\n\
interrupted, format-changed (if the format changes) and resumed. A change that does not start\n\
leaves the source as it was. `rm` closes the stream for its subscribers. `file` sources are for\n\
a node's own configuration only.")]
pub struct Args {
    #[command(subcommand)]
    cmd: SourceCmd,
}

#[derive(Debug, clap::Subcommand)]
enum SourceCmd {
    /// Start a source on a running node.
    Add {
        /// The node, HOST[:PORT].
        addr: String,
        /// KIND:NAME[,key=value...], as `--source` writes it.
        spec: String,
    },
    /// Change a running source (format, size, rate, quality, device).
    Set {
        /// The node, HOST[:PORT].
        addr: String,
        /// KIND:NAME[,key=value...]: the source's whole new spec.
        spec: String,
    },
    /// Print a running source's table (TOML, secrets masked).
    Get {
        /// The node, HOST[:PORT].
        addr: String,
        /// The source's stream name.
        name: String,
    },
    /// Stop a source and remove its stream.
    Rm {
        /// The node, HOST[:PORT].
        addr: String,
        /// The source's stream name.
        name: String,
    },
}

fn table(spec: &str) -> anyhow::Result<SourceTable> {
    let t = parse_source(spec)?;
    Ok(SourceTable {
        table: toml::to_string(&t).context("the spec does not make a table")?,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(5);
    match args.cmd {
        SourceCmd::Add { addr, spec } => {
            let req = Request::SourceAdd(table(&spec)?);
            let mut c = util::connect(&addr, timeout).await?;
            let Response::SourceAdd(Name { name }) = c.request(req).await? else {
                anyhow::bail!("the node answered SOURCE_ADD with something else");
            };
            println!("{} now serves `{name}`", c.peer().name);
        }
        SourceCmd::Set { addr, spec } => {
            let req = Request::SourceSet(table(&spec)?);
            let mut c = util::connect(&addr, timeout).await?;
            let Response::SourceSet(Name { name }) = c.request(req).await? else {
                anyhow::bail!("the node answered SOURCE_SET with something else");
            };
            println!("{}: source `{name}` changed", c.peer().name);
        }
        SourceCmd::Get { addr, name } => {
            let mut c = util::connect(&addr, timeout).await?;
            let Response::SourceGet(SourceTable { table }) = c.request(Request::SourceGet(Name { name })).await? else {
                anyhow::bail!("the node answered SOURCE_GET with something else");
            };
            print!("{table}");
        }
        SourceCmd::Rm { addr, name } => {
            let mut c = util::connect(&addr, timeout).await?;
            c.request(Request::SourceRemove(Name { name: name.clone() })).await?;
            println!("{}: source `{name}` removed", c.peer().name);
        }
    }
    Ok(())
}
