//! The supervisor's state machine: which node processes should run, which
//! do, when a crashed one starts again and when one has crashed too often.
//! Sans-IO: it is told what happened and `now`, and answers what to do
//! (start, ask to stop, kill) and when to ask it next; the driver
//! (`super::run`) owns the processes.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::host::{NodeEntry, Policy, Restart};

/// What the driver does for the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the node process of this entry.
    Start(NodeEntry),
    /// Ask it to stop (SIGTERM: a node closes its archives and sinks).
    Term { name: String, pid: u32 },
    /// It did not stop within the grace: SIGKILL.
    Kill { name: String, pid: u32 },
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// A start is due at this time.
    Waiting {
        until: Instant,
    },
    /// Asked of the driver; it says `started` or `start_failed`.
    Starting,
    Running {
        pid: u32,
        since: Instant,
    },
    /// Asked to stop; killed at `deadline`. `then`: start again after.
    Stopping {
        pid: u32,
        deadline: Instant,
        killed: bool,
    },
    /// Ended and not to be started again (by policy, or failed).
    Stopped,
    Failed {
        reason: String,
    },
}

#[derive(Debug)]
struct Child {
    entry: NodeEntry,
    state: State,
    restarts: u32,
    /// When it ended, over the crash-loop window.
    exits: VecDeque<Instant>,
    last_exit: Option<String>,
    /// Its entry changed while it ran: start the new one once it ended.
    replacement: Option<NodeEntry>,
    /// No longer listed: forget it once it ended.
    removed: bool,
}

impl Child {
    /// SIGTERM now, SIGKILL at `deadline` if it has not ended.
    fn ask_to_stop(&mut self, name: &str, pid: u32, deadline: Instant) -> Action {
        self.state = State::Stopping {
            pid,
            deadline,
            killed: false,
        };
        Action::Term {
            name: name.to_owned(),
            pid,
        }
    }
}

/// One node's line of `framewire up --status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildStatus {
    pub name: String,
    /// `running`, `starting`, `restarting`, `stopping`, `stopped`, `failed`.
    pub state: &'static str,
    pub pid: Option<u32>,
    /// Seconds since it started, while running.
    pub uptime_s: Option<f64>,
    pub restarts: u32,
    /// How it last ended, and the last thing it said.
    pub last_exit: Option<String>,
    /// Why it is failed.
    pub reason: Option<String>,
}

/// The supervisor's view of a host's nodes.
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    children: BTreeMap<String, Child>,
    stopping_all: bool,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        Supervisor {
            policy,
            children: BTreeMap::new(),
            stopping_all: false,
        }
    }

    /// The host's nodes as listed now (at start, and at every reload): new
    /// ones start, removed ones stop, changed ones stop and start again,
    /// unchanged ones are left alone (a failed one is tried again).
    pub fn set_entries(&mut self, entries: &[NodeEntry], policy: Policy, now: Instant) -> Vec<Action> {
        self.policy = policy;
        let mut actions = Vec::new();
        for (name, c) in &mut self.children {
            match entries.iter().find(|e| &e.name == name) {
                None => {
                    c.removed = true;
                    c.replacement = None;
                }
                Some(e) if *e != c.entry => {
                    c.replacement = Some(e.clone());
                }
                Some(_) => {
                    if matches!(c.state, State::Failed { .. }) {
                        c.state = State::Waiting { until: now };
                        c.exits.clear();
                    }
                }
            }
        }
        for e in entries {
            self.children.entry(e.name.clone()).or_insert_with(|| Child {
                entry: e.clone(),
                state: State::Waiting { until: now },
                restarts: 0,
                exits: VecDeque::new(),
                last_exit: None,
                replacement: None,
                removed: false,
            });
        }
        let grace = self.policy.grace;
        for (name, c) in &mut self.children {
            if !(c.removed || c.replacement.is_some()) {
                continue;
            }
            match c.state {
                State::Running { pid, .. } => actions.push(c.ask_to_stop(name, pid, now + grace)),
                State::Stopping { .. } => {}
                _ => {
                    // Not running: take the change at once.
                    if let Some(e) = c.replacement.take() {
                        c.entry = e;
                        c.state = State::Waiting { until: now };
                        c.exits.clear();
                    } else {
                        c.state = State::Stopped;
                    }
                }
            }
        }
        self.children.retain(|_, c| !(c.removed && c.state == State::Stopped));
        actions.extend(self.poll(now));
        actions
    }

    /// The driver started it.
    pub fn started(&mut self, name: &str, pid: u32, now: Instant) {
        if let Some(c) = self.children.get_mut(name) {
            c.state = State::Running { pid, since: now };
        }
    }

    /// The driver could not start it (the program is missing, say).
    pub fn start_failed(&mut self, name: &str, why: &str, now: Instant) {
        self.ended(name, format!("could not start: {why}"), false, now);
    }

    /// Its process ended; `said`: its last line on stderr.
    pub fn exited(&mut self, name: &str, exit: &Exit, said: Option<&str>, now: Instant) {
        let mut how = exit.to_string();
        if let Some(s) = said.filter(|s| !s.is_empty()) {
            how.push_str(&format!(": {s}"));
        }
        self.ended(name, how, exit.success(), now);
    }

    fn ended(&mut self, name: &str, how: String, success: bool, now: Instant) {
        let policy = self.policy;
        let stopping_all = self.stopping_all;
        let Some(c) = self.children.get_mut(name) else { return };
        let asked = matches!(c.state, State::Stopping { .. });
        c.last_exit = Some(how.clone());
        if c.removed || stopping_all {
            c.state = State::Stopped;
        } else if let Some(e) = c.replacement.take() {
            c.entry = e;
            c.exits.clear();
            c.state = State::Waiting { until: now };
        } else if asked || (success && c.entry.restart != Restart::Always) || c.entry.restart == Restart::Never {
            c.state = State::Stopped;
        } else {
            while c
                .exits
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > policy.window)
            {
                c.exits.pop_front();
            }
            c.exits.push_back(now);
            let n = u32::try_from(c.exits.len()).unwrap_or(u32::MAX);
            if n >= policy.crash_limit {
                c.state = State::Failed {
                    reason: format!("ended {n} times within {} s; last: {how}", policy.window.as_secs()),
                };
            } else {
                let backoff = policy
                    .backoff
                    .saturating_mul(1 << (n - 1).min(16))
                    .min(policy.max_backoff);
                c.state = State::Waiting { until: now + backoff };
                c.restarts += 1;
            }
        }
        self.children.retain(|_, c| !(c.removed && c.state == State::Stopped));
    }

    /// Stop every node (SIGTERM to the supervisor).
    pub fn stop_all(&mut self, now: Instant) -> Vec<Action> {
        self.stopping_all = true;
        let grace = self.policy.grace;
        let mut actions = Vec::new();
        for (name, c) in &mut self.children {
            match c.state {
                State::Running { pid, .. } => actions.push(c.ask_to_stop(name, pid, now + grace)),
                State::Stopping { .. } => {}
                _ => c.state = State::Stopped,
            }
        }
        actions
    }

    /// Whether every node has ended after [`Supervisor::stop_all`].
    pub fn all_stopped(&self) -> bool {
        self.stopping_all
            && self
                .children
                .values()
                .all(|c| matches!(c.state, State::Stopped | State::Failed { .. }))
    }

    /// What is due now.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for (name, c) in &mut self.children {
            match &mut c.state {
                State::Waiting { until } if *until <= now && !self.stopping_all => {
                    c.state = State::Starting;
                    actions.push(Action::Start(c.entry.clone()));
                }
                State::Stopping { pid, deadline, killed } if *deadline <= now && !*killed => {
                    *killed = true;
                    actions.push(Action::Kill {
                        name: name.clone(),
                        pid: *pid,
                    });
                }
                _ => {}
            }
        }
        actions
    }

    /// When [`Supervisor::poll`] has something next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.children
            .values()
            .filter_map(|c| match c.state {
                State::Waiting { until } => Some(until),
                State::Stopping {
                    deadline,
                    killed: false,
                    ..
                } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// The pid of a running (or stopping) node.
    #[cfg(test)]
    fn pid(&self, name: &str) -> Option<u32> {
        match self.children.get(name)?.state {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Every node's line.
    pub fn status(&self, now: Instant) -> Vec<ChildStatus> {
        self.children
            .iter()
            .map(|(name, c)| {
                let (state, pid, uptime, reason) = match &c.state {
                    State::Waiting { .. } if c.restarts > 0 || c.last_exit.is_some() => {
                        ("restarting", None, None, None)
                    }
                    State::Waiting { .. } | State::Starting => ("starting", None, None, None),
                    State::Running { pid, since } => (
                        "running",
                        Some(*pid),
                        Some(now.saturating_duration_since(*since).as_secs_f64()),
                        None,
                    ),
                    State::Stopping { pid, .. } => ("stopping", Some(*pid), None, None),
                    State::Stopped => ("stopped", None, None, None),
                    State::Failed { reason } => ("failed", None, None, Some(reason.clone())),
                };
                ChildStatus {
                    name: name.clone(),
                    state,
                    pid,
                    uptime_s: uptime,
                    restarts: c.restarts,
                    last_exit: c.last_exit.clone(),
                    reason,
                }
            })
            .collect()
    }
}

/// Waits between polls when nothing is due sooner.
pub const IDLE: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, args: &[&str]) -> NodeEntry {
        NodeEntry {
            name: name.into(),
            config: None,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            restart: Restart::OnFailure,
        }
    }

    fn policy() -> Policy {
        Policy {
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            crash_limit: 5,
            window: Duration::from_secs(60),
            grace: Duration::from_secs(10),
        }
    }

    fn starts(a: &[Action]) -> Vec<&str> {
        a.iter()
            .filter_map(|a| match a {
                Action::Start(e) => Some(e.name.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_crash_restarts_with_growing_backoff_until_it_fails() {
        let t = Instant::now();
        let mut s = Supervisor::new(policy());
        assert_eq!(starts(&s.set_entries(&[entry("a", &[])], policy(), t)), ["a"]);
        s.started("a", 10, t);
        let mut now = t;
        let mut waits = Vec::new();
        for i in 0..4 {
            s.exited("a", &Exit::Signal(9), None, now);
            let due = s.next_deadline().unwrap();
            waits.push(due - now);
            assert!(s.poll(due - Duration::from_millis(1)).is_empty());
            assert_eq!(starts(&s.poll(due)), ["a"]);
            now = due;
            s.started("a", 11 + i, now);
        }
        assert_eq!(waits, [500, 1000, 2000, 4000].map(Duration::from_millis));
        assert_eq!(s.status(now)[0].restarts, 4);
        s.exited("a", &Exit::Code(3), Some("bad key"), now);
        let st = &s.status(now)[0];
        assert_eq!(st.state, "failed");
        assert!(
            st.reason
                .as_deref()
                .unwrap()
                .contains("ended 5 times within 60 s; last: exit code 3: bad key")
        );
        assert!(
            s.poll(now + Duration::from_secs(100)).is_empty(),
            "a failed node stays down"
        );
        // A reload tries it again.
        assert_eq!(starts(&s.set_entries(&[entry("a", &[])], policy(), now)), ["a"]);
    }

    #[test]
    fn exits_outside_the_window_are_forgotten_and_a_clean_exit_stays_down() {
        let t = Instant::now();
        let mut s = Supervisor::new(policy());
        s.set_entries(&[entry("a", &[])], policy(), t);
        for i in 0..10u32 {
            let now = t + Duration::from_secs(u64::from(i) * 61);
            s.started("a", i, now);
            s.exited("a", &Exit::Code(1), None, now);
            assert_eq!(s.next_deadline(), Some(now + Duration::from_millis(500)), "run {i}");
        }
        let now = t + Duration::from_secs(1000);
        s.started("a", 99, now);
        s.exited("a", &Exit::Code(0), None, now);
        assert_eq!(s.status(now)[0].state, "stopped");
        assert!(s.next_deadline().is_none());
    }

    #[test]
    fn a_reload_touches_only_what_changed() {
        let t = Instant::now();
        let mut s = Supervisor::new(policy());
        s.set_entries(&[entry("a", &[]), entry("b", &[]), entry("c", &[])], policy(), t);
        for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
            s.started(n, i as u32 + 1, t);
        }
        let acts = s.set_entries(&[entry("a", &[]), entry("b", &["--x"]), entry("d", &[])], policy(), t);
        assert!(
            acts.contains(&Action::Term {
                name: "b".into(),
                pid: 2
            }),
            "{acts:?}"
        );
        assert!(
            acts.contains(&Action::Term {
                name: "c".into(),
                pid: 3
            }),
            "{acts:?}"
        );
        assert_eq!(starts(&acts), ["d"]);
        assert_eq!(s.pid("a"), Some(1), "a is left alone");
        s.started("d", 4, t);
        // b ends: its new entry starts at once; c ends: it is gone.
        s.exited("b", &Exit::Code(0), None, t);
        let again = s.poll(t);
        assert!(
            matches!(&again[..], [Action::Start(e)] if e.name == "b" && e.args == ["--x"]),
            "{again:?}"
        );
        s.exited("c", &Exit::Signal(15), None, t);
        let names: Vec<String> = s.status(t).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["a", "b", "d"]);
        // One that does not stop within the grace is killed.
        let acts = s.set_entries(&[entry("a", &[]), entry("b", &["--x"])], policy(), t);
        assert_eq!(
            acts,
            [Action::Term {
                name: "d".into(),
                pid: 4
            }]
        );
        assert_eq!(
            s.poll(t + Duration::from_secs(10)),
            [Action::Kill {
                name: "d".into(),
                pid: 4
            }]
        );
        assert!(s.poll(t + Duration::from_secs(11)).is_empty(), "killed once");
    }

    #[test]
    fn stop_all_terms_every_node_and_starts_none() {
        let t = Instant::now();
        let mut s = Supervisor::new(policy());
        s.set_entries(&[entry("a", &[]), entry("b", &[])], policy(), t);
        s.started("a", 1, t);
        let acts = s.stop_all(t);
        assert_eq!(
            acts,
            [Action::Term {
                name: "a".into(),
                pid: 1
            }]
        );
        assert!(!s.all_stopped());
        s.exited("a", &Exit::Code(0), None, t);
        assert!(s.all_stopped());
        assert!(s.poll(t + Duration::from_secs(60)).is_empty());
    }
}
