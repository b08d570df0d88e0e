//! A connection's writer: the only task that writes to its socket, and the
//! queue that feeds it.
//!
//! The writer takes, in order, what the queue holds (answers, STREAM_OPEN,
//! stream events, snapshots, the status report, and commands to add or
//! drop an output), then frames from the relay outputs of this connection,
//! one per output in turn. A frame taken while something waits in the
//! queue is written after it, so a stream event (format changed) is never
//! overtaken by the frame the source pushed after it. A frame handed to it
//! is written whole (header
//! and shared payload in one vectored write) before anything else. A peer
//! that stops reading stalls only this writer: its outputs fill to their
//! budgets and drop, its queue fills to its bounds and then the
//! connection's reader waits (and stops reading that peer), and nothing
//! else waits.
//!
//! The queue is bounded in messages and in bytes. A status watcher has at
//! most one report waiting (a newer one replaces it, and none is built
//! while one waits); a snapshot's frame bytes are shared, not copied.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use framewire_proto::{Encoded, Message, StreamEvent, VideoFrame};
use std::time::Instant;

use crate::transport::stream::WriteHalf;
use framewire_relay::{MemberId, OutputId, Transmit};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::error::NetError;
use crate::runtime::core::{NodeCore, OutputEvents};
use crate::runtime::links::LinkShare;
use crate::transport::framed::{write_all_vectored, write_frame};

/// Messages a queue holds at most.
pub(crate) const QUEUE_ITEMS: usize = 256;

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Item {
    /// Write these bytes (an encoded message).
    Bytes(Encoded),
    /// A SNAPSHOT answer (the frame shared): written, the next may come.
    Snapshot(Encoded),
    /// Start serving this output.
    AddOutput(Served),
    /// Stop serving this output.
    RemoveOutput(OutputId),
    /// From now on write frame bytes only (opaque subscription).
    Opaque,
}

impl Item {
    /// A message, encoded now.
    pub(crate) fn msg(m: &Message) -> Result<Item, NetError> {
        Ok(Item::Bytes(m.encode()?))
    }

    fn bytes(&self) -> usize {
        match self {
            Item::Bytes(e) | Item::Snapshot(e) => e.len(),
            _ => 0,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Item>,
    bytes: usize,
    /// The newest status report not yet written.
    status: Option<Encoded>,
    closed: bool,
}

/// The queue between a connection's tasks and its writer.
#[derive(Debug)]
pub(crate) struct WriterQueue {
    inner: Mutex<Inner>,
    max_bytes: usize,
    /// Wakes the writer: something was queued (also the connection's
    /// outputs' waker: a frame is ready).
    pub(crate) wake: Arc<Notify>,
    /// Wakes those waiting for room.
    room: Notify,
    /// Wakes the status task: its slot is free again.
    status_room: Notify,
    /// Whether a snapshot answer waits to be written (one at a time).
    snapshot: AtomicBool,
    /// Messages dropped because the queue was full (events only).
    pub(crate) dropped: AtomicU64,
}

/// The queue is full, or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    Full,
    Closed,
}

impl WriterQueue {
    pub(crate) fn new(max_bytes: usize) -> Arc<WriterQueue> {
        Arc::new(WriterQueue {
            inner: Mutex::new(Inner::default()),
            max_bytes,
            wake: Arc::new(Notify::new()),
            room: Notify::new(),
            status_room: Notify::new(),
            snapshot: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `item` fits now (a message larger than the byte bound fits
    /// an empty queue, else it could never be sent).
    fn fits(&self, q: &Inner, item: &Item) -> bool {
        q.items.len() < QUEUE_ITEMS && (q.items.is_empty() || q.bytes + item.bytes() <= self.max_bytes)
    }

    /// Queues `item`, waiting for room (the caller, a connection's reader,
    /// stops reading its peer meanwhile).
    pub(crate) async fn push(&self, item: Item) -> Result<(), QueueError> {
        let mut item = Some(item);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push_inner(&mut item) {
                Err(QueueError::Full) => room.await,
                r => return r,
            }
        }
    }

    /// Queues `item` if there is room now; never waits (stream events from
    /// other tasks: dropped and counted when the peer does not read).
    pub(crate) fn try_push(&self, item: Item) -> Result<(), QueueError> {
        let r = self.try_push_inner(&mut Some(item));
        if r == Err(QueueError::Full) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn try_push_inner(&self, item: &mut Option<Item>) -> Result<(), QueueError> {
        let mut q = self.lock();
        if q.closed {
            return Err(QueueError::Closed);
        }
        let Some(i) = item.take() else { return Ok(()) };
        if !self.fits(&q, &i) {
            *item = Some(i);
            return Err(QueueError::Full);
        }
        q.bytes += i.bytes();
        q.items.push_back(i);
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    /// Puts a status report in the single status slot, replacing one that
    /// was not written yet.
    pub(crate) fn set_status(&self, report: Encoded) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        q.status = Some(report);
        drop(q);
        self.wake.notify_one();
    }

    /// Waits until the status slot is empty (the last report was written).
    pub(crate) async fn status_room(&self) {
        loop {
            let n = self.status_room.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.lock().status.is_none() {
                return;
            }
            n.await;
        }
    }

    /// Claims the snapshot slot; false while another snapshot waits.
    pub(crate) fn claim_snapshot(&self) -> bool {
        !self.snapshot.swap(true, Ordering::AcqRel)
    }

    /// Releases the snapshot slot (written, or never queued).
    pub(crate) fn release_snapshot(&self) {
        self.snapshot.store(false, Ordering::Release);
    }

    /// No more items: the writer writes what is queued and ends.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.room.notify_waiters();
    }

    /// Whether anything waits in the queue (the status report aside).
    fn has_items(&self) -> bool {
        !self.lock().items.is_empty()
    }

    /// The next thing to write: queued items in order, then the status
    /// report. `Err(())` when closed and drained.
    fn pop(&self) -> Result<Option<Item>, ()> {
        let mut q = self.lock();
        if let Some(i) = q.items.pop_front() {
            q.bytes -= i.bytes();
            drop(q);
            self.room.notify_waiters();
            return Ok(Some(i));
        }
        if let Some(s) = q.status.take() {
            drop(q);
            self.status_room.notify_waiters();
            return Ok(Some(Item::Bytes(s)));
        }
        if q.closed { Err(()) } else { Ok(None) }
    }
}

impl OutputEvents for WriterQueue {
    fn event(&self, channel: u16, event: StreamEvent) {
        let msg = Message::StreamEvent { channel, event };
        match Item::msg(&msg).map(|i| self.try_push(i)) {
            Ok(Ok(())) | Ok(Err(QueueError::Closed)) => {}
            Ok(Err(QueueError::Full)) => {
                debug!(channel, "stream event dropped: the connection's queue is full");
            }
            Err(e) => warn!(channel, error = %e, "stream event does not encode"),
        }
    }

    fn removed(&self, id: OutputId) {
        let _ = self.try_push(Item::RemoveOutput(id));
    }

    fn pass(&self, msg: &Message) -> bool {
        match Item::msg(msg).map(|i| self.try_push(i)) {
            Ok(Ok(())) => true,
            Ok(Err(QueueError::Closed)) => true, // the connection is going: nothing to count
            Ok(Err(QueueError::Full)) => false,
            Err(e) => {
                warn!(error = %e, "a passed-through message does not encode");
                false
            }
        }
    }
}

/// An output a connection's writer serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served {
    pub(crate) id: OutputId,
    /// Its channel on this connection.
    pub(crate) channel: u16,
    /// Its subscription's priority, weight and rate (0: no cap), for the link.
    pub(crate) priority: u8,
    pub(crate) weight: u16,
    pub(crate) max_rate: u64,
}

/// A served output and its place on the connection's link.
#[derive(Debug)]
struct Out {
    served: Served,
    member: Option<MemberId>,
}

/// The writer task of one connection. Without a link, its outputs take
/// turns, one frame each; with one, the link says whose frame goes next and
/// when (runtime/links.rs).
pub(crate) async fn writer_loop(
    core: Arc<NodeCore>,
    mut w: WriteHalf,
    queue: Arc<WriterQueue>,
    link: Option<Arc<LinkShare>>,
) -> Result<(), NetError> {
    if let Some(l) = &link {
        debug!(link = %l.label, "frames go through a link");
    }
    let mut outs = Vec::new();
    let mut link = link;
    let r = run(&core, &mut w, &queue, &mut link, &mut outs).await;
    if let Some(l) = &link {
        for m in outs.iter().filter_map(|o| o.member) {
            l.leave(m);
        }
    }
    r
}

async fn run(
    core: &NodeCore,
    w: &mut WriteHalf,
    queue: &WriterQueue,
    link: &mut Option<Arc<LinkShare>>,
    outs: &mut Vec<Out>,
) -> Result<(), NetError> {
    let mut opaque = false;
    let mut turn = 0usize;
    let mut held: Option<Held> = None;
    loop {
        let wake = queue.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        // Queued items first, in order.
        loop {
            match queue.pop() {
                Ok(Some(item)) => apply(w, item, outs, &mut opaque, queue, link).await?,
                Ok(None) => break,
                Err(()) => {
                    if let Some(h) = held.take() {
                        h.write(core, w, outs, link.as_deref()).await?;
                    }
                    let _ = w.shutdown().await;
                    return Ok(());
                }
            }
        }
        // Then the frame that waited for them.
        if let Some(h) = held.take() {
            h.write(core, w, outs, link.as_deref()).await?;
        }
        let (sent, wait) = match link.as_deref() {
            None => (turns(core, w, queue, outs, &mut turn, &mut held).await?, None),
            Some(l) => linked(core, w, queue, outs, l, &mut held).await?,
        };
        if !sent && held.is_none() {
            match wait {
                Some(at) => {
                    tokio::select! {
                        () = &mut wake => {}
                        () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    }
                }
                None => wake.await,
            }
        }
    }
}

/// A frame taken from an output while something waited in the queue: a
/// source says "format changed" and then pushes the first frame of the new
/// format, so a frame taken after its event was queued is written after it.
struct Held {
    served: Served,
    /// Its link member and the bytes the link charged.
    grant: Option<(MemberId, usize)>,
    tx: Transmit,
}

impl Held {
    /// Writes the frame unless its output was removed meanwhile, and
    /// reports it sent.
    async fn write(
        self,
        core: &NodeCore,
        w: &mut WriteHalf,
        outs: &[Out],
        link: Option<&LinkShare>,
    ) -> Result<(), NetError> {
        let len = self.tx.frame.data.len();
        let served = outs.iter().any(|o| o.served.id == self.served.id);
        let r = if served {
            write_transmit(w, self.served.channel, self.tx).await
        } else {
            Ok(())
        };
        if let (Some(l), Some((m, charged))) = (link, self.grant) {
            l.sent(m, charged, if served && r.is_ok() { len } else { 0 });
        }
        r?;
        core.sent(self.served.id);
        Ok(())
    }
}

/// One frame per output, taking turns. A frame written is reported sent in
/// the same lock that takes the next one. Returns whether any was written;
/// stops early, holding the frame just taken, when the queue has items.
async fn turns(
    core: &NodeCore,
    w: &mut WriteHalf,
    queue: &WriterQueue,
    outs: &[Out],
    turn: &mut usize,
    held: &mut Option<Held>,
) -> Result<bool, NetError> {
    let mut sent = false;
    let mut written: Option<OutputId> = None;
    let n = outs.len();
    for k in 0..n {
        let s = outs[(*turn + k) % n].served;
        let Some(tx) = core.sent_then_poll(written.take(), s.id) else {
            continue;
        };
        if queue.has_items() {
            *held = Some(Held {
                served: s,
                grant: None,
                tx,
            });
            break;
        }
        write_transmit(w, s.channel, tx).await?;
        written = Some(s.id);
        sent = true;
    }
    if let Some(prev) = written {
        core.sent(prev);
    }
    *turn = turn.wrapping_add(1);
    Ok(sent)
}

/// Offers the outputs' next frames to the link and writes those it grants.
/// Returns whether anything was written or dropped, and when the link said
/// to ask again; stops early, holding the frame just taken, when the queue
/// has items (the grants not used are given back).
async fn linked(
    core: &NodeCore,
    w: &mut WriteHalf,
    queue: &WriterQueue,
    outs: &[Out],
    link: &LinkShare,
    held: &mut Option<Held>,
) -> Result<(bool, Option<Instant>), NetError> {
    let heads = core.next_heads(outs.iter().map(|o| o.served.id));
    let offers: Vec<(MemberId, Option<(usize, u64)>)> = outs
        .iter()
        .zip(heads)
        .filter_map(|(o, h)| o.member.map(|m| (m, h)))
        .collect();
    let ex = link.exchange(&offers, Instant::now());
    let find = |m: MemberId| outs.iter().find(|o| o.member == Some(m)).map(|o| o.served);
    for s in ex.suppressed.iter().filter_map(|m| find(*m)) {
        core.suppress_next(s.id);
    }
    let mut any = !ex.suppressed.is_empty();
    for (m, charged) in ex.grants {
        if held.is_some() {
            link.sent(m, charged, 0);
            continue;
        }
        let Some(tx) = find(m).and_then(|s| core.sent_then_poll(None, s.id).map(|tx| (s, tx))) else {
            link.sent(m, charged, 0);
            continue;
        };
        let (s, tx) = tx;
        if queue.has_items() {
            *held = Some(Held {
                served: s,
                grant: Some((m, charged)),
                tx,
            });
            continue;
        }
        let len = tx.frame.data.len();
        let r = write_transmit(w, s.channel, tx).await;
        link.sent(m, charged, if r.is_ok() { len } else { 0 });
        r?;
        core.sent(s.id);
        any = true;
    }
    Ok((any, ex.wait))
}

/// Writes one frame: framed on its channel, or its bytes alone (opaque).
async fn write_transmit(w: &mut WriteHalf, channel: u16, tx: Transmit) -> Result<(), NetError> {
    if tx.encapsulated {
        let f = VideoFrame {
            channel,
            sequence: tx.frame.sequence,
            timestamp_ns: tx.frame.timestamp_ns,
            flags: tx.frame.flags,
            data: tx.frame.data,
        };
        write_frame(w, &f).await?;
    } else {
        write_all_vectored(w, &[&tx.frame.data]).await?;
    }
    Ok(())
}

async fn apply(
    w: &mut WriteHalf,
    item: Item,
    outs: &mut Vec<Out>,
    opaque: &mut bool,
    queue: &WriterQueue,
    link: &mut Option<Arc<LinkShare>>,
) -> Result<(), NetError> {
    match item {
        Item::Bytes(e) => {
            if !*opaque {
                write_all_vectored(w, &[&e.head, &e.body]).await?;
            }
        }
        Item::Snapshot(e) => {
            let r = write_all_vectored(w, &[&e.head, &e.body]).await;
            queue.release_snapshot();
            r?;
        }
        Item::AddOutput(served) => {
            if link.is_none() && served.max_rate > 0 {
                // A subscription with a rate of its own needs a link to
                // hold it to that rate: a plain one, its outputs in turn.
                let l = Arc::new(LinkShare::plain());
                for o in outs.iter_mut() {
                    o.member = Some(l.join(&o.served, queue.wake.clone()));
                }
                *link = Some(l);
            }
            let member = link.as_ref().map(|l| l.join(&served, queue.wake.clone()));
            outs.push(Out { served, member });
        }
        Item::RemoveOutput(id) => {
            outs.retain(|o| {
                if o.served.id == id
                    && let (Some(l), Some(m)) = (link.as_ref(), o.member)
                {
                    l.leave(m);
                }
                o.served.id != id
            });
        }
        Item::Opaque => *opaque = true,
    }
    Ok(())
}

/// Takes and drops whatever is queued until the queue is closed (a writer
/// for a connection without a socket: the fuzz harness).
#[cfg(feature = "fuzz-api")]
pub(crate) async fn discard(queue: Arc<WriterQueue>) {
    loop {
        let wake = queue.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        loop {
            match queue.pop() {
                Ok(Some(Item::Snapshot(_))) => queue.release_snapshot(),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(()) => return,
            }
        }
        wake.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::runtime::core::OutputEntry;
    use crate::transport::framed::FramedRead;
    use bytes::Bytes;
    use framewire_proto::control::StreamState;
    use framewire_proto::{
        Decoder, DeliveryMode, Format, FrameFlags, Origin, PixelFormat, StreamOpen, SubscribeParams,
    };
    use framewire_relay::Frame;
    use std::time::Duration;

    fn open(name: &str, width: u32) -> StreamOpen {
        StreamOpen {
            format: Format::Mjpeg,
            pixel_format: PixelFormat::None,
            origin: Origin::Unspecified,
            width,
            height: 16,
            fps_num: 30,
            fps_den: 1,
            name: name.into(),
            codec_config: Bytes::new(),
        }
    }

    fn frame(data: Bytes, sequence: u64) -> Frame {
        Frame {
            data,
            sequence,
            timestamp_ns: 0,
            flags: FrameFlags::KEYFRAME,
        }
    }

    /// Subscribes the connection of `queue` to `stream` on `channel`.
    fn serve(core: &NodeCore, queue: &Arc<WriterQueue>, stream: &str, channel: u16) -> OutputId {
        let params = SubscribeParams {
            mode: DeliveryMode::Completeness,
            ..SubscribeParams::default()
        };
        let entry = OutputEntry {
            stream: stream.into(),
            channel,
            peer: "test".into(),
            waker: queue.wake.clone(),
            events: Some(queue.clone() as Arc<dyn OutputEvents>),
        };
        let (id, _) = core.add_output(stream, &params, entry).unwrap();
        let served = Served {
            id,
            channel,
            priority: 0,
            weight: 1,
            max_rate: 0,
        };
        queue.try_push(Item::AddOutput(served)).unwrap();
        id
    }

    /// A source says "format changed" and pushes the first frame of the new
    /// format at once, from its own thread, while the writer runs (and
    /// writes a large frame of another stream before it): the subscriber
    /// gets every frame after the event that announced it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_never_overtakes_the_format_change_before_it() {
        const CHANGES: u32 = 2000;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (core, _) = crate::node::core(NodeConfig::new("test:writer", addr), addr);
        let core = Arc::new(core);
        core.add_stream(open("s", 1), "test".into(), StreamState::Live).unwrap();
        core.add_stream(open("big", 1), "test".into(), StreamState::Live)
            .unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_r, w) = server.into_split();
        let queue = WriterQueue::new(1 << 20);
        let id = serve(&core, &queue, "s", 1);
        serve(&core, &queue, "big", 2);
        let writer = tokio::spawn(writer_loop(core.clone(), Box::new(w), queue.clone(), None));
        let source = {
            let core = core.clone();
            let queue = queue.clone();
            std::thread::spawn(move || {
                let big = Bytes::from(vec![0u8; 64 << 10]);
                for k in 2..=CHANGES {
                    // Room for the event (one dropped would fail the test).
                    while queue.lock().items.len() > QUEUE_ITEMS / 2 {
                        std::thread::yield_now();
                    }
                    core.push("big", frame(big.clone(), u64::from(k)));
                    std::thread::sleep(Duration::from_micros(20));
                    core.stream_event("s", framewire_proto::StreamEvent::FormatChanged(open("s", k)));
                    core.push("s", frame(Bytes::from_static(b"frame"), u64::from(k)));
                }
            })
        };
        let mut reader = FramedRead::new(client, Decoder::new());
        let mut announced = 1u64;
        let mut frames = 0u64;
        let dropped = || {
            core.with_state(|st| st.output_snapshot(id, Instant::now()))
                .map_or(0, |s| s.drops.total())
        };
        let end = Instant::now() + Duration::from_secs(20);
        // Every frame arrives or is counted dropped (the budget is what a
        // node allows, and the source does not wait for room).
        while announced < u64::from(CHANGES) || frames + dropped() < u64::from(CHANGES - 1) {
            assert!(
                Instant::now() < end,
                "in 20 s: {frames} frames, {} dropped, the last format {announced}",
                dropped()
            );
            let Ok(m) = tokio::time::timeout(Duration::from_millis(100), reader.next()).await else {
                continue;
            };
            match m.unwrap().expect("open") {
                framewire_proto::Message::StreamEvent {
                    event: framewire_proto::StreamEvent::FormatChanged(o),
                    ..
                } => announced = u64::from(o.width),
                framewire_proto::Message::VideoFrame(f) if f.channel == 1 => {
                    assert!(
                        f.sequence <= announced,
                        "frame {} came before its format change (last seen: {announced})",
                        f.sequence
                    );
                    frames += 1;
                }
                _ => {}
            }
        }
        assert!(frames > u64::from(CHANGES) / 4, "{frames} frames");
        source.join().unwrap();
        queue.close();
        let _ = writer.await;
    }
}
