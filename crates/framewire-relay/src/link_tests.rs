use super::*;
use crate::config::SuppressionConfig;

/// A source feeding a one-slot (low-latency) output on the link.
struct Feed {
    member: MemberId,
    len: usize,
    period: Duration,
    next_at: Duration,
    slot: Option<u64>,
    tag: u64,
    produced: u64,
    replaced: u64,
    suppressed: u64,
}

/// Runs `feeds` over `link` for `length` of simulated time in 1 ms steps;
/// returns the bytes each member sent.
fn run(link: &mut Link, feeds: &mut [Feed], length: Duration) -> Vec<u64> {
    let t0 = Instant::now();
    let mut t = Duration::ZERO;
    while t < length {
        let now = t0 + t;
        for f in feeds.iter_mut() {
            while f.next_at <= t {
                f.next_at += f.period;
                f.produced += 1;
                f.tag += 1;
                if f.slot.replace(f.tag).is_some() {
                    f.replaced += 1;
                }
            }
            if let Some(tag) = f.slot
                && link.offer(f.member, f.len, tag, now) == Offer::Suppressed
            {
                f.slot = None;
                f.suppressed += 1;
            }
        }
        while let LinkPoll::Grant { member, charged } = link.poll(now) {
            let f = feeds.iter_mut().find(|f| f.member == member).expect("a member's feed");
            let actual = if f.slot.take().is_some() { f.len } else { 0 };
            link.sent(member, charged, actual);
        }
        t += Duration::from_millis(1);
    }
    let snap = link.snapshot();
    feeds
        .iter()
        .map(|f| snap.iter().find(|s| s.member == f.member).map_or(0, |s| s.bytes))
        .collect()
}

fn feed(link: &mut Link, priority: u8, weight: u32, len: usize, fps: u64) -> Feed {
    Feed {
        member: link.add(priority, weight),
        len,
        period: Duration::from_nanos(1_000_000_000 / fps),
        next_at: Duration::ZERO,
        slot: None,
        tag: 0,
        produced: 0,
        replaced: 0,
        suppressed: 0,
    }
}

fn capped(scheduler: SchedulerKind, rate: u64) -> Link {
    Link::new(LinkConfig {
        scheduler,
        max_rate: Some(rate),
        burst: 0,
    })
    .expect("a valid link")
}

#[test]
fn strict_priority_keeps_the_high_stream_whole() {
    // 100 kB/s each, 150 kB/s of link: the low stream gets what is left.
    let mut link = capped(SchedulerKind::StrictPriority, 150_000);
    let mut feeds = [feed(&mut link, 200, 1, 10_000, 10), feed(&mut link, 50, 1, 10_000, 10)];
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(20));
    let (high, low) = (&feeds[0], &feeds[1]);
    assert!(
        high.replaced <= 1,
        "the high stream lost {} of {} frames",
        high.replaced,
        high.produced
    );
    assert!(bytes[0] >= (high.produced - 1) * 10_000, "{bytes:?}");
    assert!(
        low.replaced > low.produced / 3,
        "the low stream lost only {} of {}",
        low.replaced,
        low.produced
    );
    let total = (bytes[0] + bytes[1]) as f64 / 20.0;
    assert!((total - 150_000.0).abs() < 15_000.0, "{total} B/s over a 150 kB/s link");
}

#[test]
fn round_robin_without_priority_shares_frames() {
    let mut link = capped(SchedulerKind::RoundRobin, 100_000);
    let mut feeds = [feed(&mut link, 200, 1, 10_000, 10), feed(&mut link, 50, 1, 10_000, 10)];
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(20));
    let ratio = bytes[0] as f64 / bytes[1] as f64;
    assert!((0.9..1.1).contains(&ratio), "round-robin gave {bytes:?}");
}

#[test]
fn deficit_round_robin_shares_bytes_by_weight() {
    // Frames of different sizes: DRR counts bytes, not frames.
    let mut link = capped(SchedulerKind::DeficitRoundRobin { quantum: 1500 }, 2_000_000);
    let mut feeds = [feed(&mut link, 128, 1, 40_000, 60), feed(&mut link, 128, 3, 90_000, 60)];
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(20));
    let ratio = bytes[1] as f64 / bytes[0] as f64;
    assert!(
        (ratio - 3.0).abs() < 0.3,
        "weights 1:3 gave bytes {bytes:?} (ratio {ratio:.2})"
    );
}

#[test]
fn weighted_round_robin_shares_frames_by_weight() {
    let mut link = capped(SchedulerKind::WeightedRoundRobin, 100_000);
    let mut feeds = [feed(&mut link, 128, 1, 5_000, 60), feed(&mut link, 128, 2, 5_000, 60)];
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(20));
    let ratio = bytes[1] as f64 / bytes[0] as f64;
    assert!((ratio - 2.0).abs() < 0.2, "weights 1:2 gave {bytes:?}");
}

#[test]
fn the_rate_holds_within_burst_and_one_frame() {
    let mut link = capped(SchedulerKind::RoundRobin, 50_000);
    let burst = link.config().effective_burst();
    let mut feeds = [feed(&mut link, 128, 1, 30_000, 30)];
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(10));
    assert!(bytes[0] <= burst + 50_000 * 10 + 30_000, "{} bytes in 10 s", bytes[0]);
    assert!(bytes[0] >= 50_000 * 9, "{} bytes in 10 s", bytes[0]);
}

#[test]
fn a_link_in_debt_says_when_to_ask_again() {
    let mut link = capped(SchedulerKind::RoundRobin, 10_000);
    let m = link.add(128, 1);
    let t0 = Instant::now();
    link.offer(m, 20_000, 1, t0);
    assert_eq!(
        link.poll(t0),
        LinkPoll::Grant {
            member: m,
            charged: 20_000
        }
    );
    link.sent(m, 20_000, 20_000);
    link.offer(m, 1_000, 2, t0);
    // 20 000 bytes taken from a 16 KiB bucket: 3 616 bytes of debt at 10 kB/s.
    match link.poll(t0) {
        LinkPoll::Wait(at) => {
            let wait = at - t0;
            assert!(
                wait > Duration::from_millis(300) && wait < Duration::from_millis(420),
                "{wait:?}"
            );
            assert!(matches!(link.poll(at), LinkPoll::Grant { .. }));
        }
        other => panic!("expected a wait, got {other:?}"),
    }
    assert_eq!(link.poll(t0 + Duration::from_secs(1)), LinkPoll::Idle);
}

#[test]
fn without_a_rate_every_offer_is_granted_in_scheduler_order() {
    let mut link = Link::new(LinkConfig {
        scheduler: SchedulerKind::StrictPriority,
        ..LinkConfig::default()
    })
    .expect("a valid link");
    let low = link.add(10, 1);
    let high = link.add(250, 1);
    let t0 = Instant::now();
    link.offer(low, 100, 1, t0);
    link.offer(high, 100, 1, t0);
    assert_eq!(
        link.poll(t0),
        LinkPoll::Grant {
            member: high,
            charged: 100
        }
    );
    assert_eq!(
        link.poll(t0),
        LinkPoll::Grant {
            member: low,
            charged: 100
        }
    );
    assert_eq!(link.poll(t0), LinkPoll::Idle);
    link.remove(high);
    link.remove(high);
    assert_eq!(link.len(), 1);
}

#[test]
fn suppression_refuses_a_member_that_keeps_losing() {
    let config = SuppressionConfig {
        window: Duration::from_secs(1),
        suppress_above: 0.4,
        resume_below: 0.1,
        min_frames: 10,
    };
    let mut link = capped(SchedulerKind::SourceSuppression(config), 150_000);
    // 300 kB/s and 10 kB/s over 150 kB/s: the heavy feed loses half its
    // frames, the light one (a frame every 100 ms, while a heavy frame
    // takes 67 ms of the link) none.
    let mut feeds = [feed(&mut link, 128, 1, 1_000, 10), feed(&mut link, 128, 1, 10_000, 30)];
    run(&mut link, &mut feeds, Duration::from_secs(10));
    assert!(feeds[1].suppressed > 0, "the heavy feed was never suppressed");
    assert_eq!(feeds[0].suppressed, 0, "the light feed was suppressed");
}

#[test]
fn bad_configs_are_refused() {
    let zero = LinkConfig {
        max_rate: Some(0),
        ..LinkConfig::default()
    };
    assert!(Link::new(zero).is_err());
    let drr = LinkConfig {
        scheduler: SchedulerKind::DeficitRoundRobin { quantum: 0 },
        ..LinkConfig::default()
    };
    assert!(Link::new(drr).is_err());
}

#[test]
fn deficit_round_robin_keeps_credit_across_a_members_frames() {
    // Frames a few quanta long: a member whose credit were taken back at
    // every frame would get one frame per ceil(len / grant) visits instead.
    let mut link = capped(SchedulerKind::DeficitRoundRobin { quantum: 1500 }, 200_000);
    let mut feeds = [feed(&mut link, 128, 1, 4_000, 60), feed(&mut link, 128, 3, 9_000, 60)];
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(20));
    let ratio = bytes[1] as f64 / bytes[0] as f64;
    assert!(
        (ratio - 3.0).abs() < 0.3,
        "weights 1:3 gave bytes {bytes:?} (ratio {ratio:.2})"
    );
}

#[test]
fn a_member_with_a_rate_of_its_own_is_held_to_it_and_the_rest_goes_to_the_others() {
    // An uncapped link: one member asked for 100 kB/s of its 300 kB/s.
    let mut link = Link::new(LinkConfig::default()).expect("a valid link");
    let mut feeds = [feed(&mut link, 128, 1, 10_000, 30), feed(&mut link, 128, 1, 10_000, 30)];
    link.set_rate(feeds[0].member, Some(100_000));
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(10));
    let burst = 16 * 1024;
    assert!(
        bytes[0] <= 100_000 * 10 + burst + 10_000,
        "the capped member sent {}",
        bytes[0]
    );
    assert!(bytes[0] >= 100_000 * 9, "the capped member sent only {}", bytes[0]);
    assert!(
        bytes[1] >= 29 * 10 * 10_000,
        "the other member was held back: {}",
        bytes[1]
    );
    assert!(
        feeds[0].replaced > 100,
        "the capped member's losses: {}",
        feeds[0].replaced
    );
    let snap = link.snapshot();
    assert_eq!(snap[0].max_rate, Some(100_000));
    assert_eq!(snap[1].max_rate, None);
    // Under a link rate too, the capped member takes no more than its own.
    let mut link = capped(SchedulerKind::RoundRobin, 200_000);
    let mut feeds = [feed(&mut link, 128, 1, 10_000, 30), feed(&mut link, 128, 1, 10_000, 30)];
    link.set_rate(feeds[0].member, Some(50_000));
    let bytes = run(&mut link, &mut feeds, Duration::from_secs(10));
    assert!(bytes[0] <= 50_000 * 10 + burst + 10_000, "{bytes:?}");
    assert!(
        bytes[1] >= 140_000 * 10,
        "the other member should get the rest: {bytes:?}"
    );
}
