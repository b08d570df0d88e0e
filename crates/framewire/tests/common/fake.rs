//! A fake upstream node: just enough of the protocol to be pulled from,
//! so a test can send what no real node would (or not yet can).

use bytes::BytesMut;
use framewire_proto::control::HelloReply;
use framewire_proto::{AuthScheme, Decoder, Features, FunctionFlags, Message, PROTOCOL_VERSION, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fake upstream on loopback: answers HELLO, then does `after_subscribe`
/// with the SUBSCRIBE's request id.
pub async fn fake_upstream<F, Fut>(after_subscribe: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpStream, u16) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let dec = Decoder::new();
        let mut buf = BytesMut::new();
        loop {
            let n = s.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "the downstream closed");
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                let Message::ControlRequest(req) = m else { continue };
                match Request::decode(&req).unwrap() {
                    Request::Hello(_) => {
                        let reply = Response::Hello(HelloReply {
                            hello: framewire_proto::control::Hello {
                                protocol_version: PROTOCOL_VERSION,
                                name: "t:fake".into(),
                                site_id: 0,
                                function_flags: FunctionFlags::SOURCE,
                                features: Features(Features::SHM.0),
                                auth_scheme: AuthScheme::None,
                                nonce: bytes::Bytes::new(),
                            },
                            proof: bytes::Bytes::new(),
                        });
                        let m = Message::ControlResponse(reply.to_message(0, req.request_id).unwrap());
                        s.write_all(&m.to_vec().unwrap()).await.unwrap();
                    }
                    Request::Subscribe(_) => {
                        after_subscribe(s, req.request_id).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
    });
    addr
}
