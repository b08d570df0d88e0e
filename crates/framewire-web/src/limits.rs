//! What one client, or all of them together, may hold of the web server:
//! connections, live streams (previews and MJPEG), and password checks.
//! docs/security.md has the table of these limits and their defaults.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The web server's limits. [`WebLimits::default`] gives the documented
/// defaults; the total connection cap is also held under half the
/// process's descriptor limit when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebLimits {
    /// Open connections in all [default: 1024].
    pub max_connections: usize,
    /// Open connections from one address [default: 128].
    pub max_connections_per_address: usize,
    /// Time a client has to send a whole request header; also how long a
    /// kept-alive connection may wait for its next request [default: 10 s].
    pub header_timeout: Duration,
    /// How long a response may wait for a client that does not read
    /// before the connection is closed [default: 30 s].
    pub write_stall_timeout: Duration,
    /// Live previews and MJPEG streams in all [default: 64].
    pub max_streams: usize,
    /// Live previews and MJPEG streams of one user [default: 16].
    pub max_streams_per_user: usize,
    /// Largest WebSocket message a client may send (they send nothing the
    /// server needs) [default: 4 KiB].
    pub max_ws_message: usize,
    /// Password checks running at once (each takes 19 MiB for a moment) [default: 2].
    pub login_workers: usize,
    /// Logins waiting for a worker; beyond this a login gets 429 [default: 16].
    pub login_queue: usize,
    /// Wrong passwords allowed (per user name and per address) before the
    /// backoff starts [default: 3].
    pub login_free_failures: u32,
    /// The first backoff; it doubles with every further failure [default: 1 s].
    pub login_backoff: Duration,
    /// The longest backoff [default: 5 min].
    pub login_backoff_max: Duration,
}

impl Default for WebLimits {
    fn default() -> WebLimits {
        WebLimits {
            max_connections: 1024,
            max_connections_per_address: 128,
            header_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(30),
            max_streams: 64,
            max_streams_per_user: 16,
            max_ws_message: 4096,
            login_workers: 2,
            login_queue: 16,
            login_free_failures: 3,
            login_backoff: Duration::from_secs(1),
            login_backoff_max: Duration::from_secs(300),
        }
    }
}

/// Counts held per key, with a cap per key and one in all. A [`Slot`]
/// gives its count back when dropped.
#[derive(Debug)]
pub(crate) struct Counter<K: std::hash::Hash + Eq + Clone> {
    total: AtomicUsize,
    max_total: usize,
    max_per_key: usize,
    per_key: Mutex<HashMap<K, usize>>,
}

/// Why a [`Counter`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The cap of all keys together.
    Total(usize),
    /// The cap of this key.
    Key(usize),
}

impl<K: std::hash::Hash + Eq + Clone + Send + 'static> Counter<K> {
    pub(crate) fn new(max_total: usize, max_per_key: usize) -> Arc<Counter<K>> {
        Arc::new(Counter {
            total: AtomicUsize::new(0),
            max_total,
            max_per_key,
            per_key: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one for `key`, or says which cap is reached.
    pub(crate) fn take(self: &Arc<Self>, key: K) -> Result<Slot<K>, Full> {
        let mut map = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(Full::Total(self.max_total));
        }
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= self.max_per_key {
            return Err(Full::Key(self.max_per_key));
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            counter: self.clone(),
            key: Some(key),
        })
    }

    /// How many are held in all.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn give_back(&self, key: &K) {
        let mut map = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                map.remove(key);
            }
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One held count of a [`Counter`].
#[derive(Debug)]
pub(crate) struct Slot<K: std::hash::Hash + Eq + Clone + Send + 'static> {
    counter: Arc<Counter<K>>,
    key: Option<K>,
}

impl<K: std::hash::Hash + Eq + Clone + Send + 'static> Drop for Slot<K> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.counter.give_back(&k);
        }
    }
}

/// Connections, by peer address.
pub(crate) type Connections = Counter<IpAddr>;
/// Live streams (previews, MJPEG), by user.
pub(crate) type Streams = Counter<String>;

/// The soft limit on open descriptors, if it can be read.
pub(crate) fn descriptor_limit() -> Option<usize> {
    let (soft, _hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    Some(usize::try_from(soft).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_caps_per_key_and_in_all_and_gives_back_on_drop() {
        let c: Arc<Counter<&str>> = Counter::new(3, 2);
        let a1 = c.take("a").unwrap();
        let _a2 = c.take("a").unwrap();
        assert_eq!(c.take("a").unwrap_err(), Full::Key(2));
        let _b1 = c.take("b").unwrap();
        assert_eq!(c.take("b").unwrap_err(), Full::Total(3));
        drop(a1);
        assert_eq!(c.total(), 2);
        let _b2 = c.take("b").unwrap();
        assert_eq!(c.take("c").unwrap_err(), Full::Total(3));
    }
}
