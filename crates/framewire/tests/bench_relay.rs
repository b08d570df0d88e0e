//! `framewire bench relay --quick --tls` end to end: real source, relay and
//! subscriber processes of the built binary on 127.0.0.1, GStreamer and
//! iperf3 left out, small frames, bounded in time.

// test-runner: alone (a benchmark: it measures throughput and CPU; scripts/run-tests.py)

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn bench_relay_quick_prints_a_result_row_with_a_rate() {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "--log",
            "warn",
            "bench",
            "relay",
            "--quick",
            "--no-gst",
            "--no-iperf",
            "--no-search",
            "--tls",
        ])
        .args([
            "--subscribers",
            "1",
            "--formats",
            "mjpeg",
            "--size",
            "320x240",
            "--jpeg-frames",
            "5",
        ])
        .args([
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--latency-duration",
            "1",
            "--stall-duration",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start framewire bench relay");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bench relay --quick did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    assert!(status.success(), "exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    // format subs system src-fps fps-min fps-med ...
    let row = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 6 && f[0] == "mjpeg" && f[1] == "1" && f[2] == "framewire")
        .unwrap_or_else(|| panic!("no framewire result row\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let fps: f64 = row[5].parse().unwrap_or(0.0);
    assert!(fps > 0.0, "zero rate in {row:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("Latency: mjpeg"), "no latency section\n{stdout}");
    assert!(
        stdout.contains("Stalled subscriber (framewire)"),
        "no stall section\n{stdout}"
    );
    // --tls: the same case over TLS, and the bare link's ceiling.
    let tls_row = stdout
        .lines()
        .skip_while(|l| !l.starts_with("TLS 1.3"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[0] == "mjpeg" && f[1] == "1")
        .unwrap_or_else(|| panic!("no TLS row\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let tls_fps: f64 = tls_row[3].parse().unwrap_or(0.0);
    assert!(tls_fps > 0.0, "zero TLS rate in {tls_row:?}\n{stdout}");
    assert!(
        stdout.contains("One stream on loopback, no relay: TCP"),
        "{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("gstreamer"),
        "GStreamer ran despite --no-gst\n{stdout}"
    );
}
