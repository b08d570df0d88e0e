//! Relays pass through what they do not interpret (docs/protocol.md):
//! audio frames and unknown message types on a stream's channel reach the
//! subscribers of a relay of a relay unchanged, in order, counted per type
//! in GET_STATS.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::fake::fake_upstream;
use common::*;
use framewire_proto::control::{Name, SubscribeReply};
use framewire_proto::{Command, FrameFlags, Message, Request, Response, StreamOpen, SubscribeParams, VideoFrame};
use tokio::io::AsyncWriteExt;

/// A message type no build of framewire knows.
const FUTURE_TYPE: u16 = 0x0109;
const ROUNDS: u64 = 40;

fn audio(i: u64) -> Bytes {
    Bytes::from(format!("pcm-{i:04}-").repeat(20))
}

fn future(i: u64) -> Bytes {
    Bytes::from(format!("future-{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_unknown_types_cross_two_relays_unchanged() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let fake = fake_upstream(|mut s, id| async move {
            let reply = Response::Subscribe(SubscribeReply { channel: 1, shm: None });
            let mut out = Message::ControlResponse(reply.to_message(0, id).unwrap())
                .to_vec()
                .unwrap();
            let open = Request::StreamOpen(StreamOpen {
                format: framewire_proto::Format::Mjpeg,
                pixel_format: framewire_proto::PixelFormat::None,
                origin: framewire_proto::Origin::LibjpegTurbo,
                width: 16,
                height: 16,
                fps_num: 25,
                fps_den: 1,
                name: "bars".into(),
                codec_config: Default::default(),
            });
            out.extend(
                Message::ControlRequest(open.to_message(1, 1).unwrap())
                    .to_vec()
                    .unwrap(),
            );
            if s.write_all(&out).await.is_err() {
                return;
            }
            // Frames, audio and a type from the future, over and over (the
            // downstream may subscribe late: keep going).
            for i in 0.. {
                let mut out = Vec::new();
                let frame = Message::VideoFrame(VideoFrame {
                    channel: 1,
                    sequence: i,
                    timestamp_ns: framewire_net::now_ns(),
                    flags: FrameFlags::KEYFRAME,
                    data: Bytes::from_static(b"\xff\xd8\xff\xd9"),
                });
                out.extend(frame.to_vec().unwrap());
                out.extend(
                    Message::AudioFrame {
                        channel: 1,
                        payload: audio(i),
                    }
                    .to_vec()
                    .unwrap(),
                );
                let unknown = Message::Unknown {
                    message_type: FUTURE_TYPE,
                    channel: 1,
                    payload: future(i),
                };
                out.extend(unknown.to_vec().unwrap());
                // On another channel: not this stream's, passed to nobody.
                out.extend(
                    Message::AudioFrame {
                        channel: 9,
                        payload: Bytes::from_static(b"stray"),
                    }
                    .to_vec()
                    .unwrap(),
                );
                if s.write_all(&out).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let r1 = spawn_node(&[
            "--name",
            "t:relay1",
            "--discovery",
            "off",
            "--no-shm",
            "--upstream",
            &format!("{fake}/bars"),
        ]);
        let r2 = spawn_node(&[
            "--name",
            "t:relay2",
            "--discovery",
            "off",
            "--no-shm",
            "--upstream",
            &format!("{}/bars", r1.addr),
        ]);
        let mut c = client(r2.addr, "t:listener").await;
        let ch = subscribe(&mut c, "bars", SubscribeParams::default()).await;
        let (mut audios, mut futures, mut frames) = (Vec::new(), Vec::new(), 0u64);
        while (audios.len() as u64) < ROUNDS || (futures.len() as u64) < ROUNDS {
            let m = tokio::time::timeout(Duration::from_secs(10), c.next_message())
                .await
                .expect("messages keep coming")
                .unwrap()
                .expect("the relay keeps the connection");
            match m {
                Message::ControlRequest(req) if req.command == Command::StreamOpen => c.ack(&req).await.unwrap(),
                Message::VideoFrame(f) if f.channel == ch => frames += 1,
                Message::AudioFrame { channel, payload } => {
                    assert_eq!(channel, ch, "audio on another channel");
                    audios.push(payload);
                }
                Message::Unknown {
                    message_type,
                    channel,
                    payload,
                } => {
                    assert_eq!((message_type, channel), (FUTURE_TYPE, ch));
                    futures.push(payload);
                }
                _ => {}
            }
        }
        assert!(frames > 0, "no video frames came with the audio");
        // Unchanged and in order: consecutive rounds of the source.
        let first = (0..100_000u64)
            .find(|i| audio(*i) == audios[0])
            .expect("an audio payload as sent");
        for (k, a) in audios.iter().enumerate() {
            assert_eq!(*a, audio(first + k as u64), "audio {k} changed or out of order");
        }
        let first = (0..100_000u64)
            .find(|i| future(*i) == futures[0])
            .expect("a payload as sent");
        for (k, f) in futures.iter().enumerate() {
            assert_eq!(*f, future(first + k as u64), "message {k} of the unknown type changed");
        }
        // Counted per type on both relays, nothing dropped; the stray
        // channel's audio is nobody's.
        for relay in [&r1, &r2] {
            let mut s = client(relay.addr, "t:stats").await;
            let Response::GetStats(st) = s
                .request(Request::GetStats(Name { name: String::new() }))
                .await
                .unwrap()
            else {
                panic!("stats")
            };
            let count = |t: u16| {
                st.pass_through
                    .iter()
                    .find(|p| p.stream == "bars" && p.message_type == t)
                    .cloned()
            };
            let a = count(6).unwrap_or_else(|| panic!("no audio counted: {:?}", st.pass_through));
            let u = count(FUTURE_TYPE).expect("the unknown type counted");
            assert!(a.messages >= ROUNDS && u.messages >= ROUNDS, "{a:?} {u:?}");
            assert_eq!(a.bytes, a.messages * audio(0).len() as u64, "{a:?}");
            assert_eq!((a.dropped, u.dropped), (0, 0));
            assert_eq!(st.pass_through.len(), 2, "{:?}", st.pass_through);
        }
        // `framewire stats --json` shows them.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"))
            .args(["stats", &r2.addr.to_string(), "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["pass_through"][0]["stream"], "bars", "{v}");
        eprintln!(
            "through two relays: {} audio, {} unknown-type messages unchanged, {frames} frames",
            audios.len(),
            futures.len()
        );
    })
    .await
    .expect("finished in time");
}
