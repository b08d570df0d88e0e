//! The messages on the Unix socket, with no I/O. One SOCK_SEQPACKET packet
//! carries exactly one message; all integers are little-endian. See
//! `docs/shm.md` for the table.

/// `"FWSM"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FWSM");
/// Version of this socket protocol.
pub const VERSION: u16 = 1;
/// At most this many plane descriptors follow a frame.
pub const MAX_PLANES: usize = 4;
/// Largest message on the socket (a frame with four planes is 64 bytes).
pub const MAX_MESSAGE: usize = 128;

/// Producer → consumer: first message, `magic u32, version u16, consumer u16, max_held u16`.
pub const T_HELLO: u8 = 0x01;
/// Producer → consumer: `index u16, generation u32, size u64`, with one fd.
pub const T_BUFFER: u8 = 0x02;
/// Producer → consumer: a frame in a buffer the consumer has been given.
pub const T_FRAME: u8 = 0x03;
/// Producer → consumer: the stream ended cleanly.
pub const T_END: u8 = 0x04;
/// Consumer → producer: `index u16, generation u32`: the buffer is free again.
pub const T_RELEASE: u8 = 0x10;

/// One plane of a raw picture inside the frame bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plane {
    /// Byte offset of the plane from the start of the frame.
    pub offset: u32,
    /// Bytes per row.
    pub pitch: u32,
}

/// What travels with every frame (the frame header of the TCP protocol, plus planes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Source sequence number.
    pub sequence: u64,
    /// Capture time, CLOCK_REALTIME nanoseconds.
    pub timestamp_ns: u64,
    /// Frame flags (bit0 keyframe, bit1 discontinuity).
    pub flags: u32,
    /// Plane offsets and pitches for raw formats; empty otherwise.
    pub planes: Vec<Plane>,
}

/// A decoded socket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Greeting.
    Hello {
        /// Slot number the producer gave this consumer.
        consumer: u16,
        /// How many buffers the consumer may hold before it is skipped.
        max_held: u16,
    },
    /// A buffer's fd follows (in the ancillary data).
    Buffer {
        /// Pool index.
        index: u16,
        /// Bumped when the index is given a new memfd.
        generation: u32,
        /// Size of the memfd in bytes.
        size: u64,
    },
    /// A frame lies in buffer `index` at bytes `0..len`.
    Frame {
        /// Pool index.
        index: u16,
        /// Generation of the buffer at that index.
        generation: u32,
        /// Length of the frame bytes.
        len: u64,
        /// Frames this consumer was skipped for since its previous frame.
        lost: u64,
        /// Header.
        meta: FrameMeta,
    },
    /// The stream ended.
    End,
    /// Return of a buffer.
    Release {
        /// Pool index.
        index: u16,
        /// Generation the consumer was given.
        generation: u32,
    },
}

/// A message that does not parse: the peer is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad shm message: {0}")]
pub struct BadMessage(pub &'static str);

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], BadMessage> {
        if self.0.len() < N {
            return Err(BadMessage("short message"));
        }
        let (a, b) = self.0.split_at(N);
        self.0 = b;
        Ok(a.try_into().expect("length checked"))
    }
    fn u8(&mut self) -> Result<u8, BadMessage> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, BadMessage> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, BadMessage> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, BadMessage> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

impl Msg {
    /// Serialises the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        match self {
            Msg::Hello { consumer, max_held } => {
                b.push(T_HELLO);
                b.extend_from_slice(&MAGIC.to_le_bytes());
                b.extend_from_slice(&VERSION.to_le_bytes());
                b.extend_from_slice(&consumer.to_le_bytes());
                b.extend_from_slice(&max_held.to_le_bytes());
            }
            Msg::Buffer {
                index,
                generation,
                size,
            } => {
                b.push(T_BUFFER);
                b.extend_from_slice(&index.to_le_bytes());
                b.extend_from_slice(&generation.to_le_bytes());
                b.extend_from_slice(&size.to_le_bytes());
            }
            Msg::Frame {
                index,
                generation,
                len,
                lost,
                meta,
            } => {
                b.push(T_FRAME);
                b.extend_from_slice(&index.to_le_bytes());
                b.extend_from_slice(&generation.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&lost.to_le_bytes());
                b.extend_from_slice(&meta.sequence.to_le_bytes());
                b.extend_from_slice(&meta.timestamp_ns.to_le_bytes());
                b.extend_from_slice(&meta.flags.to_le_bytes());
                let n = meta.planes.len().min(MAX_PLANES);
                b.push(n as u8);
                for p in &meta.planes[..n] {
                    b.extend_from_slice(&p.offset.to_le_bytes());
                    b.extend_from_slice(&p.pitch.to_le_bytes());
                }
            }
            Msg::End => b.push(T_END),
            Msg::Release { index, generation } => {
                b.push(T_RELEASE);
                b.extend_from_slice(&index.to_le_bytes());
                b.extend_from_slice(&generation.to_le_bytes());
            }
        }
        b
    }

    /// Parses one packet. Trailing bytes are refused (a packet is one message).
    pub fn decode(packet: &[u8]) -> Result<Msg, BadMessage> {
        let mut r = Reader(packet);
        let msg = match r.u8()? {
            T_HELLO => {
                if r.u32()? != MAGIC {
                    return Err(BadMessage("bad magic"));
                }
                if r.u16()? != VERSION {
                    return Err(BadMessage("unsupported version"));
                }
                Msg::Hello {
                    consumer: r.u16()?,
                    max_held: r.u16()?,
                }
            }
            T_BUFFER => Msg::Buffer {
                index: r.u16()?,
                generation: r.u32()?,
                size: r.u64()?,
            },
            T_FRAME => {
                let index = r.u16()?;
                let generation = r.u32()?;
                let len = r.u64()?;
                let lost = r.u64()?;
                let sequence = r.u64()?;
                let timestamp_ns = r.u64()?;
                let flags = r.u32()?;
                let n = r.u8()? as usize;
                if n > MAX_PLANES {
                    return Err(BadMessage("too many planes"));
                }
                let mut planes = Vec::with_capacity(n);
                for _ in 0..n {
                    planes.push(Plane {
                        offset: r.u32()?,
                        pitch: r.u32()?,
                    });
                }
                Msg::Frame {
                    index,
                    generation,
                    len,
                    lost,
                    meta: FrameMeta {
                        sequence,
                        timestamp_ns,
                        flags,
                        planes,
                    },
                }
            }
            T_END => Msg::End,
            T_RELEASE => Msg::Release {
                index: r.u16()?,
                generation: r.u32()?,
            },
            _ => return Err(BadMessage("unknown message type")),
        };
        if !r.0.is_empty() {
            return Err(BadMessage("trailing bytes"));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_message() {
        let meta = FrameMeta {
            sequence: 7,
            timestamp_ns: 9,
            flags: 1,
            planes: vec![
                Plane { offset: 0, pitch: 7680 },
                Plane {
                    offset: 100,
                    pitch: 3840,
                },
            ],
        };
        for m in [
            Msg::Hello {
                consumer: 3,
                max_held: 4,
            },
            Msg::Buffer {
                index: 2,
                generation: 5,
                size: 8 << 20,
            },
            Msg::Frame {
                index: 1,
                generation: 2,
                len: 3,
                lost: 4,
                meta,
            },
            Msg::End,
            Msg::Release {
                index: 9,
                generation: 1,
            },
        ] {
            let b = m.encode();
            assert!(b.len() <= MAX_MESSAGE);
            assert_eq!(Msg::decode(&b).unwrap(), m);
            // Every strict prefix is refused, never a panic.
            for cut in 0..b.len() {
                if cut == 1 && b[0] == T_END {
                    continue;
                }
                assert!(Msg::decode(&b[..cut]).is_err() || cut == b.len());
            }
            let mut long = b.clone();
            long.push(0);
            assert!(Msg::decode(&long).is_err());
        }
    }

    #[test]
    fn refuses_garbage() {
        assert!(Msg::decode(&[0x7f]).is_err());
        assert!(Msg::decode(&[]).is_err());
        let mut hello = Msg::Hello {
            consumer: 0,
            max_held: 1,
        }
        .encode();
        hello[1] ^= 1;
        assert_eq!(Msg::decode(&hello), Err(BadMessage("bad magic")));
        let mut f = Msg::Frame {
            index: 0,
            generation: 0,
            len: 0,
            lost: 0,
            meta: FrameMeta::default(),
        }
        .encode();
        *f.last_mut().unwrap() = 5;
        assert_eq!(Msg::decode(&f), Err(BadMessage("too many planes")));
    }
}
