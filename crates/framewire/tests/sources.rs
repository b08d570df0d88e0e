//! Sources at run time (SOURCE_ADD, SOURCE_SET, SOURCE_REMOVE through
//! `framewire source`): a subscriber, direct and through a relay, sees
//! interrupted, format-changed and resumed, then frames of the new format
//! on the same connection, or closed when the source goes; a bad change
//! changes nothing.

mod common;

use std::time::Duration;

use common::*;
use framewire_proto::{EventReason, Format, Message, StreamEvent, SubscribeParams};

fn framewire(args: &[&str]) -> std::process::Output {
    run_cli(args)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads until a frame of `width` bytes-per-frame rule holds, returning
/// the events seen on the way.
async fn until_frame(
    c: &mut framewire_net::Client,
    channel: u16,
    ok: impl Fn(&framewire_proto::VideoFrame) -> bool,
) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    loop {
        match next(c, Duration::from_secs(10))
            .await
            .expect("the connection stays and frames come")
        {
            Message::VideoFrame(f) if f.channel == channel && ok(&f) => return events,
            Message::StreamEvent { channel: ch, event } if ch == channel => {
                assert!(!matches!(event, StreamEvent::Closed(_)), "the stream closed: {event:?}");
                events.push(event);
            }
            _ => {}
        }
    }
}

fn is_jpeg(f: &framewire_proto::VideoFrame) -> bool {
    f.data.starts_with(&[0xff, 0xd8])
}

fn is_qoi(f: &framewire_proto::VideoFrame) -> bool {
    f.data.starts_with(b"qoif")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_added_changed_and_removed_at_run_time() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let node = spawn_node(&["--name", "test:cam", "--discovery", "off"]);
        let addr = node.addr.to_string();
        let out = framewire(&["source", "add", &addr, "test-pattern:bars,size=160x120,fps=30"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("now serves `bars`"));
        let relay = spawn_node(&[
            "--name",
            "test:relay",
            "--discovery",
            "off",
            "--no-shm",
            "--upstream",
            &format!("{addr}/bars"),
        ]);
        let mut direct = client(node.addr, "test:direct").await;
        let ch = subscribe(&mut direct, "bars", SubscribeParams::default()).await;
        until_frame(&mut direct, ch, is_jpeg).await;
        let mut far = client(relay.addr, "test:far").await;
        let far_ch = subscribe(&mut far, "bars", SubscribeParams::default()).await;
        until_frame(&mut far, far_ch, is_jpeg).await;

        // Bad input changes nothing: a taken name, an unknown kind, a
        // file source, a bad key on a change, no such source.
        for (args, needle) in [
            (vec!["source", "add", &addr, "test-pattern:bars"], "exists"),
            (vec!["source", "add", &addr, "webcam:x"], "unknown"),
            (vec!["source", "add", &addr, "file:x,path=/etc/passwd"], "cannot be added at run time"),
            (vec!["source", "set", &addr, "test-pattern:bars,format=vp9"], "unknown format"),
            // Parses, but does not start: the old settings come back.
            (vec!["source", "set", &addr, "test-pattern:bars,size=60000x60000"], "old settings"),
            (vec!["source", "set", &addr, "test-pattern:nope"], "no source named `nope`"),
            (vec!["source", "rm", &addr, "nope"], "no source named `nope`"),
        ] {
            let out = framewire(&args);
            assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        }
        // After the refused change the stream goes on as it was.
        until_frame(&mut direct, ch, is_jpeg).await;

        // A change: QOI at another size; both subscribers follow it on
        // the connection they have.
        let out = framewire(&["source", "set", &addr, "test-pattern:bars,size=320x240,fps=30,format=qoi"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for (c, ch, who) in [(&mut direct, ch, "direct"), (&mut far, far_ch, "through the relay")] {
            let events = until_frame(c, ch, is_qoi).await;
            let changed = events.iter().find_map(|e| match e {
                StreamEvent::FormatChanged(o) => Some(o.clone()),
                _ => None,
            });
            let open = changed.unwrap_or_else(|| panic!("{who}: no format-changed in {events:?}"));
            assert_eq!((open.format, open.width, open.height), (Format::Qoi, 320, 240), "{who}");
            if who == "direct" {
                assert!(
                    matches!(events.first(), Some(StreamEvent::Interrupted(i)) if i.reason == EventReason::Reconfigured),
                    "{who}: {events:?}"
                );
                assert!(events.iter().any(|e| matches!(e, StreamEvent::Resumed(_))), "{who}: {events:?}");
            }
        }
        let ls = framewire(&["ls", &addr, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
        assert_eq!((v[0]["format"].as_str(), v[0]["width"].as_u64()), (Some("qoi"), Some(320)));

        // The table it runs, read back (SOURCE_GET); set again as it is:
        // nothing happens to the stream.
        let got = framewire(&["source", "get", &addr, "bars"]);
        let table = String::from_utf8_lossy(&got.stdout);
        assert!(
            table.contains("kind = \"test-pattern\"") && table.contains("format = \"qoi\""),
            "{table}"
        );
        let out = framewire(&["source", "set", &addr, "test-pattern:bars,size=320x240,fps=30,format=qoi"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for _ in 0..10 {
            let events = until_frame(&mut direct, ch, is_qoi).await;
            assert!(events.is_empty(), "the same table again: {events:?}");
        }

        // Removed: subscribers are told, the stream is gone.
        let out = framewire(&["source", "rm", &addr, "bars"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut closed = None;
        while closed.is_none() {
            match next(&mut direct, Duration::from_secs(10)).await.expect("a closed event") {
                Message::StreamEvent {
                    channel,
                    event: StreamEvent::Closed(info),
                } if channel == ch => closed = Some(info),
                _ => {}
            }
        }
        assert_eq!(closed.unwrap().reason, EventReason::SourceRemoved);
        let ls = framewire(&["ls", &addr, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
        // The name is free again.
        let out = framewire(&["source", "add", &addr, "test-pattern:bars,size=64x48"]);
        assert!(out.status.success(), "{}", stderr(&out));
    })
    .await
    .expect("finished in time");
}
