//! The node's links: which [`Link`] engine a connection's writer asks
//! before it sends a frame (docs/relay.md, "Links").
//!
//! A connection no rule covers, or covered by an uncapped round-robin rule,
//! has no link: its writer takes one frame per output in turn, as it always
//! did. A rule with another scheduler and no rate gives each connection a
//! link of its own; a rule with a rate gives every connection it covers one
//! shared link, so the cap holds for all of them together.
//!
//! The engine is sans-IO; this module is its thin driver, shared by the
//! writers of the connections on the link. A writer offers its outputs'
//! next frames and takes the grants meant for it; a grant for another
//! writer's output wakes that writer. Nothing here waits: a writer whose
//! frames must wait for the rate sleeps until the instant the engine gave.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use framewire_relay::{Link, LinkConfig, LinkPoll, MemberId, Offer, SchedulerKind};
use tokio::sync::Notify;

use crate::config::{ConfigError, LinkPeer, LinkRule, rule_for};
use crate::transport::writer::Served;

/// The links of one node.
#[derive(Debug)]
pub(crate) struct Links {
    rules: Vec<LinkRule>,
    /// The shared link of each rule with a rate, by rule index.
    shared: HashMap<usize, Arc<LinkShare>>,
}

impl Links {
    /// The links these rules describe; a rule the engine refuses is an error.
    pub(crate) fn new(rules: &[LinkRule]) -> Result<Links, ConfigError> {
        let mut shared = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            let label = match r.peer {
                LinkPeer::Any => "*".to_owned(),
                LinkPeer::Addr(a) => a.to_string(),
            };
            let link = Link::new(r.link).map_err(|e| ConfigError::new(format!("link `{label}`: {e}")))?;
            if r.link.max_rate.is_some() {
                shared.insert(i, Arc::new(LinkShare::new(link, label)));
            }
        }
        Ok(Links {
            rules: rules.to_vec(),
            shared,
        })
    }

    /// The link a connection from `ip` writes through (none: plain turns).
    pub(crate) fn for_peer(&self, ip: IpAddr) -> Option<Arc<LinkShare>> {
        let (i, rule) = rule_for(&self.rules, ip)?;
        if let Some(s) = self.shared.get(&i) {
            return Some(s.clone());
        }
        if rule.link.scheduler == SchedulerKind::RoundRobin {
            return None;
        }
        let link = Link::new(rule.link).ok()?;
        Some(Arc::new(LinkShare::new(link, ip.to_string())))
    }
}

#[derive(Debug)]
struct State {
    link: Link,
    /// Whom to wake when a member is granted.
    wakers: HashMap<MemberId, Arc<Notify>>,
    /// Grants not yet taken by their writer, in grant order.
    granted: Vec<(MemberId, usize)>,
}

/// One link, shared by the writers of the connections on it.
#[derive(Debug)]
pub(crate) struct LinkShare {
    state: Mutex<State>,
    /// The rule's peer, for logs.
    pub(crate) label: String,
}

/// What one exchange with the link gave a writer.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// Members that may send now, in order, with the bytes charged.
    pub(crate) grants: Vec<(MemberId, usize)>,
    /// Members whose offered frame suppression refused.
    pub(crate) suppressed: Vec<MemberId>,
    /// When to ask again if nothing was granted.
    pub(crate) wait: Option<Instant>,
}

impl LinkShare {
    fn new(link: Link, label: String) -> LinkShare {
        LinkShare {
            state: Mutex::new(State {
                link,
                wakers: HashMap::new(),
                granted: Vec::new(),
            }),
            label,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A link of one connection that has none by its rules: round-robin,
    /// uncapped, there to hold its subscriptions to their own rates.
    pub(crate) fn plain() -> LinkShare {
        let link = Link::new(LinkConfig::default()).unwrap_or_else(|_| unreachable!("the default link is valid"));
        LinkShare::new(link, "own rates".to_owned())
    }

    /// Adds an output; `waker` is its writer's.
    pub(crate) fn join(&self, served: &Served, waker: Arc<Notify>) -> MemberId {
        let mut s = self.lock();
        let m = s.link.add(served.priority, u32::from(served.weight));
        if served.max_rate > 0 {
            s.link.set_rate(m, Some(served.max_rate));
        }
        s.wakers.insert(m, waker);
        m
    }

    /// Removes an output (a grant it did not take is given back).
    pub(crate) fn leave(&self, member: MemberId) {
        let mut s = self.lock();
        let State { link, granted, wakers } = &mut *s;
        granted.retain(|(m, charged)| {
            if *m == member {
                link.sent(member, *charged, 0);
            }
            *m != member
        });
        link.remove(member);
        wakers.remove(&member);
    }

    /// Offers the next frame (length and tag) of each of a writer's members,
    /// or withdraws those with none; lets the engine grant until it grants
    /// one of this writer's members (or has nothing more to grant now);
    /// returns this writer's grants and wakes the writers of the others.
    /// One own grant at a time: the writer comes back after writing it, so
    /// a frame that arrived meanwhile competes for the next turn, and a
    /// high-priority stream goes first even where only the socket limits
    /// the rate.
    pub(crate) fn exchange(&self, offers: &[(MemberId, Option<(usize, u64)>)], now: Instant) -> Exchange {
        let mut s = self.lock();
        let mine = |m: &MemberId| offers.iter().any(|(o, _)| o == m);
        let mut out = Exchange::default();
        // Grants given to this writer's members by others come first; their
        // frames go now, so they are not offered again.
        s.granted.retain(|(m, charged)| {
            let keep = !mine(m);
            if !keep {
                out.grants.push((*m, *charged));
            }
            keep
        });
        for &(m, head) in offers {
            if out.grants.iter().any(|(g, _)| *g == m) {
                continue;
            }
            match head {
                Some((len, tag)) => {
                    if s.link.offer(m, len, tag, now) == Offer::Suppressed {
                        out.suppressed.push(m);
                    }
                }
                None => s.link.withdraw(m),
            }
        }
        loop {
            match s.link.poll(now) {
                LinkPoll::Grant { member, charged } => {
                    if mine(&member) {
                        out.grants.push((member, charged));
                        break;
                    } else {
                        s.granted.push((member, charged));
                        if let Some(w) = s.wakers.get(&member) {
                            w.notify_one();
                        }
                    }
                }
                LinkPoll::Wait(at) => {
                    out.wait = Some(at);
                    break;
                }
                LinkPoll::Idle => break,
            }
        }
        out
    }

    /// A granted member's frame went out with `actual` bytes (0: none).
    pub(crate) fn sent(&self, member: MemberId, charged: usize, actual: usize) {
        self.lock().link.sent(member, charged, actual);
    }
}
