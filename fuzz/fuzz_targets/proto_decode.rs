//! Feeds arbitrary bytes to the streaming decoder in arbitrary splits.
//!
//! Properties: decoding never panics; a decoded message re-encodes and
//! decodes to the same message; envelope-level messages (frames, control
//! envelopes, audio, unknown types) re-encode to the very bytes consumed;
//! typed control bodies that parse re-encode to bodies that parse equal.
#![no_main]

use bytes::BytesMut;
use framewire_proto::{Decoder, Message, Request, Response, Status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so splits are explored too; a
    // small limit makes the oversize path reachable.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 32) + 1;
    let decoder = Decoder::with_max_payload(4096);
    let mut buf = BytesMut::new();
    let mut consumed: Vec<u8> = Vec::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let used = before.len() - buf.len();
                    consumed.clear();
                    consumed.extend_from_slice(&before[..used]);
                    check(&msg, &consumed);
                }
                Ok(None) => break,
                Err(_) if buf.len() < before.len() => {} // malformed, consumed: go on
                Err(_) => return,                        // oversize: connection closes
            }
        }
    }
    let _ = decoder.decode_eof(&mut buf);
});

fn check(msg: &Message, wire: &[u8]) {
    let again = msg.to_vec().expect("a decoded message encodes");
    let mut b = BytesMut::from(&again[..]);
    let back = Decoder::new()
        .decode(&mut b)
        .expect("re-encoded decodes")
        .expect("whole");
    assert_eq!(&back, msg);
    match msg {
        Message::VideoFrame(_)
        | Message::ControlRequest(_)
        | Message::ControlResponse(_)
        | Message::AudioFrame { .. }
        | Message::Unknown { .. } => assert_eq!(again, wire),
        _ => {}
    }
    match msg {
        Message::ControlRequest(r) => {
            if let Ok(typed) = Request::decode(r) {
                let env = typed.to_message(r.channel, r.request_id).expect("encodes");
                assert_eq!(Request::decode(&env).expect("parses"), typed);
            }
        }
        Message::ControlResponse(r) if r.status == Status::Ok => {
            if let Ok(typed) = Response::decode(r) {
                let env = typed.to_message(r.channel, r.request_id).expect("encodes");
                assert_eq!(Response::decode(&env).expect("parses"), typed);
            }
        }
        _ => {}
    }
}
