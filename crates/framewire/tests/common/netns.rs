//! Network namespaces a test makes (and deletes when done): hosts joined
//! by veths and bridges, nodes started inside them.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::NodeProc;

/// The `framewire` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_framewire");

static NS_SEQ: AtomicU32 = AtomicU32::new(0);

/// Namespaces made by one test; all deleted on drop.
pub struct Netns {
    names: Vec<String>,
    prefix: String,
}

impl Netns {
    /// Fails the test, saying why, when this machine cannot make namespaces.
    pub fn new() -> Netns {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        assert!(root, "the namespace tests need root (CI runs them as root)");
        let prefix = format!("fwd{}x{}", std::process::id(), NS_SEQ.fetch_add(1, Ordering::SeqCst));
        let mut ns = Netns {
            names: Vec::new(),
            prefix,
        };
        if let Err(e) = ns.add("probe") {
            panic!("cannot create a network namespace ({e}): the namespace tests need root and iproute2");
        }
        ns
    }

    pub fn add(&mut self, role: &str) -> Result<String, String> {
        let name = format!("{}{role}", self.prefix);
        run(&["ip", "netns", "add", &name])?;
        self.names.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A bridge in the switch namespace.
    pub fn bridge(&self, sw: &str, br: &str) {
        run(&["ip", "-n", sw, "link", "add", br, "type", "bridge"]).unwrap();
        run(&["ip", "-n", sw, "link", "set", br, "up"]).unwrap();
    }

    /// A veth from `host` (as `dev`, with `cidr`) into bridge `br` of `sw`.
    pub fn plug(&self, sw: &str, br: &str, port: &str, host: &str, dev: &str, cidr: &str) {
        run(&[
            "ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", host,
        ])
        .unwrap();
        run(&["ip", "-n", sw, "link", "set", port, "master", br]).unwrap();
        run(&["ip", "-n", sw, "link", "set", port, "up"]).unwrap();
        run(&["ip", "-n", host, "addr", "add", cidr, "dev", dev]).unwrap();
        run(&["ip", "-n", host, "link", "set", dev, "up"]).unwrap();
    }
}

impl Netns {
    /// A veth between two hosts: `dev_a` with `cidr_a` in `a`, `dev_b`
    /// with `cidr_b` in `b`.
    pub fn link(&self, a: &str, dev_a: &str, cidr_a: &str, b: &str, dev_b: &str, cidr_b: &str) {
        run(&[
            "ip", "-n", a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", b,
        ])
        .unwrap();
        for (ns, dev, cidr) in [(a, dev_a, cidr_a), (b, dev_b, cidr_b)] {
            run(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]).unwrap();
            run(&["ip", "-n", ns, "link", "set", dev, "up"]).unwrap();
        }
    }

    /// Shapes what leaves `dev` of `ns` to `rate` (a `tc` rate: `8mbit`)
    /// with a token bucket filter. Fails the test, saying why, when `tc`
    /// cannot.
    pub fn shape(&self, ns: &str, dev: &str, rate: &str) {
        let r = run(&[
            "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "32kb",
            "latency", "100ms",
        ]);
        if let Err(e) = r {
            panic!("cannot shape {dev} in {ns} ({e}): the shaped-link tests need tc (iproute2) and sch_tbf");
        }
    }

    /// Runs `nft ARGS` inside `ns`. Fails the test, saying why, when nft
    /// cannot.
    pub fn nft(&self, ns: &str, args: &[&str]) {
        let mut a = vec!["ip", "netns", "exec", ns, "nft"];
        a.extend_from_slice(args);
        run(&a).unwrap_or_else(|e| panic!("nft ({e}): these tests need nftables (scripts/setup.sh)"));
    }

    /// Sends what `ns` opens to `daddr`:7400 to `via` instead (a proxy on
    /// the path): table `ip fw`, a nat chain `out` on output, one rule.
    pub fn redirect(&self, ns: &str, daddr: &str, via: &str) {
        self.nft(ns, &["add", "table", "ip", "fw"]);
        self.nft(
            ns,
            &[
                "add", "chain", "ip", "fw", "out", "{", "type", "nat", "hook", "output", "priority", "-100", ";", "}",
            ],
        );
        self.nft(
            ns,
            &[
                "add", "rule", "ip", "fw", "out", "ip", "daddr", daddr, "tcp", "dport", "7400", "dnat", "to", via,
            ],
        );
    }

    /// Runs `framewire ARGS` inside `ns` and returns its standard output.
    pub fn framewire(&self, ns: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("ip netns exec runs");
        assert!(
            out.status.success(),
            "framewire {args:?} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            // Kill anything left inside, then delete (veths go with it).
            let _ = Command::new("ip").args(["netns", "pids", n]).output().map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

pub fn run(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Starts `[ip netns exec NS] framewire node ARGS` and waits until it listens.
pub fn spawn_in(ns: Option<&str>, args: &[String]) -> NodeProc {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.arg("node").args(args);
    if !args.iter().any(|a| a == "--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    super::spawn_command(cmd, Duration::from_secs(20))
}

/// Runs `f` on a thread of its own inside namespace `ns`: every socket it
/// opens (and every thread it starts) is in that namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f).join().expect("the thread in the namespace")
}

/// As [`in_netns`], without waiting: the thread's handle.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a descriptor we hold open, for this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}
