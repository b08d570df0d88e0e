//! `framewire`: run nodes and talk to them.
//!
//! Exit codes: 0 success; 1 an error (the message says which); 2 a bad
//! command line; 3 the node refused the request (no such stream, busy, ...);
//! 4 the node could not be reached (refused, timed out, closed). A refused
//! authentication (no key, another key) is 3.

// A binary: `pub` marks what a module offers its siblings, nothing more.
#![allow(unreachable_pub)]
// Doc comments on `Args` are `--help` text (HOST[:PORT], [default: ..]), not links.
#![allow(rustdoc::broken_intra_doc_links)]

mod cmds;
mod config;
mod discovery;
mod util;
#[cfg(feature = "viewer")]
mod viewer;

use clap::{Parser, Subcommand};

/// framewire moves live video between machines: sources, relays and sinks
/// joined by TCP edges, each subscriber with its own delivery mode.
#[derive(Debug, Parser)]
#[command(name = "framewire", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 error, 2 bad command line, 3 refused by the node, 4 node unreachable.\n\
Logging: --log or RUST_LOG, e.g. `--log debug` or `--log framewire_net=trace`."
)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or per-crate directives).
    #[arg(long, global = true, default_value = "info", env = "FRAMEWIRE_LOG")]
    log: String,
    /// Deployment key file: authenticate every connection to a node with it
    /// (docs/security.md). `framewire key gen FILE` makes one.
    #[arg(long, global = true, value_name = "PATH", env = "FRAMEWIRE_KEY_FILE")]
    key_file: Option<std::path::PathBuf>,
    /// Deployment CA (PEM): connect to nodes over TLS and check their
    /// certificates against it (docs/security.md, "TLS between nodes").
    #[arg(long, global = true, value_name = "PATH", env = "FRAMEWIRE_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// Certificate (PEM) shown to nodes that take a certificate instead
    /// of the key; a node's own, with --tls-key, when it accepts TLS.
    #[arg(long, global = true, value_name = "PATH", env = "FRAMEWIRE_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, value_name = "PATH", env = "FRAMEWIRE_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a node: serve its sources, pull its upstreams, feed its sinks.
    Node(Box<cmds::node::Args>),
    /// List the streams a node serves.
    Ls(cmds::ls::Args),
    /// Tell a downstream node to pull a stream from an upstream node.
    Connect(cmds::connect::Args),
    /// Tell a node to drop a pulled stream.
    Disconnect(cmds::connect::DisconnectArgs),
    /// Subscribe to a stream and save its frames (a one-shot sink).
    Recv(cmds::recv::Args),
    /// Capture-to-decoded latency of a stream, read from the time code in
    /// its pictures.
    Latency(cmds::latency::Args),
    /// What a node is (DESCRIBE): name, software, functions, features, uptime.
    Describe(cmds::describe::Args),
    /// A node's sources at run time: `source add|set|get|rm ADDR ...`.
    Source(cmds::source::Args),
    /// A running compose source, one change at a time: layout, inputs, tiles.
    Compose(cmds::compose::Args),
    /// Save the latest frame of a stream as a JPEG picture (any format).
    Snapshot(cmds::snapshot::Args),
    /// Stop a node gracefully (sinks finish, archives close).
    Shutdown(cmds::snapshot::ShutdownArgs),
    /// Shared-memory rings of `--sink ring:STREAM`: `ring read PATH`, `ring header`.
    Ring(cmds::ring::Args),
    /// Show a node's counters: per input, per output, and viewers' input events.
    Stats(cmds::stats::Args),
    /// Run a demo graph on this machine (loopback only) with live figures.
    Demo(cmds::demo::Args),
    /// Show the nodes announcing on the network (the live peer table).
    Discover(cmds::discover::Args),
    /// Measure relays on this machine (loopback only): `framewire bench relay`.
    Bench(cmds::bench::Args),
    /// Recordings of archive sinks: `archive ls`, `archive export`, `archive bench`.
    Archive(cmds::archive::Args),
    /// V4L2 devices of a node: `v4l2 ls ADDR`, `v4l2 ctrl ADDR DEVICE [NAME=VALUE...]`.
    V4l2(cmds::v4l2::Args),
    /// The monitors of a node's X display (name, size, position, refresh).
    Monitors(cmds::monitors::Args),
    /// Deployment keys: `key gen [FILE]` writes a fresh random key (mode 0600).
    Key(cmds::key::Args),
    /// Certificates for HTTPS and TLS: `cert init` makes a deployment CA, `cert issue NAME --host H` a certificate.
    Cert(cmds::cert::Args),
    /// Web UI users and API tokens: `user add NAME --role R`, `user token NAME`.
    User(cmds::user::Args),
    /// A controller's wanted graph over its HTTP API: `graph export`, `graph apply FILE`.
    Graph(cmds::graph::Args),
    /// Run a host's nodes (HOST.toml) as supervised child processes.
    Up(cmds::up::Args),
    /// Print shell completions (bash, zsh, fish, ...).
    Completions(cmds::manual::CompletionsArgs),
    /// Write man pages into a directory.
    #[command(hide = true)]
    Man(cmds::manual::ManArgs),
    /// Show a stream in a window; keyboard and mouse go back upstream.
    #[cfg(feature = "viewer")]
    View(viewer::Args),
}

fn main() {
    let cli = Cli::parse();
    util::init_logging(&cli.log);
    util::raise_descriptor_limit();
    util::set_key_file(cli.key_file);
    util::set_tls_files(util::TlsFiles {
        ca: cli.tls_ca,
        cert: cli.tls_cert,
        key: cli.tls_key,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("framewire: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = match cli.cmd {
        // The window needs the main thread: outside block_on.
        #[cfg(feature = "viewer")]
        Cmd::View(a) => viewer::run(a, &runtime),
        // Processes and signals of its own, on the main thread: a child's
        // death signal follows the thread that started it.
        Cmd::Up(a) => cmds::up::run(&a),
        Cmd::Completions(a) => cmds::manual::completions(&a),
        Cmd::Man(a) => cmds::manual::man(&a),
        cmd => runtime.block_on(async {
            match cmd {
                Cmd::Node(a) => cmds::node::run(*a).await,
                Cmd::Ls(a) => cmds::ls::run(a).await,
                Cmd::Connect(a) => cmds::connect::run(a).await,
                Cmd::Disconnect(a) => cmds::connect::run_disconnect(a).await,
                Cmd::Recv(a) => cmds::recv::run(a).await,
                Cmd::Latency(a) => cmds::latency::run(a).await,
                Cmd::Source(a) => cmds::source::run(a).await,
                Cmd::Describe(a) => cmds::describe::run(a).await,
                Cmd::Compose(a) => cmds::compose::run(a).await,
                Cmd::Snapshot(a) => cmds::snapshot::run(a).await,
                Cmd::Shutdown(a) => cmds::snapshot::run_shutdown(a).await,
                Cmd::Ring(a) => cmds::ring::run(a).await,
                Cmd::Stats(a) => cmds::stats::run(a).await,
                Cmd::Demo(a) => cmds::demo::run(a).await,
                Cmd::Discover(a) => cmds::discover::run(a).await,
                Cmd::Bench(a) => cmds::bench::run(a).await,
                Cmd::Archive(a) => cmds::archive::run(a).await,
                Cmd::V4l2(a) => cmds::v4l2::run(a).await,
                Cmd::Monitors(a) => cmds::monitors::run(a).await,
                Cmd::Key(a) => cmds::key::run(a),
                Cmd::Cert(a) => cmds::cert::run(a),
                Cmd::User(a) => cmds::user::run(a).await,
                Cmd::Graph(a) => cmds::graph::run(a).await,
                #[cfg(feature = "viewer")]
                Cmd::View(_) => unreachable!("handled above"),
                Cmd::Up(_) | Cmd::Completions(_) | Cmd::Man(_) => unreachable!("handled above"),
            }
        }),
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("framewire: {e:#}");
        std::process::exit(util::exit_code(&e));
    }
}
