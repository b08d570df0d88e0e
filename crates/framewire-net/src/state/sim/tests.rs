//! What holds between nodes, shown on the simulated clock: every frame a
//! camera captured reaches the watcher or is counted as a drop by an
//! output on its path, through slow, squeezed, stalling links and a
//! stopped relay; a stopped upstream is judged stalled at its window and
//! not before; a seed repeats a run exactly.

use std::time::Duration;

use framewire_proto::{DeliveryMode, Format, SubscribeParams};

use super::{Camera, Link, Sim, SimEvent, splitmix};

const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mjpeg() -> Camera {
    Camera {
        fps: 25,
        gop: 1,
        bytes: 30_000,
        format: Format::Mjpeg,
    }
}

/// Seeds each run goes through: 6, or `SIM_SEEDS` (a longer search:
/// `SIM_SEEDS=500 cargo test --release -p framewire-net --lib sim`).
fn seeds() -> std::ops::RangeInclusive<u64> {
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    1..=n
}

/// An H.264 camera: 25 fps, a keyframe every `gop` frames.
fn h264(gop: u64) -> Camera {
    Camera {
        fps: 25,
        gop,
        bytes: 20_000,
        format: Format::H264,
    }
}

fn completeness() -> SubscribeParams {
    SubscribeParams {
        mode: DeliveryMode::Completeness,
        ..SubscribeParams::default()
    }
}

/// camera → relay → viewer, the camera's link slow and jittery, the
/// viewer's fast; the watcher on the viewer node.
fn chain(seed: u64, camera: Camera, first: SubscribeParams, second: SubscribeParams) -> Sim {
    let mut sim = Sim::new(seed);
    let [cam, relay, view] = ["t:cam", "t:relay", "t:view"].map(|n| sim.node(n));
    sim.camera(cam, "bars", camera);
    sim.pull(cam, relay, "bars", Link::new(20.0, ms(10), ms(10)), first);
    sim.pull(relay, view, "bars", Link::new(20.0, ms(1), Duration::ZERO), second);
    sim.watch(view, "bars");
    sim
}

/// A minute of faults: the relay's link squeezed to 1 Mbit/s, the
/// camera's link down, the relay stopped; each shorter than a stall
/// window, so no edge is dropped. What was done, for messages.
fn faults(sim: &mut Sim, seed: u64) -> Vec<String> {
    faults_up_to(sim, seed, ms(1500)).into_iter().map(|f| f.0).collect()
}

/// The same, each fault 0.5 s to `longest`: (what, when it ended).
fn faults_up_to(sim: &mut Sim, seed: u64, longest: Duration) -> Vec<(String, Duration)> {
    let mut rng = !seed;
    let mut next = |n: u64| splitmix(&mut rng) % n;
    let mut done = Vec::new();
    sim.run_for(SECOND);
    while sim.elapsed() < Duration::from_secs(60) {
        let spread = longest.saturating_sub(ms(500)).as_millis() as u64;
        let (what, long) = (next(3), ms(500 + next(spread)));
        let at = sim.elapsed();
        match what {
            0 => {
                sim.hops[1].link.rate = 125_000;
                sim.run_for(long);
                sim.hops[1].link.rate = 2_500_000;
            }
            1 => {
                sim.hops[0].link.up = false;
                sim.run_for(long);
                sim.hops[0].link.up = true;
            }
            _ => {
                sim.nodes[1].stopped = true;
                sim.run_for(long);
                sim.nodes[1].stopped = false;
            }
        }
        let what = ["squeeze", "link down", "relay stopped"][what as usize];
        done.push((format!("{at:?}: {what} for {long:?}"), sim.elapsed()));
        sim.run_for(ms(1000 + next(3000)));
    }
    done
}

/// Stops the camera and lets the queues drain; then checks that every
/// frame is accounted for. Returns (captured, seen, counted).
fn account(sim: &mut Sim, what: &str) -> (u64, u64, u64) {
    sim.stop_cameras();
    sim.run_for(Duration::from_secs(5));
    let captured = sim.captured();
    let seen = &sim.watchers[0].seen;
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "{what}: frames arrived twice or out of order"
    );
    let mut counted = sim.drops(sim.watchers[0].node, sim.watchers[0].output);
    for h in &sim.hops {
        counted += sim.drops(h.up, h.output.expect("an edge that never stalled"));
    }
    let seen = seen.len() as u64;
    assert_eq!(
        captured,
        seen + counted,
        "{what}: {captured} captured, {seen} seen, {counted} counted as drops: {} lost uncounted",
        captured as i64 - (seen + counted) as i64
    );
    (captured, seen, counted)
}

#[test]
fn through_squeezed_links_and_a_stopped_relay_every_missed_frame_is_counted() {
    let mut dropped = [0; 3];
    for seed in seeds() {
        for (i, (first, second)) in [
            (SubscribeParams::default(), SubscribeParams::default()),
            (completeness(), completeness()),
            (SubscribeParams::default(), completeness()),
        ]
        .into_iter()
        .enumerate()
        {
            let mut sim = chain(seed, mjpeg(), first, second);
            let done = faults(&mut sim, seed);
            let what = format!("seed {seed}, {:?} then {:?}: {done:?}", first.mode, second.mode);
            assert!(
                !sim.events.iter().any(|e| matches!(e, SimEvent::Stalled { .. })),
                "{what}: a fault shorter than the window was judged a stall: {:?}",
                sim.events
            );
            let (captured, seen, counted) = account(&mut sim, &what);
            assert!(
                seen > captured / 2,
                "{what}: {seen} of {captured} seen, {counted} dropped"
            );
            dropped[i] += counted;
        }
    }
    // The faults cost frames where the outputs may give them up (and a
    // completeness chain's budgets hold a fault's worth): the accounting
    // was put to the test.
    assert!(dropped[0] > 600 && dropped[2] > 300, "drops: {dropped:?}");
}

#[test]
fn an_inter_coded_stream_skips_to_its_next_keyframe_and_counts_what_it_skipped() {
    let h264 = h264(25);
    // Small completeness budgets: a full queue gives up its oldest frame
    // and every queued frame that depended on it.
    let tight = SubscribeParams {
        max_frames: 8,
        ..completeness()
    };
    let mut dropped = 0;
    for seed in seeds() {
        let mut sim = match seed % 2 {
            0 => chain(seed, h264, SubscribeParams::default(), completeness()),
            _ => chain(seed, h264, tight, tight),
        };
        let done = faults(&mut sim, seed);
        let what = format!("seed {seed}: {done:?}");
        dropped += account(&mut sim, &what).2;
        // After a loss, the watcher resumes at a keyframe, never at a
        // frame whose reference was dropped.
        let seen = &sim.watchers[0].seen;
        for w in seen.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                assert_eq!(w[1].0 % 25, 0, "{what}: resumed at {} after {}", w[1].0, w[0].0);
            }
        }
    }
    assert!(dropped > 300, "{dropped} dropped");
}

#[test]
fn a_stopped_relay_is_judged_stalled_at_its_window_and_not_before() {
    let mut sim = chain(7, mjpeg(), SubscribeParams::default(), SubscribeParams::default());
    sim.run_for(Duration::from_secs(10));
    // Stopped for 1.5 s: pinged at half the window (1 s), answered once
    // it runs again; not a stall.
    sim.nodes[1].stopped = true;
    sim.run_for(ms(1500));
    sim.nodes[1].stopped = false;
    sim.run_for(Duration::from_secs(8));
    assert!(
        sim.events.iter().any(|e| matches!(e, SimEvent::Ping { hop: 1, .. })),
        "{:?}",
        sim.events
    );
    assert!(
        !sim.events.iter().any(|e| matches!(e, SimEvent::Stalled { .. })),
        "{:?}",
        sim.events
    );
    // Stopped for 5 s: the viewer's edge judges it stalled 2 s (the
    // window of a 25 fps stream) after the last frame, give or take one
    // look (a quarter window).
    let stopped_at = sim.elapsed();
    sim.nodes[1].stopped = true;
    sim.run_for(Duration::from_secs(5));
    sim.nodes[1].stopped = false;
    let stalls: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            SimEvent::Stalled { hop, at, silent } => Some((*hop, *at, *silent)),
            _ => None,
        })
        .collect();
    assert_eq!(stalls.len(), 1, "one stall, the viewer's edge: {:?}", sim.events);
    let (hop, at, silent) = stalls[0];
    assert_eq!(hop, 1);
    assert!(silent >= 2 * SECOND, "judged after {silent:?} of silence");
    let after = at - stopped_at;
    assert!(
        after >= 2 * SECOND && after <= 2 * SECOND + ms(500) + ms(40),
        "stalled {after:?} after the stop"
    );
    // Running again, the edge subscribes after its backoff and frames flow.
    sim.run_for(Duration::from_secs(2));
    let continued = stopped_at + Duration::from_secs(5);
    let back = sim.watchers[0]
        .seen
        .iter()
        .find(|(_, t)| *t > continued)
        .map(|(_, t)| *t - continued);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, SimEvent::Resubscribed { hop: 1, .. })),
        "{:?}",
        sim.events
    );
    assert!(
        back.is_some_and(|b| b < ms(500)),
        "frames back {back:?} after the relay continued"
    );
    // The camera's edge into the relay finds its frames waiting: no stall.
    assert!(!sim.events.iter().any(|e| matches!(e, SimEvent::Stalled { hop: 0, .. })));
}

#[test]
fn a_seed_repeats_a_run_exactly() {
    let run = |seed| {
        let mut sim = chain(seed, mjpeg(), SubscribeParams::default(), completeness());
        faults(&mut sim, seed);
        let counted = account(&mut sim, "repeat");
        (sim.watchers[0].seen.clone(), counted, sim.events.clone())
    };
    let a = run(11);
    assert!(a == run(11), "the same seed, another run");
    assert!(a.0 != run(12).0, "another seed, the same run");
}

#[test]
fn after_a_stall_a_subscriber_is_not_shown_what_it_was_shown_before() {
    // The viewer's edge stalls while the relay is stopped and subscribes
    // again; the relay starts the new subscription with its cached group
    // of pictures, which began before the stop. Its frames the viewer node
    // passed on already are not passed on again.
    let h264 = h264(50);
    for (stop_at, seed) in [(10_500, 1), (10_100, 2), (10_900, 3)] {
        let mut sim = chain(seed, h264, SubscribeParams::default(), completeness());
        sim.run_for(ms(stop_at));
        sim.nodes[1].stopped = true;
        sim.run_for(Duration::from_secs(3));
        sim.nodes[1].stopped = false;
        sim.run_for(Duration::from_secs(4));
        assert!(
            sim.events
                .iter()
                .any(|e| matches!(e, SimEvent::Resubscribed { hop: 1, .. })),
            "{:?}",
            sim.events
        );
        let seen = &sim.watchers[0].seen;
        let back: Vec<_> = seen.windows(2).filter(|w| w[1].0 <= w[0].0).collect();
        assert!(back.is_empty(), "stopped at {stop_at} ms: shown again: {back:?}");
        let replayed = sim.nodes[2].state.stream("bars").map_or(0, |s| s.replayed);
        assert!(replayed > 0, "stopped at {stop_at} ms: nothing was sent again");
        // Frames flow on after the stall.
        assert!(seen.last().is_some_and(|(_, t)| *t > ms(stop_at + 6_500)), "{seen:?}");
    }
}

#[test]
fn after_faults_longer_than_the_window_frames_come_back_in_order() {
    let h264 = h264(25);
    let mut stalls = 0;
    for seed in seeds() {
        for camera in [mjpeg(), h264] {
            let mut sim = chain(seed, camera, SubscribeParams::default(), completeness());
            let done = faults_up_to(&mut sim, seed, Duration::from_secs(4));
            sim.run_for(Duration::from_secs(2));
            let what = format!("seed {seed}, {:?}", camera.format);
            let seen = &sim.watchers[0].seen;
            let back: Vec<_> = seen.windows(2).filter(|w| w[1].0 <= w[0].0).collect();
            assert!(
                back.is_empty(),
                "{what}: shown again: {back:?}; {done:?}; {:?}",
                sim.events
            );
            // After each fault, a frame captured after it ended reaches the
            // watcher within 2 s (a stall's backoff, the queues draining,
            // the next keyframe).
            for (fault, ended) in &done {
                let first = seen
                    .iter()
                    .find(|(seq, _)| Duration::from_millis(seq * 40) >= *ended)
                    .map(|(_, at)| *at - *ended);
                assert!(
                    first.is_some_and(|d| d < 2 * SECOND),
                    "{what}: after {fault}, frames back {first:?}; {:?}",
                    sim.events
                );
            }
            stalls += sim
                .events
                .iter()
                .filter(|e| matches!(e, SimEvent::Stalled { .. }))
                .count();
        }
    }
    // Faults past the window were judged stalls: the edges were remade.
    assert!(stalls > 10, "{stalls} stalls");
}
