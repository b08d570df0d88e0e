//! Deployment keys and /metrics from the command line, with real processes
//! on loopback: `key gen`, `--key-file` / FRAMEWIRE_KEY_FILE on the tools,
//! refusals and their exit codes, a failed edge in `stats`, a scrape.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn framewire(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_framewire"));
    c.args(args)
        .env("NO_COLOR", "1")
        .env_remove("FRAMEWIRE_KEY_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("framewire runs")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory, removed when the test ends (also when it fails).
fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fw-keys-{tag}-"))
        .tempdir()
        .unwrap()
}

fn gen_key(path: &Path) {
    let out = framewire(&["key", "gen", path.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn key_gen_writes_a_private_key_and_keeps_existing_ones() {
    let tmp = tempdir("gen");
    let dir = tmp.path();
    let k = dir.join("k");
    gen_key(&k);
    let meta = std::fs::metadata(&k).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&k).unwrap();
    assert_eq!(text.len(), 65, "64 hex digits and a newline: {text:?}");
    assert!(text.trim_end().chars().all(|c| c.is_ascii_hexdigit()));

    let out = framewire(&["key", "gen", k.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&k).unwrap(), text, "left alone");

    let out = framewire(&["key", "gen", k.to_str().unwrap(), "--force"], &[]);
    assert!(out.status.success());
    assert_ne!(std::fs::read_to_string(&k).unwrap(), text);

    // Without a file: printed.
    let out = framewire(&["key", "gen"], &[]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim_end().len(), 64);
}

#[test]
fn tools_authenticate_with_the_key_and_are_refused_without_it() {
    let tmp = tempdir("tools");
    let dir = tmp.path();
    let (k1, k2) = (dir.join("k1"), dir.join("k2"));
    gen_key(&k1);
    gen_key(&k2);
    let (k1s, k2s) = (k1.to_str().unwrap(), k2.to_str().unwrap());
    let node = spawn_node(&[
        "--name",
        "test:keyed",
        "--key-file",
        k1s,
        "--source",
        "test-pattern:bars,size=64x48,fps=30",
    ]);
    let a = node.addr.to_string();

    // Right key, as a flag (before or after the subcommand) or from the environment.
    for args in [
        vec!["--key-file", k1s, "ls", &a, "--json"],
        vec!["ls", &a, "--json", "--key-file", k1s],
    ] {
        let out = framewire(&args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["name"], "bars");
    }
    let out = framewire(&["ls", &a, "--json"], &[("FRAMEWIRE_KEY_FILE", k1s)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = framewire(
        &[
            "recv",
            &a,
            "bars",
            "--frames",
            "2",
            "--out",
            dir.join("f").to_str().unwrap(),
        ],
        &[("FRAMEWIRE_KEY_FILE", k1s)],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // No key: refused by the node (exit 3), nothing listed.
    let out = framewire(&["ls", &a, "--json"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("requires authentication"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // Another key: the tool refuses the node's proof (exit 3).
    let out = framewire(&["ls", &a, "--json", "--key-file", k2s], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("different keys"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // The node logged the refusals with the peer's address, never the key.
    let key_hex = std::fs::read_to_string(&k1).unwrap();
    assert!(
        node.wait_log("refused by authentication", Duration::from_secs(5)),
        "no refusal logged:\n{}",
        node.log()
    );
    let log = node.log();
    assert!(log.contains("127.0.0.1"), "{log}");
    assert!(!log.contains(key_hex.trim()), "key in the log");

    // A loose key file is refused with the fix in the message.
    std::fs::set_permissions(&k2, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = framewire(&["ls", &a, "--key-file", k2s], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    let out = framewire(&["node", "--listen", "127.0.0.1:0", "--key-file", k2s], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    // A short key is refused.
    let short = dir.join("short");
    std::fs::write(&short, "abcd\n").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = framewire(&["ls", &a, "--key-file", short.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at least 32 bytes"), "{}", stderr(&out));
}

#[test]
fn stats_shows_an_edge_to_a_node_with_another_key_as_failed() {
    let tmp = tempdir("edge");
    let dir = tmp.path();
    let (k1, k2) = (dir.join("k1"), dir.join("k2"));
    gen_key(&k1);
    gen_key(&k2);
    let (k1s, k2s) = (k1.to_str().unwrap(), k2.to_str().unwrap());
    let src = spawn_node(&[
        "--name",
        "test:src",
        "--key-file",
        k1s,
        "--source",
        "test-pattern:bars,size=64x48,fps=30",
    ]);
    let good = spawn_node(&[
        "--name",
        "test:good",
        "--key-file",
        k1s,
        "--upstream",
        &format!("{}/bars", src.addr),
    ]);
    let bad = spawn_node(&[
        "--name",
        "test:bad",
        "--key-file",
        k2s,
        "--upstream",
        &format!("{}/bars", src.addr),
    ]);
    let state = |node: &NodeProc, key: &str| -> String {
        let out = framewire(&["stats", &node.addr.to_string(), "--json", "--key-file", key], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["inputs"][0]["state"].as_str().unwrap_or_default().to_owned()
    };
    let every = Duration::from_millis(50);
    let failed = eventually_every(Duration::from_secs(10), every, || {
        (state(&bad, k2s) == "failed").then_some(())
    });
    assert!(failed.is_some(), "the edge never failed");
    let live = eventually_every(Duration::from_secs(10), every, || {
        (state(&good, k1s) == "live").then_some(())
    });
    assert!(live.is_some(), "the keyed edge never went live");
    let out = framewire(&["stats", &bad.addr.to_string(), "--key-file", k2s], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed"));
    let log = bad.log.lock().unwrap().clone();
    assert!(log.contains("authentication"), "{log}");
}

#[test]
fn node_serves_metrics_when_asked() {
    let node = spawn_node(&[
        "--name",
        "test:m",
        "--metrics",
        "127.0.0.1:0",
        "--source",
        "test-pattern:bars,size=64x48,fps=30",
    ]);
    let body = common::scrape_metrics(&node);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("framewire_input_frames_total{stream=\"bars\",kind=\"source\"}"),
        "{body}"
    );
    assert!(body.contains("framewire_node_info{node=\"test:m\""));
    // `--help` explains both flags.
    let help = framewire(&["node", "--help"], &[]);
    let h = String::from_utf8_lossy(&help.stdout);
    assert!(
        h.contains("--metrics") && h.contains("--key-file") && h.contains("9400"),
        "{h}"
    );
}

#[test]
fn discover_probes_a_keyed_manual_peer_with_the_key() {
    let tmp = tempdir("discover");
    let dir = tmp.path();
    let k = dir.join("k");
    gen_key(&k);
    let ks = k.to_str().unwrap();
    let quiet = spawn_node(&["--name", "t:quiet-keyed", "--discovery", "off", "--key-file", ks]);
    let target = quiet.addr.to_string();
    // A private group and port so that no other node is heard.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let group = format!("239.255.{}.77", std::process::id() % 250 + 1);
    let discover = |key: Option<&str>| -> serde_json::Value {
        let mut args = vec!["discover", "--json", "--seconds", "1.5", "--group", &group, "--port"];
        let p = port.to_string();
        args.push(&p);
        args.extend(["--peer", &target]);
        if let Some(k) = key {
            args.extend(["--key-file", k]);
        }
        let out = framewire(&args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        rows.into_iter()
            .find(|r| r["origin"] == "manual")
            .expect("the manual peer is listed")
    };
    let row = discover(Some(ks));
    assert_eq!(row["reachable"], true, "{row}");
    assert_eq!(row["name"], "t:quiet-keyed");
    let row = discover(None);
    assert_eq!(row["reachable"], false, "{row}");
    assert!(
        row["error"]
            .as_str()
            .unwrap_or_default()
            .contains("requires authentication"),
        "{row}"
    );
    // A keyed node probes its manual peers with its key.
    let p = port.to_string();
    let prober = spawn_node(&[
        "--name",
        "t:prober",
        "--key-file",
        ks,
        "--discovery-group",
        &group,
        "--discovery-port",
        &p,
        "--peer",
        &target,
    ]);
    assert!(
        prober.wait_log("peer=0:t:quiet-keyed", Duration::from_secs(10)),
        "the keyed manual peer never appeared:\n{}",
        prober.log()
    );
}
