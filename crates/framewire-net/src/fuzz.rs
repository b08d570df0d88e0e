//! Entry points for the fuzz targets (feature `fuzz-api`; not an API).

use std::time::Duration;

use bytes::BytesMut;
use framewire_proto::{Decoder, Message, Request};

use crate::node::Node;
use crate::runtime::commands::Session;
use crate::transport::writer::{WriterQueue, discard};

/// Decodes `bytes` into messages and hands them, in order, to a fresh
/// command session of `node`, as a connection's reader does after HELLO;
/// the answers are discarded. Requests that would leave this machine or
/// stop the node (CONNECT to anything but 127.0.0.1:1, SHUTDOWN) are
/// rewritten or skipped. Bytes that do not decode end the sequence, as
/// they end a connection.
pub async fn drive_session(node: &Node, bytes: &[u8]) {
    let services = node.services().clone();
    let queue = WriterQueue::new(services.core.config.limits.writer_queue_bytes);
    let drain = tokio::spawn(discard(queue.clone()));
    let mut session = Session::new(services, "127.0.0.1:1 fuzz:peer".into(), queue.clone(), true);
    let decoder = Decoder::with_max_payload(1 << 20);
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(mut msg)) = decoder.decode(&mut buf) {
        if let Message::ControlRequest(req) = &mut msg {
            match Request::decode(req) {
                Ok(Request::Shutdown(_)) => continue,
                Ok(Request::Connect(mut c)) => {
                    c.upstream = "127.0.0.1:1".into();
                    match Request::Connect(c).to_message(req.channel, req.request_id) {
                        Ok(m) => *req = m,
                        Err(_) => continue,
                    }
                }
                _ => {}
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), session.handle(msg)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    drop(session);
    queue.close();
    let _ = drain.await;
}
