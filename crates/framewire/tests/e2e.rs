//! End to end: real `framewire node` processes on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use framewire_proto::control::OutputStats;
use framewire_proto::{DeliveryMode, EventReason, Message, StreamEvent, SubscribeParams};

fn completeness(max_frames: u32) -> SubscribeParams {
    SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames,
        ..SubscribeParams::default()
    }
}

fn low_latency() -> SubscribeParams {
    SubscribeParams::default()
}

async fn output_stats(addr: std::net::SocketAddr, peer_name: &str) -> OutputStats {
    stats(addr)
        .await
        .outputs
        .into_iter()
        .find(|o| o.peer.ends_with(peer_name))
        .unwrap_or_else(|| panic!("no output for {peer_name}"))
}

/// Frames arrive in order with increasing sequence numbers through a relay;
/// what a slow low-latency subscriber did not see is exactly what the relay
/// counted as dropped for it, and every frame offered to an output is
/// either sent or counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_arrive_in_order_and_drops_match_what_receivers_saw() {
    // 1.2 MB frames at 100 fps: far more than loopback socket buffers hold.
    let mut source = spawn_node(&[
        "--name",
        "test:source",
        "--source",
        "test-pattern:bars,size=640x480,fps=100,format=raw",
    ]);
    let up = format!("{}/bars,mode=completeness,max-frames=64", source.addr);
    let relay = spawn_node(&["--name", "test:relay", "--upstream", &up]);

    let mut fast = client(relay.addr, "test:fast").await;
    let mut slow = client(relay.addr, "test:slow").await;
    let ch_fast = subscribe(&mut fast, "bars", completeness(64)).await;
    let ch_slow = subscribe(&mut slow, "bars", low_latency()).await;

    let fast_task = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Some(m) = next(&mut fast, Duration::from_secs(2)).await {
            if let Message::VideoFrame(f) = m {
                assert_eq!(f.channel, ch_fast);
                seqs.push(f.sequence);
            }
        }
        (seqs, fast)
    });
    // The slow subscriber takes 30 ms per frame: it must lose frames. After
    // 3 s the source dies; both subscribers drain what is left.
    let mut slow_seqs = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    while let Some(m) = next(&mut slow, Duration::from_secs(2)).await {
        if !killed && started.elapsed() > Duration::from_secs(3) {
            source.kill();
            killed = true;
        }
        if let Message::VideoFrame(f) = m {
            assert_eq!(f.channel, ch_slow);
            slow_seqs.push(f.sequence);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let (fast_seqs, _fast_still_subscribed) = fast_task.await.unwrap();

    assert!(fast_seqs.len() > 100, "fast subscriber saw {} frames", fast_seqs.len());
    assert!(
        fast_seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "completeness: in order, no gap"
    );
    assert!(slow_seqs.windows(2).all(|w| w[1] > w[0]), "low-latency: increasing");
    let gaps: u64 = slow_seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    assert!(gaps > 0, "the slow subscriber should have lost frames");
    let last = *fast_seqs.last().unwrap();
    assert_eq!(*slow_seqs.last().unwrap(), last, "the newest frame always arrives");

    let st = output_stats(relay.addr, "test:slow").await;
    let dropped: u64 = st.drops.iter().map(|d| d.count).sum();
    assert_eq!(st.queue_frames, 0, "drained");
    assert_eq!(st.frames_sent, slow_seqs.len() as u64, "sent = received");
    assert_eq!(
        st.frames_in,
        st.frames_sent + dropped,
        "every frame offered is sent or counted"
    );
    // The output was offered every sequence from `first_offered` to `last`;
    // drops the receiver could not see are those before its first frame.
    let first_offered = last + 1 - st.frames_in;
    assert_eq!(
        dropped,
        gaps + (slow_seqs[0] - first_offered),
        "drops counted = frames missed"
    );
    let st_fast = output_stats(relay.addr, "test:fast").await;
    assert_eq!(st_fast.drops.iter().map(|d| d.count).sum::<u64>(), 0);
    assert_eq!(st_fast.frames_sent, fast_seqs.len() as u64);
}

/// A subscriber that stops reading for 10 s does not slow another one: the
/// reading subscriber keeps at least 99 % of the source's rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_slow_another() {
    // 100 fps of 640x480 raw BGRA (1.2 MB frames) fills a socket fast.
    let source = spawn_node(&[
        "--name",
        "test:source",
        "--source",
        "test-pattern:bars,size=640x480,fps=100,format=raw",
    ]);
    let mut stalled = client(source.addr, "test:stalled").await;
    let _ch = subscribe(&mut stalled, "bars", completeness(8)).await;
    // The stalled client never reads again.
    let mut reader = client(source.addr, "test:reader").await;
    let ch = subscribe(&mut reader, "bars", completeness(64)).await;
    // Skip the first second, then count for 10 s.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(1) {
        next(&mut reader, Duration::from_secs(2)).await.expect("frames");
    }
    let start = Instant::now();
    let mut first = None;
    let mut last = 0;
    let mut count = 0u64;
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(Message::VideoFrame(f)) = next(&mut reader, Duration::from_secs(2)).await {
            assert_eq!(f.channel, ch);
            first.get_or_insert(f.sequence);
            last = f.sequence;
            count += 1;
        }
    }
    let produced = last - first.unwrap() + 1;
    assert!(
        count as f64 >= 0.99 * produced as f64,
        "reader got {count} of {produced} frames the source made meanwhile"
    );
    let rate = count as f64 / start.elapsed().as_secs_f64();
    assert!(
        rate >= 0.99 * 100.0 * 0.95,
        "reader rate {rate:.1} fps for a 100 fps source"
    );
    // The stalled output is bounded and counting drops.
    let st = output_stats(source.addr, "test:stalled").await;
    assert!(st.queue_frames <= 8);
    assert!(st.drops.iter().map(|d| d.count).sum::<u64>() > 500, "{st:?}");
}

/// SIGKILL of the relay mid-stream, then a restart on the same port: the
/// downstream node reconnects and frames flow again within 1 s of the
/// restart; its subscriber saw *interrupted* then *resumed*.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_and_restarted_downstream_resumes_within_a_second() {
    let source = spawn_node(&[
        "--name",
        "test:source",
        "--source",
        "test-pattern:bars,size=320x240,fps=50",
    ]);
    let relay_port = free_port();
    let relay_listen = format!("127.0.0.1:{relay_port}");
    let up = format!("{}/bars", source.addr);
    let relay_args = ["--name", "test:relay", "--listen", &relay_listen, "--upstream", &up];
    let mut relay = spawn_node(&relay_args);
    let down_up = format!("{relay_listen}/bars");
    let down = spawn_node(&["--name", "test:down", "--upstream", &down_up]);

    let mut sink = client(down.addr, "test:sink").await;
    subscribe(&mut sink, "bars", low_latency()).await;
    for _ in 0..10 {
        assert!(matches!(
            next(&mut sink, Duration::from_secs(5)).await,
            Some(Message::VideoFrame(_))
        ));
    }

    relay.kill(); // SIGKILL
    let mut events = Vec::new();
    // Interrupted arrives once the downstream sees the connection drop.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        match next(&mut sink, Duration::from_secs(5)).await {
            Some(Message::StreamEvent { event, .. }) => {
                let interrupted = matches!(event, StreamEvent::Interrupted(_));
                events.push(event);
                if interrupted {
                    break;
                }
            }
            Some(_) => {}
            None => panic!("the downstream node closed the subscription"),
        }
    }
    assert!(matches!(events.last(), Some(StreamEvent::Interrupted(i)) if i.reason == EventReason::UpstreamLost));

    // Restart after a pause; the sink stays attached meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = Instant::now();
    let _relay2 = spawn_node(&relay_args);
    let mut resumed = false;
    let mut first_frame = None;
    while restarted.elapsed() < Duration::from_secs(5) {
        match next(&mut sink, Duration::from_secs(5)).await {
            Some(Message::StreamEvent {
                event: StreamEvent::Resumed(_),
                ..
            }) => resumed = true,
            Some(Message::VideoFrame(f)) if resumed => {
                assert!(f.flags.is_discontinuity(), "the first frame after a gap is flagged");
                first_frame = Some(restarted.elapsed());
                break;
            }
            Some(_) => {}
            None => panic!("the downstream node closed the subscription"),
        }
    }
    let after = first_frame.expect("frames flow again after resumed");
    assert!(
        after < Duration::from_secs(1),
        "frames resumed {after:?} after the restart"
    );
    eprintln!("frames resumed {after:?} after the relay restarted");
}

/// SIGTERM and SIGINT shut down gracefully: subscribers get *closed*, the
/// connection ends cleanly, the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_on_sigterm_and_sigint() {
    for sig in ["TERM", "INT"] {
        let mut node = spawn_node(&[
            "--name",
            "test:source",
            "--source",
            "test-pattern:bars,size=160x120,fps=50",
        ]);
        let mut sub = client(node.addr, "test:sub").await;
        subscribe(&mut sub, "bars", low_latency()).await;
        assert!(next(&mut sub, Duration::from_secs(5)).await.is_some());
        node.signal(sig);
        let mut closed = false;
        while let Some(m) = next(&mut sub, Duration::from_secs(5)).await {
            if let Message::StreamEvent {
                event: StreamEvent::Closed(i),
                ..
            } = m
            {
                assert_eq!(i.reason, EventReason::Shutdown);
                closed = true;
            }
        }
        assert!(closed, "SIG{sig}: no closed event");
        assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0), "SIG{sig}: exit status");
    }
}
