//! A host's configuration for `framewire up` (docs/operations.md):
//!
//! ```toml
//! state_dir = "/var/lib/framewire"   # where the status is kept
//! grace = 10                         # seconds a node has to stop
//! backoff_ms = 500                   # first wait before a restart; doubles
//! max_backoff = 30                   # seconds, the longest wait
//! crash_limit = 5                    # ends within `crash_window` that mark a node failed
//! crash_window = 60                  # seconds
//!
//! [[node]]
//! name = "cam"                       # unique on this host
//! config = "cam.toml"                # a node configuration, relative to this file
//! args = ["--source", "v4l2:cam"]    # more arguments to `framewire node`
//! restart = "on-failure"             # on-failure (default), always, never
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// When a node that ended starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Unless it ended cleanly (exit code 0: a SHUTDOWN, say).
    OnFailure,
    Always,
    Never,
}

/// One node process of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEntry {
    pub name: String,
    /// Its configuration file, resolved against the host file's directory.
    pub config: Option<PathBuf>,
    pub args: Vec<String>,
    pub restart: Restart,
}

/// The supervisor's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub crash_limit: u32,
    pub window: Duration,
    pub grace: Duration,
}

/// A host's configuration, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub state_dir: Option<PathBuf>,
    pub policy: Policy,
    pub nodes: Vec<NodeEntry>,
    /// The contents of each node's configuration file when read: a change
    /// to one is a change to its node.
    pub config_texts: Vec<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    state_dir: Option<PathBuf>,
    #[serde(default = "ten")]
    grace: f64,
    #[serde(default = "half_second")]
    backoff_ms: u64,
    #[serde(default = "thirty")]
    max_backoff: f64,
    #[serde(default = "five")]
    crash_limit: u32,
    #[serde(default = "sixty")]
    crash_window: f64,
    #[serde(default)]
    node: Vec<NodeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    name: String,
    config: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default = "on_failure")]
    restart: Restart,
}

fn ten() -> f64 {
    10.0
}
fn half_second() -> u64 {
    500
}
fn thirty() -> f64 {
    30.0
}
fn five() -> u32 {
    5
}
fn sixty() -> f64 {
    60.0
}
fn on_failure() -> Restart {
    Restart::OnFailure
}

fn secs(what: &str, v: f64) -> anyhow::Result<Duration> {
    if !(0.0..=86_400.0).contains(&v) {
        bail!("{what} must be 0 to 86400 seconds, not {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

impl Host {
    /// Reads and checks `path`; every problem names the file.
    pub fn load(path: &Path) -> anyhow::Result<Host> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Host::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("{} is not a host configuration", path.display()))
    }

    /// Parses a host file whose relative paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> anyhow::Result<Host> {
        let f: File = toml::from_str(text)?;
        if f.crash_limit == 0 {
            bail!("crash_limit must be at least 1");
        }
        let mut nodes: Vec<NodeEntry> = Vec::new();
        let mut config_texts = Vec::new();
        for n in f.node {
            if n.name.is_empty()
                || n.name.len() > 64
                || !n.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                bail!("node `{}`: a name is 1 to 64 of A-Z, a-z, 0-9, `_`, `.`, `-`", n.name);
            }
            if nodes.iter().any(|o| o.name == n.name) {
                bail!("two nodes are named `{}`", n.name);
            }
            if n.args.first().is_some_and(|a| a == "node") {
                bail!("node `{}`: args are those of `framewire node`, without `node`", n.name);
            }
            let config = n.config.map(|c| if c.is_absolute() { c } else { dir.join(c) });
            config_texts.push(config.as_ref().and_then(|c| std::fs::read_to_string(c).ok()));
            nodes.push(NodeEntry {
                name: n.name,
                config,
                args: n.args,
                restart: n.restart,
            });
        }
        Ok(Host {
            state_dir: f.state_dir.map(|d| if d.is_absolute() { d } else { dir.join(d) }),
            policy: Policy {
                backoff: Duration::from_millis(f.backoff_ms.clamp(10, 600_000)),
                max_backoff: secs("max_backoff", f.max_backoff)?,
                crash_limit: f.crash_limit,
                window: secs("crash_window", f.crash_window)?,
                grace: secs("grace", f.grace)?,
            },
            nodes,
            config_texts,
        })
    }

    /// The entries as the supervisor compares them: a node whose
    /// configuration file's contents changed counts as changed (its text
    /// is carried as one more argument the driver does not pass).
    pub fn entries(&self) -> Vec<NodeEntry> {
        self.nodes
            .iter()
            .zip(&self.config_texts)
            .map(|(n, text)| {
                let mut e = n.clone();
                if let Some(t) = text {
                    e.args.push(format!("{CONFIG_MARK}{:016x}", fnv(t.as_bytes())));
                }
                e
            })
            .collect()
    }
}

/// The argument that carries a configuration file's fingerprint; the
/// driver drops it.
pub const CONFIG_MARK: &str = "\u{0}config-fingerprint=";

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_file_parses_with_defaults_and_refuses_mistakes() {
        let h = Host::parse(
            "[[node]]\nname = \"cam\"\nconfig = \"cam.toml\"\nargs = [\"--name\", \"lab:cam\"]\n\
             [[node]]\nname = \"relay\"\nrestart = \"always\"\n",
            Path::new("/etc/framewire"),
        )
        .unwrap();
        assert_eq!(h.nodes[0].config.as_deref(), Some(Path::new("/etc/framewire/cam.toml")));
        assert_eq!(
            (h.nodes[0].restart, h.nodes[1].restart),
            (Restart::OnFailure, Restart::Always)
        );
        assert_eq!(h.policy.backoff, Duration::from_millis(500));
        assert_eq!((h.policy.crash_limit, h.policy.window), (5, Duration::from_secs(60)));
        for (text, why) in [
            (
                "[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n",
                "two nodes are named `a`",
            ),
            ("[[node]]\nname = \"a b\"\n", "node `a b`"),
            ("[[node]]\nname = \"a\"\nargs = [\"node\"]\n", "without `node`"),
            ("[[node]]\nname = \"a\"\nrestart = \"sometimes\"\n", "unknown variant"),
            ("graze = 1\n", "unknown field"),
            ("crash_limit = 0\n", "at least 1"),
        ] {
            let e = format!("{:#}", Host::parse(text, Path::new("/")).unwrap_err());
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_changed_configuration_file_changes_its_entry() {
        let dir = std::env::temp_dir().join(format!("fw-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.toml"), "name = \"x:a\"\n").unwrap();
        let text = "[[node]]\nname = \"a\"\nconfig = \"a.toml\"\n[[node]]\nname = \"b\"\n";
        let before = Host::parse(text, &dir).unwrap().entries();
        std::fs::write(dir.join("a.toml"), "name = \"x:a2\"\n").unwrap();
        let after = Host::parse(text, &dir).unwrap().entries();
        assert_ne!(before[0], after[0]);
        assert_eq!(before[1], after[1]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
