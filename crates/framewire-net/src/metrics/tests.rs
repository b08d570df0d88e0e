use framewire_proto::control::{DropCount, DropReason, InputStats, OutputStats};
use framewire_proto::{DeliveryMode, TransportMode};

use super::render::fmt_value;
use super::*;

fn snapshot() -> MetricsSnapshot {
    MetricsSnapshot {
        node: "lab:relay".into(),
        version: "0.1.0".into(),
        site_id: 0,
        uptime_seconds: 12.5,
        connections: 3,
        auth_refusals: 2,
        busy_refusals: 3,
        auth_required: true,
        stats: Stats {
            inputs: vec![
                InputStats {
                    stream: "cam".into(),
                    state: StreamState::Live,
                    upstream: String::new(),
                    frames_in: 100,
                    bytes_in: 5000,
                    reconnects: 0,
                },
                InputStats {
                    stream: "far".into(),
                    state: StreamState::Failed,
                    upstream: "10.0.0.1:7400/x".into(),
                    frames_in: 7,
                    bytes_in: 70,
                    reconnects: 4,
                },
            ],
            outputs: vec![OutputStats {
                channel: 1,
                stream: "cam".into(),
                peer: "127.0.0.1:5555 a \"quoted\\ name\"\nx".into(),
                mode: DeliveryMode::LowLatency,
                transport: TransportMode::Encapsulated,
                priority: 128,
                frames_in: 100,
                frames_sent: 90,
                bytes_sent: 4500,
                drops: vec![DropCount {
                    reason: DropReason::Replaced,
                    count: 10,
                }],
                queue_frames: 1,
                queue_bytes: 50,
                max_frames: 1,
                max_bytes: 1 << 20,
                oldest_age_us: 1500,
                latency_p50_us: 250,
                latency_p99_us: 1200,
                latency_max_us: 3000,
                waiting_keyframe: false,
            }],
            input_events: Vec::new(),
            pass_through: Vec::new(),
        },
        edges: vec![EdgeMetrics {
            stream: "far".into(),
            upstream: "10.0.0.1:7400/x".into(),
            state: StreamState::Failed,
            latency_seconds: Some(0.004),
            replayed: 3,
        }],
        process: ProcessStats {
            cpu_seconds: 1.25,
            resident_bytes: 4096,
            virtual_bytes: 8192,
            open_fds: 9,
        },
        discovery: Some(crate::transport::discovery::DiscoveryCounters {
            peers: 12,
            conflicts: 4,
            table_full: 0,
            address_full: 7,
            forward_dropped: 0,
        }),
    }
}

#[test]
fn renders_families_with_help_type_and_escaped_labels() {
    let text = render(&snapshot());
    assert!(text.contains("# TYPE framewire_output_frames_sent_total counter\n"));
    assert!(text.contains("# HELP framewire_output_frames_sent_total "));
    assert!(text.contains(
        "framewire_output_frames_sent_total{stream=\"cam\",peer=\"127.0.0.1:5555 a \\\"quoted\\\\ name\\\"\\nx\",mode=\"low-latency\",channel=\"1\"} 90\n"
    ), "{text}");
    assert!(text.contains("reason=\"replaced\"} 10\n"));
    assert!(text.contains("reason=\"frame-budget\"} 0\n") || text.contains("reason=\"frame_budget\"} 0\n"));
    assert!(text.contains(",quantile=\"0.99\"} 0.0012\n"), "{text}");
    assert!(text.contains("framewire_output_send_latency_max_seconds{"));
    assert!(text.contains("framewire_edge_reconnects_total{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 4\n"));
    assert!(text.contains("framewire_edge_failed{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 1\n"));
    assert!(text.contains("framewire_edge_latency_seconds{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 0.004\n"));
    assert!(text.contains("framewire_edge_replayed_frames_total{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 3\n"));
    assert!(text.contains("framewire_input_state{stream=\"far\",state=\"failed\"} 1\n"));
    assert!(text.contains("framewire_input_state{stream=\"far\",state=\"live\"} 0\n"));
    assert!(text.contains("process_cpu_seconds_total 1.25\n"));
    assert!(text.contains("process_resident_memory_bytes 4096\n"));
    assert!(text.contains("framewire_auth_refusals_total 2\n"));
    assert!(text.contains("framewire_busy_refusals_total 3\n"));
    assert!(text.contains("framewire_discovery_conflicts_total 4\n"), "{text}");
    assert!(text.contains("framewire_discovery_peers 12\n"), "{text}");
    assert!(
        text.contains("framewire_discovery_refused_peers_total{reason=\"address-share\"} 7\n"),
        "{text}"
    );
    assert!(text.contains("auth=\"hmac-sha256\""));
    // Every family has HELP and TYPE before its samples, once.
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "sample before TYPE: {line}");
            assert!(name.starts_with("framewire_") || name.starts_with("process_"), "{name}");
        }
    }
}

#[test]
fn identical_outputs_get_distinct_series() {
    let mut m = snapshot();
    let mut second = m.stats.outputs[0].clone();
    second.peer = "null".into();
    second.channel = 0;
    m.stats.outputs = vec![second.clone(), second];
    let text = render(&m);
    assert!(text.contains(
        "framewire_output_frames_sent_total{stream=\"cam\",peer=\"null\",mode=\"low-latency\",channel=\"0\"} 90\n"
    ));
    assert!(text.contains(
        "framewire_output_frames_sent_total{stream=\"cam\",peer=\"null #2\",mode=\"low-latency\",channel=\"0\"} 90\n"
    ));
}

#[test]
fn escapes_label_values() {
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(escape_label("plain"), "plain");
}

#[test]
fn formats_values() {
    assert_eq!(fmt_value(3.0), "3");
    assert_eq!(fmt_value(0.25), "0.25");
    assert_eq!(fmt_value(f64::NAN), "NaN");
    assert_eq!(fmt_value(f64::INFINITY), "+Inf");
    assert_eq!(fmt_value(1e20), "100000000000000000000");
}

#[test]
fn parses_proc_stat_with_spaces_in_the_name() {
    let stat = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15";
    assert_eq!(parse_stat_times(stat), Some((111, 222)));
    assert_eq!(parse_stat_times("garbage"), None);
    assert_eq!(parse_stat_times("1 (x) S 1"), None);
}

#[test]
fn reads_this_process() {
    let p = ProcessStats::read();
    assert!(p.resident_bytes > 0);
    assert!(p.open_fds >= 3, "{p:?}");
    // Burn some CPU and see the counter move.
    let before = p.cpu_seconds;
    let t = std::time::Instant::now();
    let mut x = 0u64;
    while t.elapsed() < std::time::Duration::from_millis(150) {
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    std::hint::black_box(x);
    assert!(ProcessStats::read().cpu_seconds > before);
}
