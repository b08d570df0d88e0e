//! Cutting an Annex B byte stream into access units.
//!
//! An access unit ends where the next one begins, so one is complete only
//! when the first NAL unit of the next has arrived: a delimiter (AUD), a
//! parameter set or SEI after picture data, or the first slice of another
//! picture (`first_mb_in_slice == 0`; H.265 `first_slice_segment_in_pic_flag`),
//! as H.264 §7.4.1.2.3 and H.265 §7.4.2.4.4 say. With delimiters in the
//! stream (ffmpeg's `h264_metadata=aud=insert`) every boundary is exact.
//! [`AuSplitter::finish`] gives the last one at the end of the stream.

use bytes::{Bytes, BytesMut};

use super::{Codec, NalKind, find_start};

/// Counters of what the splitter returned and threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitterStats {
    /// Access units returned.
    pub units: u64,
    /// Bytes skipped before the first start code.
    pub skipped_bytes: u64,
    /// Access units dropped: over the size limit, or without picture data.
    pub discarded: u64,
}

/// Splits an Annex B byte stream into access units.
#[derive(Debug)]
pub struct AuSplitter {
    codec: Codec,
    /// The current access unit from its first byte, then what follows.
    buf: BytesMut,
    /// Where the search for the next start code resumes.
    scan: usize,
    /// Whether `buf` starts at an access unit (the first start code seen).
    synced: bool,
    /// The current access unit has picture data.
    has_slice: bool,
    max_unit: usize,
    stats: SplitterStats,
}

impl AuSplitter {
    /// A splitter dropping access units larger than `max_unit` bytes.
    pub fn new(codec: Codec, max_unit: usize) -> AuSplitter {
        AuSplitter {
            codec,
            buf: BytesMut::new(),
            scan: 0,
            synced: false,
            has_slice: false,
            max_unit,
            stats: SplitterStats::default(),
        }
    }

    /// Appends bytes of the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// What was returned and thrown away so far.
    pub fn stats(&self) -> SplitterStats {
        self.stats
    }

    /// Drops any partial access unit (the stream was cut off).
    pub fn reset(&mut self) {
        if self.has_slice {
            self.stats.discarded += 1;
        }
        self.buf.clear();
        self.scan = 0;
        self.synced = false;
        self.has_slice = false;
    }

    /// The next complete access unit, if one is.
    pub fn next_unit(&mut self) -> Option<Bytes> {
        // Bytes a NAL unit must show past its start code to be classified.
        let header = match self.codec {
            Codec::H264 => 2,
            Codec::H265 => 3,
        };
        loop {
            let Some((at, body)) = find_start(&self.buf, self.scan) else {
                // Keep two bytes: a start code may straddle the next push
                // (three before the first: a 4-byte start code's zero).
                self.scan = self.buf.len().saturating_sub(2).max(self.scan);
                if !self.synced {
                    self.skip(self.buf.len().saturating_sub(3));
                } else if self.buf.len() > self.max_unit {
                    self.stats.discarded += 1;
                    self.buf.clear();
                    self.scan = 0;
                    self.synced = false;
                    self.has_slice = false;
                }
                return None;
            };
            if body + header > self.buf.len() {
                self.scan = at;
                return None;
            }
            // A 4-byte start code's leading zero belongs to this NAL unit.
            let start = if at > 0 && self.buf[at - 1] == 0 { at - 1 } else { at };
            if !self.synced {
                self.skip(start);
                self.synced = true;
                self.scan = body - start;
                self.note(self.scan);
                continue;
            }
            let nal = &self.buf[body..];
            let kind = self.codec.kind(nal);
            // Nothing before picture data ends a unit: parameter sets ahead
            // of a delimiter (a stream's header) stay with the picture.
            let begins = match kind {
                Some(NalKind::Aud | NalKind::Vps | NalKind::Sps | NalKind::Pps | NalKind::Sei) => self.has_slice,
                Some(NalKind::KeySlice | NalKind::Slice) => self.has_slice && self.codec.first_slice(nal),
                _ => false,
            };
            if begins && start > 0 {
                let unit = self.buf.split_to(start).freeze();
                let had_slice = self.has_slice;
                self.has_slice = false;
                self.scan = body - start;
                self.note(self.scan);
                if unit.len() > self.max_unit || !had_slice {
                    self.stats.discarded += 1;
                    continue;
                }
                self.stats.units += 1;
                return Some(unit);
            }
            self.scan = body;
            self.note(body);
        }
    }

    /// The last access unit, at the end of the stream.
    pub fn finish(&mut self) -> Option<Bytes> {
        let unit = self.next_unit();
        if unit.is_some() {
            return unit;
        }
        let rest = std::mem::take(&mut self.buf).freeze();
        let had = std::mem::replace(&mut self.has_slice, false);
        self.scan = 0;
        self.synced = false;
        if had && rest.len() <= self.max_unit {
            self.stats.units += 1;
            Some(rest)
        } else {
            if had {
                self.stats.discarded += 1;
            }
            None
        }
    }

    /// Drops `n` bytes of garbage before the first start code.
    fn skip(&mut self, n: usize) {
        if n > 0 {
            let _ = self.buf.split_to(n);
            self.stats.skipped_bytes += n as u64;
            self.scan -= n.min(self.scan);
        }
    }

    /// Notes the kind of the NAL unit starting at `body` in the current
    /// access unit.
    fn note(&mut self, body: usize) {
        if self.codec.kind(&self.buf[body..]).is_some_and(NalKind::is_slice) {
            self.has_slice = true;
        }
    }
}
