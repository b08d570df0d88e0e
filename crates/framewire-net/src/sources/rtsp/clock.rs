//! Camera time onto the node's clock, without I/O.
//!
//! A frame's RTP timestamp says when the camera took it, in ticks of the
//! stream's clock (90 kHz for video) from an arbitrary start. The map
//! takes the frame that arrived soonest after its capture as the anchor:
//! capture time = anchor + ticks since the anchor's. A frame can never be
//! captured after it arrived, so one that would be moves the anchor back
//! (the mapping then follows the quickest path from camera to node); a
//! mapping that falls behind the node's clock by more than [`MAX_LAG`]
//! (a camera clock running slow, a camera restarted, a long stall) starts
//! over at the frame's arrival.

/// How far mapped times may fall behind arrival before the map starts over.
pub(crate) const MAX_LAG_NS: u64 = 1_000_000_000;

/// The mapping of one session's RTP timestamps.
#[derive(Debug, Default, Clone)]
pub(crate) struct CameraClock {
    /// (ticks, node time) of the anchor.
    anchor: Option<(i64, u64)>,
    /// Times the map started over after the first.
    pub(crate) restarts: u64,
}

impl CameraClock {
    /// The capture time, on the node's clock in nanoseconds, of a frame
    /// with `ticks` at `rate` Hz that arrived at `arrival_ns`.
    pub(crate) fn map(&mut self, ticks: i64, rate: u32, arrival_ns: u64) -> u64 {
        let rate = i128::from(rate.max(1));
        let Some((t0, n0)) = self.anchor else {
            self.anchor = Some((ticks, arrival_ns));
            return arrival_ns;
        };
        let offset = (i128::from(ticks) - i128::from(t0)) * 1_000_000_000 / rate;
        let mapped = i128::from(n0) + offset;
        let arrival = i128::from(arrival_ns);
        if mapped > arrival {
            // Arrived sooner after capture than the anchor did: that is
            // the better anchor.
            self.anchor = Some((ticks, arrival_ns));
            return arrival_ns;
        }
        if arrival - mapped > i128::from(MAX_LAG_NS) {
            self.anchor = Some((ticks, arrival_ns));
            self.restarts += 1;
            return arrival_ns;
        }
        u64::try_from(mapped).unwrap_or(arrival_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn frames_keep_the_cameras_spacing_whatever_the_jitter() {
        let mut c = CameraClock::default();
        let base = 5_000 * MS;
        // 30 fps at 90 kHz (3000 ticks a frame), arriving 2..17 ms late.
        let jitter = [7, 2, 15, 9, 17, 3, 11];
        let mut out = Vec::new();
        for (i, j) in jitter.iter().enumerate() {
            let i64i = i64::try_from(i).unwrap();
            let capture = base + u64::try_from(i).unwrap() * 100 * MS / 3;
            out.push(c.map(1_000 + i64i * 3000, 90_000, capture + j * MS));
        }
        // The second frame arrived 2 ms late, the soonest: it is the
        // anchor from then on, and every later frame is 2 ms after capture.
        for (i, t) in out.iter().enumerate().skip(1) {
            let capture = base + u64::try_from(i).unwrap() * 100 * MS / 3;
            assert!(t.abs_diff(capture + 2 * MS) <= 1, "frame {i}: {t} vs {capture}");
        }
        assert_eq!(c.restarts, 0);
    }

    #[test]
    fn a_map_that_falls_behind_starts_over_at_arrival() {
        let mut c = CameraClock::default();
        assert_eq!(c.map(0, 90_000, 1_000 * MS), 1_000 * MS);
        // The camera says 1 s passed; 2.5 s did (it stalled, or its clock
        // is slow): the frame is mapped to its arrival.
        assert_eq!(c.map(90_000, 90_000, 3_500 * MS), 3_500 * MS);
        assert_eq!(c.restarts, 1);
        // And the next frame follows from there.
        assert_eq!(c.map(93_000, 90_000, 3_540 * MS), 3_500 * MS + 100 * MS / 3);
        // A timestamp that jumps backwards by much also starts over.
        assert_eq!(c.map(-900_000, 90_000, 3_600 * MS), 3_600 * MS);
        assert_eq!(c.restarts, 2);
    }
}
