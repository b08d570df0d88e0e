//! A link: the outputs that leave a node over one path, taking turns.
//!
//! When several subscriptions leave a node over one bottleneck (a site
//! link, a Wi-Fi hop, or simply one connection), the order in which their
//! frames go decides who gets through. A [`Link`] holds one *member* per
//! output on that path. A member *offers* the frame its output would send
//! next; the link *grants* sends one at a time, chosen by a [`Scheduler`]
//! (the same policies an output uses between its inputs), and, when the
//! link has a rate, no faster than a token bucket allows. Frames that cannot
//! go meanwhile stay in their outputs, which drop by their own budgets and
//! count every drop with its reason: the link itself never holds a frame.
//!
//! Sans-IO like the relay: every call takes `now`, and [`Link::poll`]
//! answers "grant this member", "nothing before this instant" or "nothing
//! to do". The driver writes a granted frame and reports its real length
//! with [`Link::sent`].
//!
//! # Rate
//!
//! The bucket holds at most `burst` bytes and fills at `max_rate` bytes per
//! second. A frame may start while the bucket is not in debt; its length is
//! then taken, so a frame larger than the burst goes whole and the next one
//! waits for the debt to be repaid. Over any interval the bytes granted stay
//! within `burst + max_rate × interval + one frame`.
//!
//! A member may have a rate of its own ([`Link::set_rate`], a subscription
//! that asked for `max_rate`), with a bucket of the same kind: while it is
//! in debt the member is passed over, and the others share the link.
//!
//! # Source suppression on a link
//!
//! A member whose offered frame is replaced before it was granted lost that
//! frame to congestion: the link reports it to the scheduler as a drop. With
//! [`SchedulerKind::SourceSuppression`], a member whose drop rate crosses the
//! threshold is refused ([`Offer::Suppressed`]): the driver drops the frame
//! at its output (reason `suppressed`), and the member's share goes to the
//! others until it recovers.

use std::time::{Duration, Instant};

use crate::config::SchedulerKind;
use crate::error::RelayError;
use crate::sched::{AnyScheduler, LaneView, Scheduler};

/// A link's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Who goes next.
    pub scheduler: SchedulerKind,
    /// Bytes per second the link may carry (none: as fast as the transport
    /// takes them).
    pub max_rate: Option<u64>,
    /// Bytes the bucket holds at most (zero: 50 ms at `max_rate`, at least
    /// 16 KiB).
    pub burst: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            scheduler: SchedulerKind::RoundRobin,
            max_rate: None,
            burst: 0,
        }
    }
}

impl LinkConfig {
    /// The bucket size in effect.
    pub fn effective_burst(&self) -> u64 {
        match (self.burst, self.max_rate) {
            (0, Some(rate)) => default_burst(rate),
            (b, _) => b.max(1),
        }
    }
}

/// 50 ms at `rate`, at least 16 KiB.
fn default_burst(rate: u64) -> u64 {
    (rate / 20).max(16 * 1024)
}

/// A token bucket in bytes; in debt (negative) after a frame larger than
/// what it held.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Option<Instant>,
}

impl Bucket {
    fn new(rate: u64, burst: u64) -> Bucket {
        Bucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            refilled: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.refilled {
            if now <= last {
                return;
            }
            let dt = now.duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.refilled = Some(now);
    }

    fn in_debt(&self) -> bool {
        self.tokens < 0.0
    }

    /// When the debt is repaid (rounded up, so that asking again then finds
    /// it repaid).
    fn repaid_at(&self, now: Instant) -> Instant {
        now + Duration::from_secs_f64((-self.tokens).max(0.0) / self.rate) + Duration::from_micros(1)
    }

    fn take(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    fn give_back(&mut self, bytes: f64) {
        self.tokens = (self.tokens + bytes).min(self.burst);
    }
}

/// One member of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(u64);

/// What [`Link::offer`] decided about the offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// It waits for a grant.
    Waiting,
    /// Source suppression refuses it: drop it at the output.
    Suppressed,
}

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPoll {
    /// `member` may send its next frame; `charged` bytes were taken for it
    /// (report the real length with [`Link::sent`]).
    Grant { member: MemberId, charged: usize },
    /// Frames wait, but the rate allows none before this instant.
    Wait(Instant),
    /// No member has a frame waiting.
    Idle,
}

#[derive(Debug, Clone)]
struct Member {
    id: MemberId,
    priority: u8,
    weight: u32,
    /// The waiting frame: length, link-wide arrival order, the driver's tag.
    head: Option<(usize, u64, u64)>,
    /// Its own rate, if it has one.
    bucket: Option<Bucket>,
    /// Whether its own rate lets it send now (set before each pick).
    eligible: bool,
    frames: u64,
    bytes: u64,
    replaced: u64,
}

impl Member {
    fn waiting(&self) -> Option<(usize, u64, u64)> {
        self.head.filter(|_| self.eligible)
    }
}

/// A member held back by its own rate shows as empty to the scheduler.
impl LaneView for Member {
    fn is_empty(&self) -> bool {
        self.waiting().is_none()
    }
    fn priority(&self) -> u8 {
        self.priority
    }
    fn weight(&self) -> u32 {
        self.weight
    }
    fn head_len(&self) -> Option<usize> {
        self.waiting().map(|h| h.0)
    }
    fn head_order(&self) -> Option<u64> {
        self.waiting().map(|h| h.1)
    }
}

/// One member's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// Which member.
    pub member: MemberId,
    /// Its priority and weight.
    pub priority: u8,
    /// At least 1.
    pub weight: u32,
    /// Frames sent over the link.
    pub frames: u64,
    /// Bytes sent over the link.
    pub bytes: u64,
    /// Offered frames replaced at the output before their turn came.
    pub replaced: u64,
    /// Whether suppression refuses it now.
    pub suppressed: bool,
    /// Its own rate, bytes per second.
    pub max_rate: Option<u64>,
}

/// Outputs sharing one path. See the module docs.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    sched: AnyScheduler,
    members: Vec<Member>,
    next_member: u64,
    next_order: u64,
    /// The link's rate, if it has one.
    bucket: Option<Bucket>,
}

impl Link {
    /// A link with no members.
    pub fn new(config: LinkConfig) -> Result<Link, RelayError> {
        config.scheduler.validate()?;
        if config.max_rate == Some(0) {
            return Err(RelayError::InvalidConfig("a link's max rate is zero"));
        }
        Ok(Link {
            sched: AnyScheduler::new(config.scheduler),
            bucket: config.max_rate.map(|r| Bucket::new(r, config.effective_burst())),
            config,
            members: Vec::new(),
            next_member: 0,
            next_order: 0,
        })
    }

    /// Its settings.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Adds an output with this priority and weight (at least 1).
    pub fn add(&mut self, priority: u8, weight: u32) -> MemberId {
        let id = MemberId(self.next_member);
        self.next_member += 1;
        self.members.push(Member {
            id,
            priority,
            weight: weight.max(1),
            head: None,
            bucket: None,
            eligible: true,
            frames: 0,
            bytes: 0,
            replaced: 0,
        });
        self.sched.lane_added(&self.members);
        id
    }

    /// Gives `member` a rate of its own in bytes per second (none: only the
    /// link's), with a bucket of 50 ms at that rate, at least 16 KiB.
    pub fn set_rate(&mut self, member: MemberId, max_rate: Option<u64>) {
        if let Some(i) = self.index(member) {
            self.members[i].bucket = max_rate.filter(|r| *r > 0).map(|r| Bucket::new(r, default_burst(r)));
        }
    }

    /// Removes a member (unknown ones are ignored).
    pub fn remove(&mut self, member: MemberId) {
        if let Some(i) = self.index(member) {
            self.members.remove(i);
            Scheduler::<Member>::lane_removed(&mut self.sched, i);
        }
    }

    /// Members present.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no member is present.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn index(&self, member: MemberId) -> Option<usize> {
        self.members.iter().position(|m| m.id == member)
    }

    /// `member`'s output has a frame of `len` bytes ready; `tag` names that
    /// frame for the driver (a different tag with no grant in between means
    /// the earlier frame was replaced). Offering the same frame again only
    /// updates its length.
    pub fn offer(&mut self, member: MemberId, len: usize, tag: u64, now: Instant) -> Offer {
        let Some(i) = self.index(member) else {
            return Offer::Waiting;
        };
        match self.members[i].head {
            Some((_, order, t)) if t == tag => {
                self.members[i].head = Some((len, order, tag));
                return Offer::Waiting;
            }
            Some(_) => {
                self.members[i].replaced += 1;
                Scheduler::<Member>::register_drop(&mut self.sched, i, now);
            }
            None => {}
        }
        if !Scheduler::<Member>::admit(&mut self.sched, i, now) {
            self.members[i].head = None;
            return Offer::Suppressed;
        }
        let order = self.next_order;
        self.next_order += 1;
        self.members[i].head = Some((len, order, tag));
        Offer::Waiting
    }

    /// `member` has nothing ready any more.
    pub fn withdraw(&mut self, member: MemberId) {
        if let Some(i) = self.index(member) {
            self.members[i].head = None;
        }
    }

    /// The next grant, or when to ask again.
    pub fn poll(&mut self, now: Instant) -> LinkPoll {
        if self.members.iter().all(|m| m.head.is_none()) {
            return LinkPoll::Idle;
        }
        if let Some(b) = &mut self.bucket {
            b.refill(now);
            if b.in_debt() {
                return LinkPoll::Wait(b.repaid_at(now));
            }
        }
        // Members held back by their own rate sit this pick out.
        let mut next_eligible: Option<Instant> = None;
        for m in &mut self.members {
            m.eligible = match &mut m.bucket {
                None => true,
                Some(b) => {
                    b.refill(now);
                    if b.in_debt() && m.head.is_some() {
                        let at = b.repaid_at(now);
                        next_eligible = Some(next_eligible.map_or(at, |n| n.min(at)));
                    }
                    !b.in_debt()
                }
            };
        }
        let Some(i) = self.sched.pick(&self.members, now) else {
            return match next_eligible {
                Some(at) => LinkPoll::Wait(at),
                None => LinkPoll::Idle,
            };
        };
        let Some((len, _, _)) = self.members[i].waiting() else {
            return LinkPoll::Idle;
        };
        // The scheduler hears of the send while the member still shows a
        // frame: an output's stream goes on, and its next frame is offered
        // as soon as its writer is back. (Shown empty, DRR would take back
        // the member's unused credit at every frame, and shares would
        // follow frame counts instead of bytes.)
        self.sched.register_send(&self.members, i, len, now);
        let m = &mut self.members[i];
        m.head = None;
        if let Some(b) = &mut m.bucket {
            b.take(len);
        }
        if let Some(b) = &mut self.bucket {
            b.take(len);
        }
        LinkPoll::Grant {
            member: m.id,
            charged: len,
        }
    }

    /// The frame granted to `member` (for which `charged` bytes were
    /// taken) went out with `actual` bytes; 0 if there was none after all.
    pub fn sent(&mut self, member: MemberId, charged: usize, actual: usize) {
        let back = charged as f64 - actual as f64;
        if let Some(b) = &mut self.bucket {
            b.give_back(back);
        }
        if let Some(i) = self.index(member) {
            let m = &mut self.members[i];
            if let Some(b) = &mut m.bucket {
                b.give_back(back);
            }
            if actual > 0 {
                m.frames += 1;
                m.bytes += actual as u64;
            }
        }
    }

    /// Every member's counters.
    pub fn snapshot(&self) -> Vec<MemberSnapshot> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| MemberSnapshot {
                member: m.id,
                priority: m.priority,
                weight: m.weight,
                frames: m.frames,
                bytes: m.bytes,
                replaced: m.replaced,
                suppressed: Scheduler::<Member>::is_suppressed(&self.sched, i),
                max_rate: m.bucket.as_ref().map(|b| b.rate as u64),
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
