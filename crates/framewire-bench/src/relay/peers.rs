//! The same workloads through the peers measured in the same run: a
//! GStreamer relay, and iperf3 for the loopback TCP ceiling.

use super::*;

pub(super) fn gst_run(plan: &Plan, cx: &Ctx, wl: &Workload, n: usize) -> anyhow::Result<Run> {
    let tag = format!("gst-{}-{n}", wl.kind.label());
    let input = procs::free_port()?;
    let outs: Vec<u16> = (0..n).map(|_| procs::free_port()).collect::<anyhow::Result<_>>()?;
    let relay = gst::launch(
        "GStreamer relay",
        &gst::relay_pipeline(input, &outs),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-relay")),
    )?;
    procs::wait_listening(input, Duration::from_secs(10), &relay)?;
    for &p in &outs {
        procs::wait_listening(p, Duration::from_secs(10), &relay)?;
    }
    let mut cons = Vec::new();
    for (i, &p) in outs.iter().enumerate() {
        cons.push(gst::launch(
            "GStreamer consumer",
            &gst::consumer_pipeline(p),
            true,
            Capture::TimedLines,
            &cx.log(&format!("{tag}-cons{i}")),
        )?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = now_ns();
    let src = gst::launch(
        "GStreamer source",
        &gst::source_pipeline(wl, input),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-source")),
    )?;
    let start = t + secs_ns(plan.warmup);
    let end = t + secs_ns(plan.duration);
    let s = sample(
        relay.pid,
        Some(src.pid),
        start,
        end,
        Some(plan.a.gst_rss_limit_mib << 20),
    )?;
    let end = if s.aborted.is_some() { now_ns() } else { end };
    let fps: Vec<f64> = cons
        .into_iter()
        .map(|c| gst::rate(&c.timed_lines(), start, end).unwrap_or(f64::NAN))
        .collect();
    let total: f64 = fps.iter().filter(|x| x.is_finite()).sum();
    Ok(Run {
        gbps: total * wl.mean_bytes * 8.0 / 1e9,
        fps,
        cpu_pct: s.cpu_pct,
        src_cpu_pct: s.src_cpu_pct,
        source_fps: 0.0,
        unpaced_fps: None,
        rss: s.rss,
        hwm: s.hwm,
        lost_pct: None,
        note: s.aborted.unwrap_or_default(),
    })
}

pub(super) fn gst_stall_run(plan: &Plan, cx: &Ctx, wl: &Workload) -> anyhow::Result<Stall> {
    let tag = "gst-stall";
    let n = plan.a.stall_subscribers.max(1);
    let input = procs::free_port()?;
    let outs: Vec<u16> = (0..=n).map(|_| procs::free_port()).collect::<anyhow::Result<_>>()?;
    let relay = gst::launch(
        "GStreamer relay",
        &gst::relay_pipeline(input, &outs),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-relay")),
    )?;
    procs::wait_listening(input, Duration::from_secs(10), &relay)?;
    for &p in &outs {
        procs::wait_listening(p, Duration::from_secs(10), &relay)?;
    }
    let mut cons = Vec::new();
    for (i, &p) in outs.iter().enumerate() {
        cons.push(gst::launch(
            "GStreamer consumer",
            &gst::consumer_pipeline(p),
            true,
            Capture::TimedLines,
            &cx.log(&format!("{tag}-cons{i}")),
        )?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let _src = gst::launch(
        "GStreamer source",
        &gst::source_pipeline(wl, input),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-source")),
    )?;
    let (_, start, stall_at, end) = stall_times(plan);
    eprintln!(
        "bench: GStreamer stall run: {n} consumers + 1 consumer stopped with SIGSTOP at +{:.0} s for {:.0} s",
        (stall_at - start) as f64 / 1e9 + plan.warmup,
        plan.stall
    );
    sleep_until(stall_at.saturating_sub(200_000_000))?;
    let (base_rss, base) = procs::rss(relay.pid).context("GStreamer relay gone")?;
    let stalled = cons.pop().context("no consumer")?;
    let stopped = Command::new("kill")
        .args(["-STOP", &stalled.pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !stopped {
        bail!("could not SIGSTOP the GStreamer consumer {}", stalled.pid);
    }
    let (series, note) = rss_series(relay.pid, stall_at, end, Some(plan.a.gst_rss_limit_mib << 20))?;
    let end = now_ns().min(end);
    procs::kill(stalled.pid);
    let during_from = (stall_at + 1_000_000_000).min(end);
    let (mut before, mut during) = (Vec::new(), Vec::new());
    for c in cons {
        let lines = c.timed_lines();
        before.push(gst::rate(&lines, start, stall_at).unwrap_or(f64::NAN));
        during.push(gst::rate(&lines, during_from, end).unwrap_or(f64::NAN));
    }
    Ok(Stall {
        system: "gstreamer",
        base,
        base_rss,
        budget: None,
        series,
        fps_before: median(&before),
        fps_during: median(&during),
        note,
    })
}

/// iperf3, one TCP stream over 127.0.0.1 for `secs`: receiver Gbit/s.
pub(super) fn iperf3(cx: &Ctx, secs: f64) -> anyhow::Result<f64> {
    let port = procs::free_port()?;
    let mut s = Command::new("iperf3");
    s.args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()]);
    let server = procs::spawn(
        "iperf3 server",
        &mut s,
        Capture::Nothing,
        Some(&cx.log("iperf3-server")),
    )?;
    procs::wait_listening(port, Duration::from_secs(5), &server)?;
    let mut c = Command::new("iperf3");
    c.args(["-c", "127.0.0.1", "-p", &port.to_string(), "-J", "-t"])
        .arg(format!("{}", secs.ceil().max(1.0)));
    let client = procs::spawn("iperf3 client", &mut c, Capture::Text, Some(&cx.log("iperf3-client")))?;
    let out = client.output(Duration::from_secs_f64(secs + 15.0));
    procs::kill(server.pid);
    let j: serde_json::Value = serde_json::from_str(&out).context("iperf3 printed no JSON")?;
    let bps = j["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    Ok(bps / 1e9)
}
