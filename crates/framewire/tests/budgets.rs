//! Budgets changed while an edge runs (UPDATE_SUBSCRIPTION): a second
//! CONNECT with other budgets changes the upstream's output in place, with
//! no reconnection and no gap; the same CONNECT again changes nothing;
//! what cannot change in place is refused.

mod common;

use std::time::Duration;

use common::*;
use framewire_proto::control::{Name, OutputStats};
use framewire_proto::{DeliveryMode, Request, Response, Status, SubscribeParams};

fn framewire(args: &[&str]) -> std::process::Output {
    run_cli(args)
}

async fn output_for(addr: std::net::SocketAddr, peer: &str) -> Option<OutputStats> {
    let mut c = client(addr, "test:stats").await;
    let Ok(Response::GetStats(s)) = c.request(Request::GetStats(Name { name: String::new() })).await else {
        return None;
    };
    s.outputs.into_iter().find(|o| o.peer.ends_with(peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connect_changes_budgets_in_place() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let src = spawn_node(&[
            "--name",
            "test:src",
            "--discovery",
            "off",
            "--source",
            "test-pattern:bars,size=160x120,fps=30",
        ]);
        let relay = spawn_node(&["--name", "test:relay", "--discovery", "off", "--no-shm"]);
        let (s, r) = (src.addr.to_string(), relay.addr.to_string());
        let up = format!("{s}/bars");
        let connect = |frames: &str| {
            framewire(&[
                "connect",
                &r,
                &up,
                "--mode",
                "completeness",
                "--max-frames",
                frames,
                "--max-bytes",
                "4000000",
            ])
        };
        let out = connect("4");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let first = eventually_async(Duration::from_secs(10), async || {
            output_for(src.addr, "test:relay").await.filter(|o| o.frames_sent > 10)
        });
        let first = first.await.expect("the edge carries frames");
        assert_eq!((first.max_frames, first.max_bytes), (4, 4_000_000));

        // The same edge with other budgets: changed in place.
        let out = connect("32");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let now = eventually_async(Duration::from_secs(5), async || {
            output_for(src.addr, "test:relay").await.filter(|o| o.max_frames == 32)
        });
        let now = now.await.expect("the upstream's output took the new budget");
        assert_eq!(now.channel, first.channel, "a new subscription, not the same one");
        // Frames go on through the changed output.
        let mut later = None;
        eventually_async(Duration::from_secs(5), async || {
            let o = later.insert(output_for(src.addr, "test:relay").await.expect("the output stays"));
            (o.frames_sent > now.frames_sent).then_some(())
        })
        .await;
        let later = later.expect("looked");
        assert_eq!(later.channel, first.channel);
        assert!(later.frames_sent > now.frames_sent, "frames stopped: {later:?}");
        // The same CONNECT again (a retry whose answer was lost): answered
        // as the first, nothing done.
        let out = connect("32");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let again = output_for(src.addr, "test:relay").await.expect("the output stays");
        assert_eq!(again.channel, first.channel);
        // The relay never reconnected and its stream never paused.
        let mut c = client(relay.addr, "test:stats").await;
        let Response::GetStats(st) = c
            .request(Request::GetStats(Name { name: String::new() }))
            .await
            .unwrap()
        else {
            panic!("stats")
        };
        let input = st
            .inputs
            .iter()
            .find(|i| i.stream == "bars")
            .expect("the relay's input");
        assert_eq!(input.reconnects, 0, "{input:?}");
        assert!(
            relay.wait_log("edge budgets changed in place", Duration::from_secs(5)),
            "{}",
            relay.log()
        );
        let log = relay.log();
        assert!(!log.contains("interrupted"), "{log}");

        // What cannot change in place is refused on the subscription.
        let mut sub = client(src.addr, "test:sub").await;
        let params = SubscribeParams {
            mode: DeliveryMode::Completeness,
            max_frames: 8,
            ..SubscribeParams::default()
        };
        let ch = subscribe(&mut sub, "bars", params).await;
        let bigger = SubscribeParams {
            max_frames: 16,
            ..params
        };
        assert_eq!(
            sub.request_on(ch, Request::UpdateSubscription(bigger)).await.unwrap(),
            Response::UpdateSubscription
        );
        let other_mode = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            ..params
        };
        let e = sub
            .request_on(ch, Request::UpdateSubscription(other_mode))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                framewire_net::NetError::Remote {
                    status: Status::BadRequest,
                    ..
                }
            ),
            "{e}"
        );
        let e = sub
            .request_on(ch + 7, Request::UpdateSubscription(bigger))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                framewire_net::NetError::Remote {
                    status: Status::NotFound,
                    ..
                }
            ),
            "{e}"
        );
    })
    .await
    .expect("finished in time");
}
