//! Helpers shared by the subcommands.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use framewire_net::{Client, ClientIdentity, DeploymentKey, NetError};
use framewire_proto::{DeliveryMode, DropPolicy, SubscribeParams};

/// Exit code for an error (see `main.rs`).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.downcast_ref::<crate::cmds::graph::Refused>().is_some() {
            return 3;
        }
        if let Some(framewire_web::client::ClientError::Io { .. } | framewire_web::client::ClientError::Timeout(..)) =
            cause.downcast_ref::<framewire_web::client::ClientError>()
        {
            return 4;
        }
        if let Some(n) = cause.downcast_ref::<NetError>() {
            return match n {
                NetError::Remote { .. } | NetError::Auth(_) => 3,
                NetError::Io(_) | NetError::Timeout(..) | NetError::Closed(_) => 4,
                _ => 1,
            };
        }
    }
    1
}

/// Raises the soft limit on open descriptors to the hard limit, so a node
/// or controller with many peers runs out of neither; the node's and the
/// web server's connection caps are sized from what this leaves.
pub fn raise_descriptor_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 || l.rlim_cur >= l.rlim_max {
            return;
        }
        let before = l.rlim_cur;
        l.rlim_cur = l.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0 {
            tracing::debug!(from = before, to = l.rlim_max, "descriptor limit raised");
        }
    }
}

/// Logs to stderr, filtered by `filter` (or RUST_LOG when set). Colours
/// only when stderr is a terminal and NO_COLOR is unset (a log file or a
/// pipe gets plain text).
pub fn init_logging(filter: &str) {
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let env = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_owned());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&env).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Adds the default port to an address without one.
pub fn with_port(addr: &str) -> String {
    if addr.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !addr.ends_with(']') {
        addr.to_owned()
    } else {
        format!("{addr}:{}", framewire_net::DEFAULT_PORT)
    }
}

/// The `--key-file` given on the command line (or in FRAMEWIRE_KEY_FILE).
static KEY_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records the global `--key-file` (called once, from `main`).
pub fn set_key_file(path: Option<PathBuf>) {
    let _ = KEY_FILE.set(path);
}

/// The key file path given on the command line, if any.
pub fn key_file() -> Option<&'static Path> {
    KEY_FILE.get().and_then(|p| p.as_deref())
}

/// The deployment key from `--key-file` / FRAMEWIRE_KEY_FILE, if given.
pub fn key() -> anyhow::Result<Option<DeploymentKey>> {
    key_file()
        .map(|p| DeploymentKey::load(p).context("cannot use the deployment key (--key-file / FRAMEWIRE_KEY_FILE)"))
        .transpose()
}

/// The global `--tls-ca`, `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The deployment CA.
    pub ca: Option<PathBuf>,
    /// A certificate to show.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

static TLS_FILES: OnceLock<TlsFiles> = OnceLock::new();

/// Records the global TLS flags (called once, from `main`).
pub fn set_tls_files(files: TlsFiles) {
    let _ = TLS_FILES.set(files);
}

/// The TLS files given on the command line.
pub fn tls_files() -> TlsFiles {
    TLS_FILES.get().cloned().unwrap_or_default()
}

/// TLS to dial nodes with, when `--tls-ca` is given (showing `--tls-cert`
/// to nodes that ask, when given).
pub fn tls_client() -> anyhow::Result<Option<std::sync::Arc<framewire_net::rustls::ClientConfig>>> {
    let f = tls_files();
    let Some(ca) = &f.ca else {
        anyhow::ensure!(
            f.cert.is_none() && f.key.is_none() || f.cert.is_some() && f.key.is_some(),
            "--tls-cert and --tls-key go together"
        );
        return Ok(None);
    };
    let identity = match (&f.cert, &f.key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    Ok(Some(
        framewire_tls::client_config(ca, identity).context("cannot use the TLS files (--tls-ca, --tls-cert)")?,
    ))
}

/// A node's TLS from the global `--tls-*` flags alone (none given: none),
/// dialling every peer over TLS.
pub fn node_tls() -> anyhow::Result<Option<framewire_net::TlsConfig>> {
    let f = tls_files();
    if f.ca.is_none() && f.cert.is_none() && f.key.is_none() {
        return Ok(None);
    }
    Ok(Some(framewire_net::TlsConfig::from_files(
        f.cert.as_deref(),
        f.key.as_deref(),
        f.ca.as_deref(),
        false,
        framewire_net::TlsDial::All,
    )?))
}

/// Connects to a node as a command-line tool, authenticating with the
/// deployment key when one is given, over TLS with `--tls-ca`. `addr` may
/// be `SITE:NAMESPACE:INSTANCE@GATEWAY` for a node of another site.
pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Client> {
    let addr = with_port(addr);
    let who = ClientIdentity::tool("cli:framewire")
        .with_key(key()?)
        .with_tls(tls_client()?);
    Client::connect(&addr, &who, timeout).await.map_err(|e| {
        let context = match &e {
            NetError::Auth(_) | NetError::Remote { .. } | NetError::Tls { .. } => {
                format!("the node at {addr} refused the connection")
            }
            _ => format!("cannot reach the node at {addr} (is `framewire node` running there?)"),
        };
        anyhow::Error::new(e).context(context)
    })
}

/// Subscription flags shared by `recv` and `connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryArgs {
    /// Delivery mode: low-latency (newest frame wins) or completeness (queued within budgets).
    #[arg(long, default_value = "low-latency", value_parser = parse_mode)]
    pub mode: DeliveryMode,
    /// Frame budget (completeness); 0 = the node's default.
    #[arg(long, default_value_t = 0)]
    pub max_frames: u32,
    /// Byte budget; 0 = the node's default.
    #[arg(long, default_value_t = 0)]
    pub max_bytes: u64,
    /// What a full queue drops: drop-oldest or drop-newest.
    #[arg(long, default_value = "drop-oldest", value_parser = parse_policy)]
    pub drop_policy: DropPolicy,
    /// Path priority, 0 (lowest) to 255 (highest).
    #[arg(long, default_value_t = 128)]
    pub priority: u8,
    /// Share of the sender's link under a weighted scheduler (wrr, drr), 1 to 65535.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub weight: u16,
    /// Most the sender may send of it, per second: bytes, or with a unit
    /// (20Mbit, 500kbit, 2.5MB, 800kB) [default: no cap].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_rate: Option<u64>,
}

fn parse_rate(s: &str) -> Result<u64, String> {
    framewire_net::config::parse_rate(s).map_err(|e| e.to_string())
}

impl DeliveryArgs {
    /// As subscription parameters.
    pub fn params(&self) -> SubscribeParams {
        SubscribeParams {
            mode: self.mode,
            max_frames: self.max_frames,
            max_bytes: self.max_bytes,
            drop_policy: self.drop_policy,
            priority: self.priority,
            ..SubscribeParams::default()
        }
    }
}

fn parse_mode(s: &str) -> Result<DeliveryMode, String> {
    DeliveryMode::from_label(s).ok_or_else(|| format!("`{s}`: use low-latency or completeness"))
}

fn parse_policy(s: &str) -> Result<DropPolicy, String> {
    DropPolicy::from_label(s).ok_or_else(|| format!("`{s}`: use drop-oldest or drop-newest"))
}

/// Bytes in a short human form.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
