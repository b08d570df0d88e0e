//! Properties of the wire format over generated values and bytes:
//! encode → decode gives the value back, in any read split; arbitrary bytes
//! never panic the decoder and never make it hold more than its limit.

// test-runner: alone (property tests keep both cores busy; scripts/run-tests.py)

use bytes::{Bytes, BytesMut};
use framewire_proto::codes::*;
use framewire_proto::control::*;
use framewire_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes_up_to(n: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..n).prop_map(Bytes::from)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9:/._ -]{0,24}|\\PC{0,8}"
}

fn stream_open() -> impl Strategy<Value = StreamOpen> {
    (any::<[u16; 3]>(), any::<[u32; 4]>(), text()).prop_map(|(c, n, name)| StreamOpen {
        format: Format::from_raw(c[0]),
        pixel_format: PixelFormat::from_raw(c[1]),
        origin: Origin::from_raw(c[2]),
        width: n[0],
        height: n[1],
        fps_num: n[2],
        fps_den: n[3],
        name,
        codec_config: Default::default(),
    })
}

fn params() -> impl Strategy<Value = SubscribeParams> {
    (any::<[u8; 5]>(), any::<u32>(), any::<u64>()).prop_map(|(b, f, m)| SubscribeParams {
        mode: DeliveryMode::from_raw(b[0]),
        max_frames: f,
        max_bytes: m,
        drop_policy: DropPolicy::from_raw(b[1]),
        priority: b[2],
        transport: TransportMode::from_raw(b[3]),
    })
}

fn hello() -> impl Strategy<Value = control::Hello> {
    (
        any::<u8>(),
        text(),
        any::<[u16; 2]>(),
        any::<u32>(),
        any::<u8>(),
        bytes_up_to(32),
    )
        .prop_map(|(v, name, s, f, a, nonce)| control::Hello {
            protocol_version: v,
            name,
            site_id: s[0],
            function_flags: FunctionFlags(s[1]),
            features: Features(f),
            auth_scheme: AuthScheme::from_raw(a),
            nonce,
        })
}

fn output_stats() -> impl Strategy<Value = OutputStats> {
    (
        any::<u16>(),
        text(),
        text(),
        any::<[u8; 4]>(),
        any::<[u64; 6]>(),
        any::<[u32; 5]>(),
        vec((any::<u8>(), any::<u64>()), 0..8),
    )
        .prop_map(|(ch, stream, peer, b, w, n, drops)| OutputStats {
            channel: ch,
            stream,
            peer,
            mode: DeliveryMode::from_raw(b[0]),
            transport: TransportMode::from_raw(b[1]),
            priority: b[2],
            frames_in: w[0],
            frames_sent: w[1],
            bytes_sent: w[2],
            drops: drops
                .into_iter()
                .map(|(r, count)| DropCount {
                    reason: DropReason::from_raw(r),
                    count,
                })
                .collect(),
            queue_frames: n[0],
            queue_bytes: w[3],
            max_frames: n[1],
            max_bytes: w[4],
            oldest_age_us: w[5],
            latency_p50_us: n[2],
            latency_p99_us: n[3],
            latency_max_us: n[4],
            waiting_keyframe: b[3] & 1 == 1,
        })
}

fn control_value() -> impl Strategy<Value = ControlValue> {
    (any::<u32>(), any::<i64>()).prop_map(|(id, value)| ControlValue { id, value })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        hello().prop_map(Request::Hello),
        bytes_up_to(40).prop_map(|proof| Request::Auth(control::Auth { proof })),
        Just(Request::ListStreams),
        (text(), params(), 1..=u16::MAX, any::<u64>()).prop_map(|(stream, params, weight, max_rate)| {
            Request::Subscribe(Subscribe {
                stream,
                params,
                weight,
                max_rate,
            })
        }),
        Just(Request::Unsubscribe),
        stream_open().prop_map(Request::StreamOpen),
        text().prop_map(|name| Request::GetStats(Name { name })),
        (text(), text(), text(), params(), 1..=u16::MAX, any::<u64>()).prop_map(
            |(upstream, stream, local_name, params, weight, max_rate)| {
                Request::Connect(Connect {
                    upstream,
                    stream,
                    local_name,
                    params,
                    weight,
                    max_rate,
                })
            },
        ),
        text().prop_map(|name| Request::Disconnect(Name { name })),
        Just(Request::Describe),
        text().prop_map(|name| Request::Snapshot(Name { name })),
        any::<u32>().prop_map(|grace_ms| Request::Shutdown(control::Shutdown { grace_ms })),
        Just(Request::V4l2ListDevices),
        text().prop_map(|name| Request::V4l2ListControls(Name { name })),
        (text(), vec(any::<u32>(), 0..10))
            .prop_map(|(device, ids)| Request::V4l2GetControls(GetControls { device, ids })),
        (text(), vec(control_value(), 0..10))
            .prop_map(|(device, values)| Request::V4l2SetControls(SetControls { device, values })),
        Just(Request::ListMonitors),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let stream_info = (stream_open(), any::<u8>(), any::<u16>(), any::<u64>()).prop_map(|(open, s, n, f)| StreamInfo {
        open,
        state: StreamState::from_raw(s),
        subscribers: n,
        frames: f,
    });
    let input_stats =
        (text(), any::<u8>(), text(), any::<[u64; 2]>(), any::<u32>()).prop_map(|(stream, s, upstream, w, r)| {
            InputStats {
                stream,
                state: StreamState::from_raw(s),
                upstream,
                frames_in: w[0],
                bytes_in: w[1],
                reconnects: r,
            }
        });
    let frame_size =
        (any::<u8>(), any::<[u32; 6]>(), vec(any::<(u32, u32)>(), 0..4)).prop_map(|(kind, n, intervals)| {
            V4l2FrameSize {
                kind,
                width: n[0],
                height: n[1],
                max_width: n[2],
                max_height: n[3],
                step_width: n[4],
                step_height: n[5],
                intervals,
            }
        });
    let format =
        (any::<u32>(), text(), any::<u32>(), vec(frame_size, 0..3)).prop_map(|(fourcc, description, flags, sizes)| {
            V4l2Format {
                fourcc,
                description,
                flags,
                sizes,
            }
        });
    let device =
        (text(), text(), any::<u32>(), vec(format, 0..3)).prop_map(|(path, card, capabilities, formats)| V4l2Device {
            path: path.clone(),
            card: card.clone(),
            driver: card,
            bus: path,
            capabilities,
            formats,
        });
    let menu = (any::<u32>(), text(), any::<i64>()).prop_map(|(index, name, value)| MenuItem { index, name, value });
    let control = (
        any::<[u32; 3]>(),
        any::<u8>(),
        text(),
        any::<[i64; 3]>(),
        any::<u64>(),
        vec(menu, 0..4),
    )
        .prop_map(|(n, t, name, i, step, menu)| V4l2Control {
            id: n[0],
            class: n[1],
            ctrl_type: ControlType::from_raw(t),
            name,
            min: i[0],
            max: i[1],
            step,
            default: i[2],
            flags: n[2],
            menu,
        });
    let monitor =
        (text(), any::<[i32; 2]>(), any::<[u32; 5]>(), any::<bool>()).prop_map(|(name, p, s, primary)| Monitor {
            name,
            x: p[0],
            y: p[1],
            width: s[0],
            height: s[1],
            width_mm: s[2],
            height_mm: s[3],
            refresh_mhz: s[4],
            primary,
        });
    prop_oneof![
        (hello(), bytes_up_to(40)).prop_map(|(hello, proof)| Response::Hello(HelloReply { hello, proof })),
        Just(Response::Auth),
        vec(stream_info, 0..5).prop_map(Response::ListStreams),
        any::<u16>().prop_map(|channel| Response::Subscribe(SubscribeReply { channel, shm: None })),
        (any::<u16>(), "[ -~]{0,40}", any::<u64>()).prop_map(|(channel, path, token)| Response::Subscribe(
            SubscribeReply {
                channel,
                shm: Some(framewire_proto::control::ShmOffer { path, token })
            }
        )),
        Just(Response::Unsubscribe),
        Just(Response::StreamOpen),
        (
            vec(input_stats, 0..4),
            vec(output_stats(), 0..4),
            vec(input_event_stats(), 0..3),
            vec((text(), any::<u16>(), any::<[u64; 3]>()), 0..3),
        )
            .prop_map(|(inputs, outputs, input_events, passed)| Response::GetStats(Stats {
                inputs,
                outputs,
                input_events,
                pass_through: passed
                    .into_iter()
                    .map(|(stream, message_type, n)| framewire_proto::control::PassThroughStats {
                        stream,
                        message_type,
                        messages: n[0],
                        bytes: n[1],
                        dropped: n[2],
                    })
                    .collect(),
            })),
        text().prop_map(|name| Response::Connect(Name { name })),
        Just(Response::Disconnect),
        (text(), any::<[u16; 5]>(), any::<[u32; 2]>(), any::<u64>(), any::<u8>()).prop_map(|(name, s, n, up, v)| {
            Response::Describe(Description {
                name: name.clone(),
                software: "framewire".into(),
                protocol_version: v,
                site_id: s[0],
                function_flags: FunctionFlags(s[1]),
                features: Features(n[0]),
                pid: n[1],
                uptime_ms: up,
                hostname: name,
                streams: s[3],
                tcp_port: s[4],
            })
        }),
        (stream_open(), any::<[u64; 2]>(), any::<u32>(), bytes_up_to(200)).prop_map(|(open, w, f, data)| {
            Response::Snapshot(Snapshot {
                open,
                sequence: w[0],
                timestamp_ns: w[1],
                flags: FrameFlags(f),
                data,
            })
        }),
        Just(Response::Shutdown),
        vec(device, 0..3).prop_map(Response::V4l2ListDevices),
        vec(control, 0..5).prop_map(Response::V4l2ListControls),
        vec(control_value(), 0..6).prop_map(Response::V4l2GetControls),
        vec(control_value(), 0..6).prop_map(Response::V4l2SetControls),
        vec(monitor, 0..4).prop_map(Response::ListMonitors),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let info = (any::<u64>(), any::<u8>(), text())
        .prop_map(|(timestamp_ns, r, message)| EventInfo {
            timestamp_ns,
            reason: EventReason::from_raw(r),
            message,
        })
        .boxed();
    let event = prop_oneof![
        info.clone().prop_map(StreamEvent::Interrupted),
        info.clone().prop_map(StreamEvent::Resumed),
        info.prop_map(StreamEvent::Closed),
        stream_open().prop_map(StreamEvent::FormatChanged),
        (5u8..=255, bytes_up_to(30)).prop_map(|(code, fields)| StreamEvent::Unknown { code, fields }),
    ];
    let input = (
        any::<u8>(),
        any::<u64>(),
        any::<u16>(),
        any::<[u32; 2]>(),
        any::<u8>(),
        any::<[i32; 4]>(),
    )
        .prop_map(|(k, t, m, key, b, p)| InputEvent {
            kind: InputKind::from_raw(k),
            timestamp_ns: t,
            modifiers: Modifiers(m),
            keysym: key[0],
            scancode: key[1],
            button: b,
            x: p[0],
            y: p[1],
            wheel_x: p[2],
            wheel_y: p[3],
        });
    let announce = (any::<u8>(), any::<[u16; 3]>(), "[a-z0-9:]{0,40}", bytes_up_to(16))
        .prop_map(|(v, s, name, ext)| NodeAnnouncement {
            protocol_version: v,
            site_id: s[0],
            tcp_port: s[1],
            function_flags: FunctionFlags(s[2]),
            name,
            extensions: ext,
        })
        .boxed();
    prop_oneof![
        (any::<u16>(), any::<[u64; 2]>(), any::<u32>(), bytes_up_to(300)).prop_map(|(channel, w, f, data)| {
            Message::VideoFrame(VideoFrame {
                channel,
                sequence: w[0],
                timestamp_ns: w[1],
                flags: FrameFlags(f),
                data,
            })
        }),
        (any::<u16>(), any::<u16>(), request())
            .prop_map(|(ch, id, r)| Message::ControlRequest(r.to_message(ch, id).unwrap())),
        (any::<u16>(), any::<u16>(), response())
            .prop_map(|(ch, id, r)| Message::ControlResponse(r.to_message(ch, id).unwrap())),
        (any::<u16>(), event).prop_map(|(channel, event)| Message::StreamEvent { channel, event }),
        (any::<u16>(), input).prop_map(|(channel, event)| Message::InputEvent { channel, event }),
        (any::<u16>(), bytes_up_to(100)).prop_map(|(channel, payload)| Message::AudioFrame { channel, payload }),
        announce.clone().prop_map(Message::NodeAnnouncement),
        announce.prop_map(Message::NodeGoodbye),
        (0x0100u16..=0xffff, any::<u16>(), bytes_up_to(100)).prop_map(|(t, channel, payload)| Message::Unknown {
            message_type: t,
            channel,
            payload
        }),
    ]
}

fn decode_all(wire: &[u8], chunk: usize, decoder: Decoder) -> Result<Vec<Message>, DecodeError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(m) = decoder.decode(&mut buf)? {
            out.push(m);
        }
    }
    if let Some(m) = decoder.decode_eof(&mut buf)? {
        out.push(m);
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// A sequence of messages survives encode → decode in any read split.
    #[test]
    fn messages_round_trip_in_any_split(msgs in vec(message(), 1..6), chunk in 1usize..64) {
        let wire: Vec<u8> = msgs.iter().flat_map(|m| m.to_vec().unwrap()).collect();
        let got = decode_all(&wire, chunk, Decoder::new()).unwrap();
        prop_assert_eq!(&got, &msgs);
        // Encoding what was decoded gives the same bytes.
        let again: Vec<u8> = got.iter().flat_map(|m| m.to_vec().unwrap()).collect();
        prop_assert_eq!(again, wire);
    }

    /// Typed request bodies round-trip through their envelope.
    #[test]
    fn requests_round_trip(req in request(), id in any::<u16>()) {
        let env = req.to_message(0, id).unwrap();
        prop_assert_eq!(Request::decode(&env).unwrap(), req);
    }

    /// Typed response bodies round-trip through their envelope.
    #[test]
    fn responses_round_trip(resp in response(), id in any::<u16>()) {
        let env = resp.to_message(0, id).unwrap();
        prop_assert_eq!(Response::decode(&env).unwrap(), resp);
    }

    /// Arbitrary bytes, in arbitrary splits, never panic the decoder; what
    /// decodes re-encodes to something that decodes equal; the buffer never
    /// grows past one message at the limit.
    #[test]
    fn arbitrary_bytes_never_panic(wire in vec(any::<u8>(), 0..2048), chunk in 1usize..48) {
        let limit = 512u32;
        let decoder = Decoder::with_max_payload(limit);
        let mut buf = BytesMut::new();
        'outer: for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                prop_assert!(buf.len() <= 8 + limit as usize + chunk);
                let before = buf.len();
                match decoder.decode(&mut buf) {
                    Ok(Some(m)) => {
                        let again = m.to_vec().unwrap();
                        let back = Decoder::new().decode(&mut BytesMut::from(&again[..])).unwrap().unwrap();
                        prop_assert_eq!(back, m);
                    }
                    Ok(None) => break,
                    Err(_) if buf.len() < before => {}
                    Err(_) => break 'outer,
                }
            }
        }
    }

    /// Arbitrary control bodies never panic the typed parsers.
    #[test]
    fn arbitrary_bodies_never_panic(cmd in any::<u16>(), body in vec(any::<u8>(), 0..256)) {
        let req = ControlRequest { channel: 0, request_id: 1, command: Command::from_raw(cmd), body: Bytes::from(body.clone()) };
        if let Ok(r) = Request::decode(&req) {
            let env = r.to_message(0, 1).unwrap();
            prop_assert_eq!(Request::decode(&env).unwrap(), r);
        }
        let resp = ControlResponse { channel: 0, request_id: 1, status: Status::Ok, command: Command::from_raw(cmd), body: Bytes::from(body) };
        if let Ok(r) = Response::decode(&resp) {
            let env = r.to_message(0, 1).unwrap();
            prop_assert_eq!(Response::decode(&env).unwrap(), r);
        }
    }
}

fn input_event_stats() -> impl Strategy<Value = InputEventStats> {
    (text(), any::<[u64; 3]>(), vec((any::<u8>(), any::<u64>()), 0..7)).prop_map(|(stream, n, kinds)| InputEventStats {
        stream,
        received: n[0],
        injected: n[1],
        forwarded: n[2],
        kinds: kinds
            .into_iter()
            .map(|(k, count)| InputKindCount {
                kind: InputKind::from_raw(k),
                count,
            })
            .collect(),
    })
}

/// A GET_STATS body from before `input_events` was appended still reads,
/// as no input events.
#[test]
fn stats_without_input_events_still_reads() {
    let mut env = Response::GetStats(Stats::default()).to_message(0, 1).unwrap();
    assert_eq!(&env.body[..], &[0, 0, 0, 0, 0, 0]);
    env.body = env.body.slice(..4);
    assert_eq!(Response::decode(&env).unwrap(), Response::GetStats(Stats::default()));
    // A truncated third list is an error, not an empty one.
    env.body = bytes::Bytes::from_static(&[0, 0, 0, 0, 1, 0]);
    assert!(Response::decode(&env).is_err());
    // With nothing passed through the body ends after `input_events`, as
    // before that list was appended; a truncated fourth list is an error.
    env.body = bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 1, 0]);
    assert!(Response::decode(&env).is_err());
}

#[test]
fn a_snapshot_answer_shares_the_frame_and_encodes_as_the_response_does() {
    use framewire_proto::control::Snapshot;
    let data = bytes::Bytes::from(vec![7u8; 100_000]);
    let snap = Snapshot {
        open: framewire_proto::StreamOpen {
            format: framewire_proto::Format::Mjpeg,
            pixel_format: framewire_proto::PixelFormat::None,
            origin: framewire_proto::Origin::LibjpegTurbo,
            width: 640,
            height: 480,
            fps_num: 30,
            fps_den: 1,
            name: "bars".into(),
            codec_config: Default::default(),
        },
        sequence: 42,
        timestamp_ns: 1_700_000_000_000_000_000,
        flags: framewire_proto::FrameFlags::KEYFRAME,
        data: data.clone(),
    };
    let fast = snap.encode_response(3, 9).unwrap();
    assert_eq!(fast.body.as_ptr(), data.as_ptr(), "the frame's bytes are shared");
    let slow =
        framewire_proto::Message::ControlResponse(framewire_proto::Response::Snapshot(snap).to_message(3, 9).unwrap())
            .to_vec()
            .unwrap();
    assert_eq!(fast.to_vec(), slow);
}
