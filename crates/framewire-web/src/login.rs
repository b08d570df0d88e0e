//! Logins that can be used neither to guess nor to exhaust the server.
//!
//! - Password checks (argon2id, 19 MiB each for a moment) run on a few
//!   threads of their own ([`Checker`]), fed by a short queue: however
//!   many logins arrive at once, at most `login_workers` hashes are in
//!   memory, and a login that finds the queue full is answered 429 at once.
//!   Dedicated threads also keep the hashes' memory in their own few
//!   allocator arenas, instead of one per thread of a large blocking pool.
//! - Failures count per user name and per address ([`Backoff`]): after a
//!   few free ones, each further failure locks that name and that address
//!   out for twice as long as the one before (up to a cap). While locked,
//!   a login is answered 429 with `Retry-After` and its password is not
//!   checked. A correct password after the window clears both counts.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::limits::WebLimits;

type Job = Box<dyn FnOnce() + Send>;

/// A few threads that run password hashing, behind a bounded queue.
#[derive(Debug)]
pub(crate) struct Checker {
    jobs: SyncSender<Job>,
}

/// The checker's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

impl Checker {
    pub(crate) fn new(workers: usize, queue: usize) -> Checker {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fw-password-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return, // the checker is gone
                        };
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-check thread");
            }
        }
        Checker { jobs }
    }

    /// Runs `f` on a checker thread; `Busy` when the queue is full.
    pub(crate) async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return Err(Busy),
        }
        rx.await.map_err(|_| Busy)
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    until: Option<Instant>,
    last: Instant,
}

/// Failure counts per key, bounded in size.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Count>,
}

/// Entries kept per table; beyond it the stalest one goes.
const TABLE_MAX: usize = 4096;
/// An entry untouched for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl<K: Hash + Eq + Clone> Table<K> {
    fn locked(&self, k: &K, now: Instant) -> Option<Duration> {
        let until = self.map.get(k)?.until?;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, k: &K, now: Instant, limits: &WebLimits) -> u32 {
        if self.map.len() >= TABLE_MAX && !self.map.contains_key(k) {
            self.map.retain(|_, c| now.duration_since(c.last) < FORGET_AFTER);
            if self.map.len() >= TABLE_MAX
                && let Some(stalest) = self.map.iter().min_by_key(|(_, c)| c.last).map(|(k, _)| k.clone())
            {
                self.map.remove(&stalest);
            }
        }
        let c = self.map.entry(k.clone()).or_insert(Count {
            failures: 0,
            until: None,
            last: now,
        });
        c.failures = c.failures.saturating_add(1);
        c.last = now;
        if c.failures > limits.login_free_failures {
            let doublings = (c.failures - limits.login_free_failures - 1).min(30);
            let wait = limits
                .login_backoff
                .saturating_mul(1u32 << doublings)
                .min(limits.login_backoff_max);
            c.until = Some(now + wait);
        }
        c.failures
    }

    fn clear(&mut self, k: &K) {
        self.map.remove(k);
    }
}

/// Failure counts per user name and per address.
#[derive(Debug)]
pub(crate) struct Backoff {
    limits: WebLimits,
    tables: Mutex<(Table<String>, Table<Option<IpAddr>>)>,
}

impl Backoff {
    pub(crate) fn new(limits: WebLimits) -> Backoff {
        Backoff {
            limits,
            tables: Mutex::new((Table { map: HashMap::new() }, Table { map: HashMap::new() })),
        }
    }

    /// How long `user` or `addr` is still locked out, if at all.
    pub(crate) fn locked(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let u = t.0.locked(&user.to_owned(), now);
        let a = t.1.locked(&addr, now);
        u.max(a)
    }

    /// Counts a wrong password; returns the failures of the name and of the address.
    pub(crate) fn fail(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> (u32, u32) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let u = t.0.fail(&user.to_owned(), now, &self.limits);
        let a = t.1.fail(&addr, now, &self.limits);
        (u, a)
    }

    /// A correct password: both counts start again.
    pub(crate) fn succeed(&self, user: &str, addr: Option<IpAddr>) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        t.0.clear(&user.to_owned());
        t.1.clear(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_out_with_doubling_waits_and_success_clears() {
        let limits = WebLimits::default();
        let b = Backoff::new(limits.clone());
        let ip: Option<IpAddr> = Some([10, 0, 0, 1].into());
        let t0 = Instant::now();
        for _ in 0..limits.login_free_failures {
            b.fail("ada", ip, t0);
        }
        assert_eq!(b.locked("ada", ip, t0), None, "the free failures lock nothing");
        b.fail("ada", ip, t0);
        assert_eq!(b.locked("ada", ip, t0), Some(Duration::from_secs(1)));
        // Another name from the same address is locked too, and the same
        // name from another address.
        assert!(b.locked("bob", ip, t0).is_some());
        assert!(b.locked("ada", None, t0).is_some());
        b.fail("ada", ip, t0 + Duration::from_secs(1));
        assert_eq!(
            b.locked("ada", ip, t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        for i in 0..40 {
            b.fail("ada", ip, t0 + Duration::from_secs(2 + i));
        }
        let now = t0 + Duration::from_secs(41);
        assert_eq!(b.locked("ada", ip, now), Some(limits.login_backoff_max), "capped");
        b.succeed("ada", ip);
        assert_eq!(b.locked("ada", ip, now), None);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let b = Backoff::new(WebLimits::default());
        let now = Instant::now();
        for i in 0..(TABLE_MAX + 100) {
            b.fail(&format!("user{i}"), None, now);
        }
        assert!(b.tables.lock().unwrap().0.map.len() <= TABLE_MAX);
    }

    #[tokio::test]
    async fn the_checker_runs_jobs_and_refuses_beyond_its_queue() {
        let c = std::sync::Arc::new(Checker::new(1, 1));
        assert_eq!(c.run(|| 2 + 2).await, Ok(4));
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        // One job holds the only worker; one waits in the queue; the third is refused.
        let c1 = c.clone();
        let first = tokio::spawn(async move { c1.run(move || hold_rx.recv().is_ok()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c2 = c.clone();
        let second = tokio::spawn(async move { c2.run(|| 1).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(c.run(|| 0).await, Err(Busy));
        hold_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(1));
    }
}
