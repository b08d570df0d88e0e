//! The search for framewire's sustained source rate, apart from the runs
//! it asks for: given what each probe delivered, the next rate to try.

/// Loss a paced run may show and still count as sustained, %.
pub(super) const SUSTAINED_LOSS_PCT: f64 = 2.0;

/// Probes after the unpaced one, at most.
pub(super) const MAX_PROBES: usize = 6;

/// The search stops once the lowest rate that failed is within this
/// factor of the highest that held.
const RESOLUTION: f64 = 1.05;

/// A bisection for the highest source rate the subscribers keep up with.
///
/// It starts at the rate the subscribers received with the source
/// unpaced, raises by a quarter while probes hold and bisects between the
/// highest held and the lowest failed rate once both are known. A probe
/// that fails before any held steps down to just under what it delivered,
/// but never by more than a quarter: an overloaded relay delivers less than
/// it can sustain (it spends CPU on frames it then drops), so its delivered
/// rate alone would send the search far too low.
#[derive(Debug, Clone)]
pub(super) struct RateSearch {
    next: f64,
    good: Option<f64>,
    bad: Option<f64>,
    probes: usize,
}

impl RateSearch {
    /// A search after an unpaced probe delivered `unpaced` frames/s per
    /// subscriber.
    pub(super) fn new(unpaced: f64) -> RateSearch {
        RateSearch {
            next: if unpaced.is_finite() { unpaced.max(10.0) } else { 10.0 },
            good: None,
            bad: None,
            probes: 0,
        }
    }

    /// The rate to probe next, or `None` when the search is done.
    pub(super) fn next(&self) -> Option<f64> {
        let close = self.good.zip(self.bad).is_some_and(|(g, b)| b / g < RESOLUTION);
        (self.probes < MAX_PROBES && !close).then_some(self.next)
    }

    /// Whether a probe at `rate` that delivered `delivered` frames/s per
    /// subscriber and lost `lost_pct` % of the frames kept up.
    pub(super) fn held(rate: f64, delivered: f64, lost_pct: f64) -> bool {
        lost_pct <= SUSTAINED_LOSS_PCT && delivered >= rate * 0.9
    }

    /// Records a probe's result; returns whether it held.
    pub(super) fn record(&mut self, rate: f64, delivered: f64, lost_pct: f64) -> bool {
        self.probes += 1;
        let ok = Self::held(rate, delivered, lost_pct);
        if ok {
            let g = self.good.map_or(rate, |g| g.max(rate));
            self.good = Some(g);
            self.next = self.bad.map_or(g * 1.25, |b| (g + b) / 2.0);
        } else {
            let b = self.bad.map_or(rate, |b| b.min(rate));
            self.bad = Some(b);
            self.next = match self.good {
                Some(g) => (g + b) / 2.0,
                None => (delivered.min(rate) * 0.95).max(rate * 0.75).max(10.0),
            };
        }
        ok
    }

    /// The rate for the measured run: the highest that held, else the
    /// last step down.
    pub(super) fn rate(&self) -> f64 {
        self.good.unwrap_or(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline that sustains `cap` frames/s and, above it, delivers
    /// less the harder it is pushed (as a relay dropping frames does).
    fn probe(cap: f64, rate: f64) -> (f64, f64) {
        if rate <= cap {
            (rate, 0.3)
        } else {
            let delivered = (cap - (rate - cap) * 0.6).max(cap * 0.3);
            (delivered, 100.0 * (1.0 - delivered / rate))
        }
    }

    fn search(cap: f64, unpaced: f64) -> (f64, usize) {
        let mut s = RateSearch::new(unpaced);
        let mut n = 0;
        while let Some(rate) = s.next() {
            let (d, l) = probe(cap, rate);
            s.record(rate, d, l);
            n += 1;
        }
        (s.rate(), n)
    }

    #[test]
    fn finds_the_sustained_rate_within_its_resolution() {
        // The unpaced probe may deliver less than the pipeline sustains
        // (overload) or, with a bursty source, a little more.
        for cap in [300.0, 4000.0, 7000.0, 10000.0] {
            for f in [0.5, 0.7, 0.85, 1.0, 1.1, 1.3] {
                let (rate, n) = search(cap, cap * f);
                assert!(n <= MAX_PROBES);
                // Just above `cap` the loss is still within the limit.
                assert!(rate <= cap * 1.03, "cap {cap} unpaced x{f}: {rate} is above what holds");
                assert!(
                    rate >= cap * 0.93,
                    "cap {cap} unpaced x{f}: {rate} ({n} probes) is far below"
                );
            }
        }
    }

    #[test]
    fn a_failing_probe_steps_down_at_most_a_quarter() {
        let mut s = RateSearch::new(8000.0);
        assert_eq!(s.next(), Some(8000.0));
        // Overloaded: delivered far less than sent.
        assert!(!s.record(8000.0, 2000.0, 75.0));
        assert_eq!(s.next(), Some(6000.0));
        // Just over: steps to just under what it delivered.
        assert!(!s.record(6000.0, 5800.0, 3.3));
        assert_eq!(s.next(), Some(5800.0 * 0.95));
        assert!(s.record(5510.0, 5509.0, 0.0));
        assert_eq!(s.next(), Some((5510.0 + 6000.0) / 2.0));
        assert_eq!(s.rate(), 5510.0);
    }

    #[test]
    fn stops_when_bracketed_and_never_held_falls_back_to_the_last_step() {
        let mut s = RateSearch::new(1000.0);
        assert!(s.record(1000.0, 1000.0, 0.0));
        assert!(!s.record(1250.0, 1040.0, 16.0));
        assert!(!s.record(1125.0, 1060.0, 5.0));
        assert!(s.record(1062.5, 1062.0, 1.0));
        assert!(!s.record(1093.75, 1080.0, 2.5));
        // 1093.75 / 1062.5 < 1.05: done.
        assert_eq!(s.next(), None);
        assert_eq!(s.rate(), 1062.5);

        let mut s = RateSearch::new(100.0);
        while let Some(r) = s.next() {
            s.record(r, r * 0.2, 80.0);
        }
        assert!(s.rate() < 100.0 * 0.75f64.powi(5));
        assert!(s.rate() >= 10.0);
    }

    #[test]
    fn a_probe_that_lost_more_than_the_limit_or_fell_short_does_not_hold() {
        assert!(RateSearch::held(1000.0, 990.0, 2.0));
        assert!(!RateSearch::held(1000.0, 990.0, 2.1));
        assert!(!RateSearch::held(1000.0, 899.0, 0.0));
    }
}
