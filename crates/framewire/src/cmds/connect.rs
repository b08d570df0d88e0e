//! `framewire connect` and `framewire disconnect`: wire and unwire edges.

use std::time::Duration;

use anyhow::Context;
use framewire_proto::control::{Connect, Name};
use framewire_proto::{Request, Response};

use crate::util::{self, DeliveryArgs};

/// Tell DOWNSTREAM to pull STREAM from UPSTREAM and serve it (edges are
/// pulled: the downstream node dials the upstream one).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  framewire connect 127.0.0.1:7401 127.0.0.1:7400/bars --as bars --mode completeness --max-frames 32\n\n\
Run again for the same edge with other --max-frames/--max-bytes: the running subscription takes\n\
them in place (no reconnection). Another mode, drop policy or priority: disconnect it first."
)]
pub struct Args {
    /// The node that will subscribe, HOST[:PORT].
    downstream: String,
    /// What to pull: HOST:PORT/STREAM.
    upstream: String,
    /// Serve it under this name on the downstream node [default: the stream's name].
    #[arg(long = "as")]
    local_name: Option<String>,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (addr, stream) = args
        .upstream
        .rsplit_once('/')
        .context("UPSTREAM must be HOST:PORT/STREAM")?;
    let mut client = util::connect(&args.downstream, Duration::from_secs(5)).await?;
    let req = Request::Connect(Connect {
        upstream: util::with_port(addr),
        stream: stream.to_owned(),
        local_name: args.local_name.unwrap_or_default(),
        params: args.delivery.params(),
        weight: args.delivery.weight,
        max_rate: args.delivery.max_rate.unwrap_or(0),
    });
    match client.request(req).await? {
        Response::Connect(Name { name }) => {
            println!(
                "{} now pulls {}/{} as `{name}`",
                client.peer().name,
                util::with_port(addr),
                stream
            );
            Ok(())
        }
        other => anyhow::bail!("unexpected answer to CONNECT: {}", other.command()),
    }
}

/// Tell a node to drop a pulled stream.
#[derive(Debug, clap::Args)]
pub struct DisconnectArgs {
    /// The node, HOST[:PORT].
    addr: String,
    /// The local name of the pulled stream.
    name: String,
}

pub async fn run_disconnect(args: DisconnectArgs) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    client
        .request(Request::Disconnect(Name {
            name: args.name.clone(),
        }))
        .await?;
    println!("{} dropped `{}`", client.peer().name, args.name);
    Ok(())
}
