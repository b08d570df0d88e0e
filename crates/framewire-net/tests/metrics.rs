//! `/metrics` of a live node: scraped over HTTP twice, parsed line by line
//! as the Prometheus text format 0.0.4, counters present and increasing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use framewire_codec::EncodeSpec;
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{Client, ClientIdentity, EdgeConfig, Node, NodeConfig, SourceConfig};
use framewire_proto::{Command, DeliveryMode, Message, PixelFormat, SubscribeParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// `GET path` over HTTP/1.1; returns status line, headers, body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, HashMap<String, String>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")),
        "this test reads a plain body"
    );
    if let Some(len) = headers.get("content-length") {
        assert_eq!(len.parse::<usize>().unwrap(), body.len());
    }
    (status, headers, body.to_owned())
}

type Labels = BTreeMap<String, String>;

/// Parses the text format strictly: every line is a `# HELP`/`# TYPE`
/// comment or `name{labels} value`; each sample's family has a TYPE before
/// it; label values use only the three escapes. Returns (name, labels) →
/// value and the families' types.
fn parse(text: &str) -> (HashMap<(String, Labels), f64>, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    let mut helps = HashSet::new();
    assert!(text.ends_with('\n'), "the body ends with a newline");
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty());
            assert!(helps.insert(name.to_owned()), "HELP twice: {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {name}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let name_end = line.find(['{', ' ']).expect("a value");
        let name = &line[..name_end];
        assert!(
            name.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())),
            "bad metric name in {line}"
        );
        assert!(types.contains_key(name), "sample before its TYPE: {line}");
        assert!(helps.contains(name), "sample without HELP: {line}");
        let rest = &line[name_end..];
        let (labels, rest) = parse_labels(rest, line);
        let value = rest.strip_prefix(' ').expect("space before value");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        assert!(
            samples.insert((name.to_owned(), labels), v).is_none(),
            "duplicate series: {line}"
        );
    }
    (samples, types)
}

/// Parses `{a="x",b="y"}` at the start of `s` (or nothing); returns the
/// labels and what follows.
fn parse_labels<'a>(s: &'a str, line: &str) -> (Labels, &'a str) {
    let mut labels = Labels::new();
    let Some(body) = s.strip_prefix('{') else {
        return (labels, s);
    };
    let b: Vec<char> = body.chars().collect();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&'}') {
            i += 1;
            break;
        }
        let mut name = String::new();
        while let Some(&c) = b.get(i) {
            if c == '=' {
                break;
            }
            assert!(
                c.is_ascii_alphanumeric() || c == '_',
                "bad label name char `{c}` in {line}"
            );
            name.push(c);
            i += 1;
        }
        assert!(!name.is_empty(), "empty label name in {line}");
        assert_eq!(b.get(i), Some(&'='), "label= in {line}");
        assert_eq!(b.get(i + 1), Some(&'"'), "quoted value in {line}");
        i += 2;
        let mut value = String::new();
        loop {
            match *b.get(i).unwrap_or_else(|| panic!("closing quote in {line}")) {
                '\\' => {
                    value.push(match b.get(i + 1) {
                        Some('\\') => '\\',
                        Some('"') => '"',
                        Some('n') => '\n',
                        other => panic!("bad escape {other:?} in {line}"),
                    });
                    i += 2;
                }
                '"' => {
                    i += 1;
                    break;
                }
                c => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        assert!(labels.insert(name, value).is_none(), "label twice in {line}");
        match b.get(i) {
            Some(',') => i += 1,
            Some('}') => {
                i += 1;
                break;
            }
            other => panic!("unexpected {other:?} in {line}"),
        }
    }
    let consumed: usize = b[..i].iter().map(|c| c.len_utf8()).sum();
    (labels, &body[consumed..])
}

/// Parses with `prometheus_client.parser` (Debian's python3-prometheus-client,
/// installed by scripts/setup.sh); returns every sample's name and value.
fn reference_parse(text: &str) -> Vec<(String, f64)> {
    use std::io::Write;
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    assert fam.documentation, fam.name
    for s in fam.samples:
        print(s.name, repr(float(s.value)))
"#;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text (scripts/setup.sh installs python3-prometheus-client): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn pattern(name: &str) -> SourceConfig {
    SourceConfig::from(TestPatternConfig {
        name: name.into(),
        width: 32,
        height: 24,
        fps_num: 100,
        fps_den: 1,
        encode: EncodeSpec::raw(PixelFormat::Bgra),
    })
}

fn get(samples: &HashMap<(String, Labels), f64>, name: &str, want: &[(&str, &str)]) -> f64 {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|((n, l), _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "one series {name} {want:?}, found {}", hits.len());
    hits[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_a_live_node_twice() {
    timeout(Duration::from_secs(30), async {
        let mut scfg = NodeConfig::new("test:source", loopback());
        scfg.sources.push(pattern("bars"));
        let source = Node::start(scfg).await.unwrap();
        assert_eq!(source.metrics_addr(), None, "off by default");

        let mut cfg = NodeConfig::new("test:\"relay\"", loopback());
        cfg.metrics = Some(loopback());
        let relay = Node::start(cfg).await.unwrap();
        relay
            .connect(EdgeConfig::new(source.local_addr().to_string(), "bars").named("relayed"))
            .unwrap();
        let maddr = relay.metrics_addr().expect("metrics on");

        // A subscriber that keeps reading.
        let mut c = Client::connect(
            &relay.local_addr().to_string(),
            &ClientIdentity::tool("test:viewer"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let params = SubscribeParams {
            mode: DeliveryMode::Completeness,
            max_frames: 32,
            ..SubscribeParams::default()
        };
        let channel = loop {
            match c.subscribe("relayed", params).await {
                Ok(ch) => break ch,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        // It counts the frames it got, for the test to wait on.
        let (got, mut frames) = tokio::sync::watch::channel(0u64);
        let reader = tokio::spawn(async move {
            while let Ok(Some(m)) = c.next_message().await {
                match &m {
                    Message::ControlRequest(req) if req.command == Command::StreamOpen => {
                        let _ = c.ack(req).await;
                    }
                    Message::VideoFrame(_) => got.send_modify(|n| *n += 1),
                    _ => {}
                }
            }
        });
        // A few frames through (the writer counts each before it sends the
        // next), so that every counter has moved from zero.
        tokio::time::timeout(Duration::from_secs(10), frames.wait_for(|got| *got >= 3))
            .await
            .expect("frames within 10 s")
            .expect("the reader runs");

        let (status, headers, body1) = http_get(maddr, "/metrics").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert!(
            headers["content-type"].starts_with("text/plain; version=0.0.4"),
            "{headers:?}"
        );
        let (s1, types) = parse(&body1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The kernel counts CPU in ticks; a quiet node may not have used one
        // yet. Spend a few in this process so the counter must have moved.
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (_, _, body2) = http_get(maddr, "/metrics").await;
        let (s2, _) = parse(&body2);

        let out = [
            ("stream", "relayed"),
            ("mode", "completeness"),
            ("channel", &*channel.to_string()),
        ];
        let out: Vec<(&str, &str)> = out.to_vec();
        for name in [
            "framewire_output_frames_in_total",
            "framewire_output_frames_sent_total",
            "framewire_output_bytes_sent_total",
        ] {
            assert_eq!(types[name], "counter");
            let (a, b) = (get(&s1, name, &out), get(&s2, name, &out));
            assert!(a > 0.0 && b > a, "{name}: {a} then {b}");
        }
        let peer = s1
            .keys()
            .find(|(n, _)| n == "framewire_output_frames_sent_total")
            .map(|(_, l)| l["peer"].clone())
            .unwrap();
        assert!(peer.contains("test:viewer"), "{peer}");
        get(
            &s2,
            "framewire_output_dropped_frames_total",
            &[("stream", "relayed"), ("reason", "replaced")],
        );
        get(
            &s2,
            "framewire_output_send_latency_seconds",
            &[("stream", "relayed"), ("quantile", "0.99")],
        );
        get(&s2, "framewire_output_queue_frames", &[("stream", "relayed")]);
        let edge = [
            ("stream", "relayed"),
            ("upstream", &*format!("{}/bars", source.local_addr())),
        ];
        let edge: Vec<(&str, &str)> = edge.to_vec();
        let (a, b) = (
            get(&s1, "framewire_edge_frames_total", &edge),
            get(&s2, "framewire_edge_frames_total", &edge),
        );
        assert!(b > a && a > 0.0, "edge frames {a} then {b}");
        assert!(get(&s2, "framewire_edge_bytes_total", &edge) > 0.0);
        assert_eq!(get(&s2, "framewire_edge_up", &edge), 1.0);
        assert_eq!(get(&s2, "framewire_edge_reconnects_total", &edge), 0.0);
        let lat = get(&s2, "framewire_edge_latency_seconds", &edge);
        assert!((0.0..5.0).contains(&lat), "edge latency {lat}");
        assert_eq!(
            get(
                &s2,
                "framewire_input_state",
                &[("stream", "relayed"), ("state", "live")]
            ),
            1.0
        );
        // Process figures.
        assert!(get(&s2, "process_resident_memory_bytes", &[]) > 1e6);
        assert!(get(&s2, "process_open_fds", &[]) >= 3.0);
        let cpu = get(&s2, "process_cpu_seconds_total", &[]);
        let cpu1 = get(&s1, "process_cpu_seconds_total", &[]);
        assert!(cpu >= cpu1 && cpu > 0.0, "process CPU {cpu1} then {cpu} s");
        assert_eq!(types["process_cpu_seconds_total"], "counter");
        // Node info, with the quote in the name escaped and read back.
        assert_eq!(
            get(
                &s2,
                "framewire_node_info",
                &[("node", "test:\"relay\""), ("auth", "none")]
            ),
            1.0
        );
        assert!(body2.contains(r#"node="test:\"relay\"""#), "escaped in the text");

        // The reference parser (the Prometheus Python client's) reads it the same.
        let reference = reference_parse(&body2);
        let sent = get(&s2, "framewire_output_frames_sent_total", &out);
        assert!(
            reference
                .iter()
                .any(|(n, v)| n == "framewire_output_frames_sent_total" && *v == sent),
            "reference parser disagrees on frames sent ({sent})"
        );
        assert_eq!(reference.len(), s2.len(), "same number of samples");

        // Anything else is 404.
        let (status, _, _) = http_get(maddr, "/other").await;
        assert!(status.starts_with("HTTP/1.1 404"), "{status}");
        reader.abort();
        relay.shutdown().await;
        // The server stops with the node.
        assert!(tokio::net::TcpStream::connect(maddr).await.is_err());
    })
    .await
    .expect("within 30 s");
}
