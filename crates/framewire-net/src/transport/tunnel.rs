//! A gateway's tunnel: one connection from this site carried, message by
//! message, to a node of another site (docs/discovery.md, "Control across
//! sites"). The gateway has authenticated the near end with its own key
//! (or certificate) and dialled the far end with its own; from then on
//! each message is read whole (within the payload limit), checked against
//! the gateway's rule, and written on. Each direction has its own task,
//! so a slow reader on one side never stops the other.

use std::collections::VecDeque;

use framewire_proto::{Command, ControlResponse, Message, Status};
use tokio::sync::{mpsc, watch};

use crate::config::TunnelRule;
use crate::error::NetError;
use crate::transport::framed::{FramedRead, write_message};
use crate::transport::stream::{ReadHalf, WriteHalf};

/// Commands a `read` tunnel carries: looking and watching, never a change.
const READ_COMMANDS: [Command; 18] = [
    Command::ListStreams,
    Command::Subscribe,
    Command::Unsubscribe,
    Command::StreamOpen,
    Command::GetStats,
    Command::Describe,
    Command::Snapshot,
    Command::UpdateSubscription,
    Command::RequestKeyframe,
    Command::V4l2ListDevices,
    Command::V4l2ListControls,
    Command::V4l2GetControls,
    Command::ListMonitors,
    Command::SourceGet,
    Command::ArchiveList,
    Command::ArchiveRead,
    Command::WatchStatus,
    Command::StatusReport,
];

/// Whether a request with `command` may cross a tunnel under `rule`.
pub(crate) fn allowed(rule: TunnelRule, command: Command) -> bool {
    match rule {
        TunnelRule::Off => false,
        TunnelRule::Read => READ_COMMANDS.contains(&command),
        // HELLO, AUTH and TUNNEL belong to each hop's own handshake.
        TunnelRule::Full => !matches!(command, Command::Hello | Command::Auth | Command::Tunnel),
    }
}

/// Whether a message from the near end crosses under `rule` at all: on
/// `read`, requests (checked one by one) and answers to the far node's
/// own requests only.
fn carried(rule: TunnelRule, m: &Message) -> bool {
    match rule {
        TunnelRule::Full => true,
        TunnelRule::Off => false,
        TunnelRule::Read => matches!(m, Message::ControlRequest(_) | Message::ControlResponse(_)),
    }
}

/// The two ends of a tunnel.
pub(crate) struct Ends {
    /// The connection from this site.
    pub(crate) near: (FramedRead<ReadHalf>, WriteHalf),
    /// The connection to the far node, and what it sent before the splice.
    pub(crate) far: (FramedRead<ReadHalf>, WriteHalf, VecDeque<Message>),
}

/// Carries messages both ways until either end closes, fails, or the node
/// stops. Requests from the near end that `rule` does not allow are
/// answered here with permission-denied and go no further.
pub(crate) async fn splice(ends: Ends, rule: TunnelRule, mut stop: watch::Receiver<bool>) -> Result<(), NetError> {
    let (mut near_r, mut near_w) = ends.near;
    let (mut far_r, mut far_w, pending) = ends.far;
    let (refusals, mut refused) = mpsc::channel::<Message>(8);
    let outward = tokio::spawn(async move {
        while let Some(m) = near_r.next().await? {
            if !carried(rule, &m) {
                // Input events (keyboard and mouse for a grabbed screen),
                // frames and the like act on the far node: not on `read`.
                continue;
            }
            if let Message::ControlRequest(req) = &m
                && !allowed(rule, req.command)
            {
                let msg = format!(
                    "{} does not cross this gateway: its tunnels are `{}` (discovery.tunnel)",
                    req.command,
                    rule.label()
                );
                let resp =
                    ControlResponse::error(req.channel, req.request_id, req.command, Status::PermissionDenied, &msg);
                if refusals.send(Message::ControlResponse(resp)).await.is_err() {
                    break;
                }
                continue;
            }
            write_message(&mut far_w, &m).await?;
        }
        Ok::<(), NetError>(())
    });
    let inward = tokio::spawn(async move {
        for m in pending {
            write_message(&mut near_w, &m).await?;
        }
        loop {
            let m = tokio::select! {
                m = far_r.next() => match m? {
                    Some(m) => m,
                    None => break,
                },
                Some(r) = refused.recv() => r,
            };
            write_message(&mut near_w, &m).await?;
        }
        Ok::<(), NetError>(())
    });
    let (out_abort, in_abort) = (outward.abort_handle(), inward.abort_handle());
    let result = tokio::select! {
        r = outward => r,
        r = inward => r,
        _ = stop.changed() => Ok(Ok(())),
    };
    out_abort.abort();
    in_abort.abort();
    match result {
        Ok(r) => r,
        Err(e) => Err(NetError::Closed(format!("tunnel task: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_tunnel_carries_looking_and_no_change() {
        for c in [
            Command::Describe,
            Command::WatchStatus,
            Command::Subscribe,
            Command::ArchiveList,
        ] {
            assert!(allowed(TunnelRule::Read, c), "{c}");
            assert!(allowed(TunnelRule::Full, c), "{c}");
        }
        for c in [
            Command::Connect,
            Command::Disconnect,
            Command::Shutdown,
            Command::SourceAdd,
            Command::V4l2SetControls,
            Command::ArchiveSet,
            Command::from_raw(0x7fff),
        ] {
            assert!(!allowed(TunnelRule::Read, c), "{c}");
        }
        // Frames and input events (keyboard and mouse) act on the far node.
        let input = Message::AudioFrame {
            channel: 1,
            payload: bytes::Bytes::new(),
        };
        assert!(!carried(TunnelRule::Read, &input));
        assert!(carried(TunnelRule::Full, &input));
        assert!(allowed(TunnelRule::Full, Command::Connect));
        assert!(!allowed(TunnelRule::Full, Command::Auth));
        assert!(!allowed(TunnelRule::Off, Command::Describe));
    }
}
