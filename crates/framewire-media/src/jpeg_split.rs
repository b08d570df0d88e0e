//! Recovers whole JPEG images from a byte stream.
//!
//! Feed bytes as they come ([`JpegSplitter::push`]); take images out with
//! [`JpegSplitter::next_frame`]. The splitter walks the JPEG marker
//! structure (segment lengths, then the entropy-coded data of each scan up
//! to the next real marker) instead of searching for `FF D9` blindly, so an
//! EOI inside an embedded thumbnail or a stray byte pair inside a segment
//! does not cut an image short. It resumes where it stopped, so a large
//! image arriving in small pieces costs one pass over its bytes.
//!
//! Garbage before an SOI is skipped and counted. An SOI where a marker of
//! the current image was expected means that image was cut off (a device
//! split or dropped it): the partial image is discarded and counted, and
//! the new one starts. An image growing past the size limit is discarded
//! too. [`JpegSplitter::reset`] drops any partial image (after a stream is
//! interrupted).

use bytes::{Buf, Bytes, BytesMut};

/// Default largest image: 32 MiB.
pub const DEFAULT_MAX_IMAGE: usize = 32 * 1024 * 1024;

/// Counters of what the splitter threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitStats {
    /// Whole images returned.
    pub images: u64,
    /// Bytes skipped while looking for an SOI.
    pub skipped_bytes: u64,
    /// Images cut off by a new SOI, by a reset, or by the size limit.
    pub discarded_images: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for `FF D8`.
    Seek,
    /// Inside an image, at a marker boundary.
    Marker,
    /// Inside entropy-coded data after SOS.
    Scan,
}

/// Splits a byte stream into JPEG images.
#[derive(Debug)]
pub struct JpegSplitter {
    buf: BytesMut,
    /// Where parsing resumes in `buf`.
    pos: usize,
    state: State,
    max_image: usize,
    stats: SplitStats,
}

impl Default for JpegSplitter {
    fn default() -> Self {
        JpegSplitter::new(DEFAULT_MAX_IMAGE)
    }
}

impl JpegSplitter {
    /// A splitter refusing images larger than `max_image` bytes.
    pub fn new(max_image: usize) -> JpegSplitter {
        JpegSplitter {
            buf: BytesMut::new(),
            pos: 0,
            state: State::Seek,
            max_image,
            stats: SplitStats::default(),
        }
    }

    /// Appends bytes read from the source.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// What was returned and thrown away so far.
    pub fn stats(&self) -> SplitStats {
        self.stats
    }

    /// Bytes held (a partial image, or input not yet parsed).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops any partial image and returns to looking for an SOI.
    pub fn reset(&mut self) {
        if self.state != State::Seek {
            self.stats.discarded_images += 1;
        }
        self.buf.clear();
        self.pos = 0;
        self.state = State::Seek;
    }

    /// The next whole image, if one is complete.
    pub fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            match self.state {
                State::Seek => {
                    let found = find_soi(&self.buf);
                    let skip = found.unwrap_or(self.buf.len().saturating_sub(1));
                    self.stats.skipped_bytes += skip as u64;
                    self.buf.advance(skip);
                    found?;
                    self.pos = 2;
                    self.state = State::Marker;
                }
                State::Marker => {
                    let b = &self.buf[..];
                    // Fill bytes: any number of FF before the marker code.
                    let mut p = self.pos;
                    if p >= b.len() {
                        return self.wait();
                    }
                    if b[p] != 0xff {
                        // Not a marker where one must be: the image is corrupt.
                        self.discard_partial(p);
                        continue;
                    }
                    while p < b.len() && b[p] == 0xff {
                        p += 1;
                    }
                    let Some(&code) = b.get(p) else { return self.wait() };
                    match code {
                        0xd9 if p + 1 > self.max_image => {
                            self.discard_partial(p + 1);
                            continue;
                        }
                        0xd9 => {
                            let image = self.buf.split_to(p + 1).freeze();
                            self.pos = 0;
                            self.state = State::Seek;
                            self.stats.images += 1;
                            return Some(image);
                        }
                        0xd8 => {
                            // A new image began before this one ended.
                            self.discard_partial(p - 1);
                            continue;
                        }
                        0x01 | 0xd0..=0xd7 => self.pos = p + 1,
                        _ => {
                            let Some(len) = b.get(p + 1..p + 3) else {
                                return self.wait();
                            };
                            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                            if len < 2 {
                                self.discard_partial(p + 1);
                                continue;
                            }
                            let end = p + 1 + len;
                            if end > b.len() {
                                return self.wait();
                            }
                            self.pos = end;
                            if code == 0xda {
                                self.state = State::Scan;
                            }
                        }
                    }
                }
                State::Scan => {
                    let b = &self.buf[..];
                    let mut p = self.pos;
                    loop {
                        let Some(i) = memchr_ff(&b[p..]) else {
                            self.pos = b.len();
                            return self.wait();
                        };
                        p += i;
                        let Some(&next) = b.get(p + 1) else {
                            self.pos = p;
                            return self.wait();
                        };
                        match next {
                            0x00 | 0xd0..=0xd7 => p += 2, // stuffed byte or restart marker
                            0xff => p += 1,               // fill byte before a marker
                            _ => {
                                self.pos = p;
                                self.state = State::Marker;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Nothing complete yet: enforce the size limit, then wait for bytes.
    fn wait(&mut self) -> Option<Bytes> {
        if self.state != State::Seek && self.buf.len() > self.max_image {
            self.discard_partial(self.buf.len());
        }
        None
    }

    /// Drops the partial image up to `upto` (exclusive) and seeks again.
    fn discard_partial(&mut self, upto: usize) {
        self.stats.discarded_images += 1;
        self.buf.advance(upto.min(self.buf.len()));
        self.pos = 0;
        self.state = State::Seek;
    }
}

fn find_soi(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == [0xff, 0xd8])
}

fn memchr_ff(b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == 0xff)
}

/// Splits a whole buffer (a file of concatenated JPEGs) into images.
pub fn split_all(data: &[u8], max_image: usize) -> (Vec<Bytes>, SplitStats) {
    let mut s = JpegSplitter::new(max_image);
    s.push(data);
    let mut out = Vec::new();
    while let Some(f) = s.next_frame() {
        out.push(f);
    }
    if s.buffered() > 0 && s.state != State::Seek {
        s.stats.discarded_images += 1;
    }
    (out, s.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally valid JPEG-like image: SOI, APP0 with a payload that
    /// contains `FF D9`, SOS with entropy data holding stuffed bytes and a
    /// restart marker, EOI.
    fn image(tag: u8) -> Vec<u8> {
        let mut v = vec![0xff, 0xd8];
        v.extend([0xff, 0xe0, 0x00, 0x08, b'J', b'F', 0xff, 0xd9, 0x00, tag]);
        v.extend([0xff, 0xda, 0x00, 0x04, 0x01, 0x02]);
        v.extend([0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, tag, 0xff, 0xff, 0xd9]);
        v
    }

    #[test]
    fn concatenated_images_split_exactly_in_any_chunking() {
        let stream: Vec<u8> = [image(1), image(2), image(3)].concat();
        for chunk in [1, 2, 3, 5, 7, 64] {
            let mut s = JpegSplitter::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                s.push(piece);
                while let Some(f) = s.next_frame() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(got, vec![image(1), image(2), image(3)], "chunk {chunk}");
            assert_eq!(s.stats().discarded_images, 0);
        }
    }

    #[test]
    fn garbage_is_skipped_and_cut_images_are_discarded() {
        let mut stream = vec![0x00, 0x11, 0xff];
        let cut = image(9);
        stream.extend(&cut[..12]); // cut inside the first image
        stream.extend(image(4));
        let (imgs, stats) = split_all(&stream, DEFAULT_MAX_IMAGE);
        assert_eq!(imgs, vec![Bytes::from(image(4))]);
        assert_eq!(stats.skipped_bytes, 3);
        assert_eq!(stats.discarded_images, 1);
    }

    #[test]
    fn oversize_images_are_dropped() {
        let mut s = JpegSplitter::new(16);
        s.push(&image(1));
        assert_eq!(s.next_frame(), None);
        assert_eq!(s.stats().discarded_images, 1);
        s.push(&[0x00]);
        assert!(s.buffered() < 16);
    }

    #[test]
    fn reset_drops_a_partial_image() {
        let mut s = JpegSplitter::default();
        s.push(&image(1)[..10]);
        assert_eq!(s.next_frame(), None);
        s.reset();
        s.push(&image(2));
        assert_eq!(s.next_frame().unwrap().to_vec(), image(2));
        assert_eq!(s.stats().discarded_images, 1);
    }

    #[test]
    fn real_encoder_output_splits() {
        use framewire_codec::{EncodeSpec, Registry, testkit};
        let mut enc = Registry::builtin().encoder(&EncodeSpec::mjpeg(80)).unwrap();
        let a = enc.encode(&testkit::camera_like(64, 48, 1)).unwrap();
        let b = enc.encode(&testkit::camera_like(64, 48, 2)).unwrap();
        let (imgs, stats) = split_all(&[&a[..], &b[..]].concat(), DEFAULT_MAX_IMAGE);
        assert_eq!(imgs, vec![a, b]);
        assert_eq!(stats.images, 2);
    }
}
