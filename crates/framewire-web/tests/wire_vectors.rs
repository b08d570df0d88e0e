//! One expectation file, two codecs: docs/protocol-vectors.json holds the
//! decoded fields of docs/protocol.md's vectors; this test checks the Rust
//! codec against it, and runs the browser decoder's own test (node --test
//! assets/wire.test.mjs) against the same file.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use framewire_proto::control::{Request, StreamOpen};
use framewire_proto::{Decoder, Message, StreamEvent};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vectors() -> Vec<(String, Vec<u8>)> {
    let doc = std::fs::read_to_string(root().join("docs/protocol.md")).unwrap();
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        if let Some(name) = l.strip_prefix("```hex ") {
            let mut bytes = Vec::new();
            for l in lines.by_ref().take_while(|l| !l.starts_with("```")) {
                let data = l.split('#').next().unwrap();
                bytes.extend(data.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()));
            }
            out.push((name.trim().to_owned(), bytes));
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn open_json(o: &StreamOpen) -> Value {
    let mut v = json!({
        "format": o.format.to_string(), "pixel_format": o.pixel_format.to_string(), "origin": o.origin.to_string(),
        "width": o.width, "height": o.height, "fps_num": o.fps_num, "fps_den": o.fps_den, "name": o.name,
    });
    if !o.codec_config.is_empty() {
        v["codec_config_hex"] = Value::from(hex(&o.codec_config));
    }
    v
}

/// The neutral form of docs/protocol-vectors.json, from the Rust codec.
fn normalize(m: &Message, payload_length: usize) -> Value {
    let mut o = json!({"type": m.message_type().to_string(), "channel": m.channel(), "payload_length": payload_length});
    let extra = match m {
        Message::VideoFrame(f) => json!({
            "sequence": f.sequence.to_string(), "timestamp_ns": f.timestamp_ns.to_string(), "flags": f.flags.0,
            "keyframe": f.flags.0 & 1 != 0, "discontinuity": f.flags.0 & 2 != 0, "data_hex": hex(&f.data),
        }),
        Message::ControlRequest(r) => {
            let mut v = json!({"request_id": r.request_id, "command": r.command.to_string()});
            if let Ok(Request::StreamOpen(s)) = Request::decode(r) {
                v["stream_open"] = open_json(&s);
            }
            v
        }
        Message::ControlResponse(r) => {
            let mut v =
                json!({"request_id": r.request_id, "status": r.status.to_string(), "command": r.command.to_string()});
            if let Some(msg) = r.error_message() {
                v["message"] = json!(msg);
            }
            v
        }
        Message::StreamEvent { event, .. } => match event {
            StreamEvent::Interrupted(i) | StreamEvent::Resumed(i) | StreamEvent::Closed(i) => json!({
                "event": event.code().to_string(), "timestamp_ns": i.timestamp_ns.to_string(),
                "reason": i.reason.to_string(), "message": i.message,
            }),
            StreamEvent::FormatChanged(s) => json!({"event": "format-changed", "stream_open": open_json(s)}),
            other => json!({"event": other.code().to_string()}),
        },
        Message::AudioFrame { payload, .. } => json!({"body_hex": hex(payload)}),
        Message::Unknown { payload, .. } => json!({"body_hex": hex(payload)}),
        _ => json!({}),
    };
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

#[test]
fn rust_codec_matches_the_shared_expectations() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs/protocol-vectors.json")).unwrap()).unwrap();
    let all = vectors();
    assert!(all.len() >= 20, "only {} vectors", all.len());
    let mut checked = 0;
    for (name, want) in expected.as_object().unwrap() {
        if name.starts_with('_') {
            continue;
        }
        let (_, bytes) = all
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("docs/protocol-vectors.json names {name}, docs/protocol.md has no such vector"));
        let mut buf = BytesMut::from(&bytes[..]);
        let m = Decoder::new().decode(&mut buf).unwrap().expect("a whole message");
        assert!(buf.is_empty(), "{name}: bytes left over");
        assert_eq!(&normalize(&m, bytes.len() - 8), want, "vector {name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} expectations");
}

#[test]
fn browser_decoder_matches_the_shared_expectations() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets");
    if Command::new("node").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`node` is needed in CI (scripts/setup.sh)"
        );
        eprintln!(
            "\n!!!!! SKIPPED: `node` is not installed; the browser decoder (assets/wire.js) was NOT tested !!!!!\n"
        );
        return;
    }
    let start = Instant::now();
    let mut child = Command::new("node")
        .arg("--test")
        .arg(dir.join("wire.test.mjs"))
        .arg(dir.join("graphlayout.test.mjs"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("node --test took over 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# fail 0") && !text.contains("# pass 0"), "{text}");
}

#[test]
fn ui_scripts_parse_as_modules() {
    for file in ["app.js", "latency.js", "wire.js"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets").join(file);
        let src = std::fs::File::open(&path).unwrap();
        let out = match Command::new("node")
            .args(["--input-type=module", "--check"])
            .stdin(src)
            .output()
        {
            Ok(o) => o,
            Err(_) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "`node` is needed in CI (scripts/setup.sh)"
                );
                eprintln!("\n!!!!! SKIPPED: `node` is not installed; {file} was NOT checked !!!!!\n");
                return;
            }
        };
        assert!(
            out.status.success(),
            "{file} does not parse:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
