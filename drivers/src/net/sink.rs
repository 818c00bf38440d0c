//! Where downloads go. A [`Sink`] is a destination with a fixed limit (for
//! the loader: the free range at the load address, backed by its memory-map
//! claims); every client writes through a [`Download`], which enforces the
//! rules of docs/network.md:
//!
//! 1. a size the protocol announces (TFTP `tsize`, HTTP `Content-Length`) is
//!    checked against the limit before the first byte is written;
//! 2. every write is checked again while receiving: a transfer that grows past
//!    the limit stops with [`SinkError::Overflow`] and nothing is written at
//!    or beyond the limit (the offending piece is not written at all);
//! 3. a transfer that delivers more, or less, than it announced is an error
//!    ([`SinkError::LongerThanAnnounced`], [`SinkError::ShorterThanAnnounced`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A download destination.
pub trait Sink {
    /// Address shown to the user ("Load address: 0x…"); for a memory sink,
    /// where byte 0 goes.
    fn addr(&self) -> u64;
    /// The most bytes this sink may take.
    fn limit(&self) -> u64;
    /// Store `data` at `offset`. Only called by [`Download`], with
    /// `offset + data.len() <= limit()`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError>;
}

/// Why a download could not be stored. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// The protocol announced more bytes than the sink can take.
    TooLarge {
        /// Announced size.
        size: u64,
        /// The sink's limit.
        limit: u64,
        /// The sink's address.
        addr: u64,
    },
    /// The data grew past the sink's limit while receiving.
    Overflow {
        /// Where the refused piece would have ended.
        end: u64,
        /// The sink's limit.
        limit: u64,
        /// The sink's address.
        addr: u64,
    },
    /// More data arrived than the protocol announced.
    LongerThanAnnounced {
        /// Announced size.
        announced: u64,
        /// Where the data would have ended.
        end: u64,
    },
    /// The transfer ended before the announced size.
    ShorterThanAnnounced {
        /// Announced size.
        announced: u64,
        /// Bytes received.
        got: u64,
    },
    /// The sink itself failed (e.g. a device behind it).
    Write(String),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::TooLarge { size, limit, addr } => write!(
                f,
                "file is {size} bytes but only {limit} bytes are free at {addr:#x}; nothing loaded"
            ),
            SinkError::Overflow { end, limit, addr } => write!(
                f,
                "transfer grew past the {limit} bytes free at {addr:#x} (to {end} bytes); stopped, nothing written past the limit"
            ),
            SinkError::LongerThanAnnounced { announced, end } => write!(
                f,
                "server sent more than the {announced} bytes it announced (to {end} bytes); stopped"
            ),
            SinkError::ShorterThanAnnounced { announced, got } => write!(
                f,
                "transfer ended after {got} of the {announced} bytes announced"
            ),
            SinkError::Write(m) => write!(f, "cannot store the data: {m}"),
        }
    }
}

/// The one gate between a protocol and a [`Sink`].
pub struct Download<'a> {
    sink: &'a mut dyn Sink,
    limit: u64,
    announced: Option<u64>,
    /// End of the highest byte written (the file size so far).
    end: u64,
}

impl<'a> Download<'a> {
    /// Starts a download into `sink`.
    pub fn new(sink: &'a mut dyn Sink) -> Download<'a> {
        let limit = sink.limit();
        Download {
            sink,
            limit,
            announced: None,
            end: 0,
        }
    }

    /// The size the protocol announced. Refused if the sink cannot take it,
    /// before anything is written.
    pub fn announce(&mut self, size: u64) -> Result<(), SinkError> {
        if size > self.limit {
            return Err(SinkError::TooLarge {
                size,
                limit: self.limit,
                addr: self.sink.addr(),
            });
        }
        self.announced = Some(size);
        Ok(())
    }

    /// Stores `data` at `offset`, after checking it against the limit and
    /// the announced size. On error nothing of `data` is written.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(SinkError::Overflow {
                end: u64::MAX,
                limit: self.limit,
                addr: self.sink.addr(),
            })?;
        if let Some(announced) = self.announced {
            if end > announced {
                return Err(SinkError::LongerThanAnnounced { announced, end });
            }
        }
        if end > self.limit {
            return Err(SinkError::Overflow {
                end,
                limit: self.limit,
                addr: self.sink.addr(),
            });
        }
        if !data.is_empty() {
            self.sink.write(offset, data)?;
        }
        self.end = self.end.max(end);
        Ok(())
    }

    /// The transfer ended: checks it delivered what it announced.
    pub fn finish(&self) -> Result<u64, SinkError> {
        match self.announced {
            Some(announced) if self.end != announced => Err(SinkError::ShorterThanAnnounced {
                announced,
                got: self.end,
            }),
            _ => Ok(self.end),
        }
    }

    /// Bytes stored so far (end of the highest write).
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Whether nothing was stored yet.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// The announced size, if any.
    pub fn announced(&self) -> Option<u64> {
        self.announced
    }

    /// The sink's limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The sink's address.
    pub fn addr(&self) -> u64 {
        self.sink.addr()
    }
}

/// Copies `src` into `dst` (the same length). `memcpy` on a target built
/// for strict alignment copies a byte at a time when the two addresses are
/// not equal modulo 8; a TFTP block of 1428 bytes lands 4 bytes off every
/// other time. For that case this copies with aligned words and shifts;
/// every other case is `copy_from_slice`.
pub fn copy(dst: &mut [u8], src: &[u8]) {
    let skew = (dst.as_ptr() as usize ^ src.as_ptr() as usize) & 7;
    if !cfg!(target_endian = "little") || skew != 4 || dst.len() != src.len() || dst.len() < 64 {
        dst.copy_from_slice(src);
        return;
    }
    let head = dst.as_ptr().align_offset(8).min(dst.len());
    dst[..head].copy_from_slice(&src[..head]);
    let (d, s) = (&mut dst[head..], &src[head..]);
    // `d` starts on an 8-byte boundary, `s` 4 bytes past one. Word i of `d`
    // is the last 4 bytes of `s`'s word i-1 and the first 4 of its word i.
    let words = (d.len() - 4) / 8;
    // SAFETY: `s` is 4-aligned (it is 4 past an 8-byte boundary) and has at least 4 bytes.
    let mut carry = u64::from(unsafe { (s.as_ptr() as *const u32).read() });
    for i in 0..words {
        // SAFETY: s[4 + 8i .. 12 + 8i] is inside `s` (12 + 8i <= 4 + 8 * words <= len) and
        // 8-aligned; d[8i .. 8i + 8] is inside `d` and 8-aligned.
        unsafe {
            let w = (s.as_ptr().add(4 + 8 * i) as *const u64).read();
            (d.as_mut_ptr().add(8 * i) as *mut u64).write(carry | (w << 32));
            carry = w >> 32;
        }
    }
    let done = 8 * words;
    d[done..].copy_from_slice(&s[done..]);
}

/// A sink in the loader heap (configuration files, tests).
#[derive(Debug, Clone, Default)]
pub struct VecSink {
    /// The bytes received.
    pub data: Vec<u8>,
    limit: u64,
    addr: u64,
}

impl VecSink {
    /// A sink taking at most `limit` bytes, shown at `addr`.
    pub fn new(addr: u64, limit: u64) -> VecSink {
        VecSink {
            data: Vec::new(),
            limit,
            addr,
        }
    }
}

impl Sink for VecSink {
    fn addr(&self) -> u64 {
        self.addr
    }

    fn limit(&self) -> u64 {
        self.limit
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        let start = usize::try_from(offset).map_err(|_| SinkError::Write("offset".into()))?;
        let end = start + data.len();
        if self.data.len() < end {
            self.data
                .try_reserve(end - self.data.len())
                .map_err(|_| SinkError::Write("out of heap".into()))?;
            self.data.resize(end, 0);
        }
        copy(&mut self.data[start..end], data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_size_is_checked_before_anything_is_written() {
        let mut s = VecSink::new(0x4000_0000, 100);
        let mut d = Download::new(&mut s);
        let e = d.announce(101).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file is 101 bytes but only 100 bytes are free at 0x40000000; nothing loaded"
        );
        assert!(s.data.is_empty());
    }

    #[test]
    fn growing_past_the_limit_writes_nothing_of_the_piece() {
        let mut s = VecSink::new(0x1000, 10);
        {
            let mut d = Download::new(&mut s);
            d.write(0, &[1; 8]).unwrap();
            let e = d.write(8, &[2; 4]).unwrap_err();
            assert_eq!(
                e,
                SinkError::Overflow {
                    end: 12,
                    limit: 10,
                    addr: 0x1000
                }
            );
            assert_eq!(d.len(), 8);
        }
        assert_eq!(s.data, [1; 8]);
    }

    #[test]
    fn more_or_less_than_announced_is_an_error() {
        let mut s = VecSink::new(0, 100);
        let mut d = Download::new(&mut s);
        d.announce(10).unwrap();
        d.write(0, &[0; 6]).unwrap();
        assert_eq!(
            d.finish().unwrap_err().to_string(),
            "transfer ended after 6 of the 10 bytes announced"
        );
        assert_eq!(
            d.write(6, &[0; 5]).unwrap_err(),
            SinkError::LongerThanAnnounced {
                announced: 10,
                end: 11
            }
        );
        d.write(6, &[0; 4]).unwrap();
        assert_eq!(d.finish(), Ok(10));
    }

    #[test]
    fn copy_at_every_skew() {
        let src: Vec<u8> = (0..2000u32).map(|i| (i * 37 + i / 251) as u8).collect();
        for so in 0..8 {
            for d_o in 0..8 {
                for len in [0, 5, 63, 64, 65, 100, 1428, 1900] {
                    let mut dst = alloc::vec![0xaau8; 2000];
                    copy(&mut dst[d_o..d_o + len], &src[so..so + len]);
                    assert_eq!(&dst[d_o..d_o + len], &src[so..so + len], "{so} {d_o} {len}");
                    assert!(dst[..d_o].iter().all(|&b| b == 0xaa));
                    assert!(dst[d_o + len..].iter().all(|&b| b == 0xaa));
                }
            }
        }
    }

    #[test]
    fn offsets_near_u64_max_do_not_wrap() {
        let mut s = VecSink::new(0, u64::MAX);
        let mut d = Download::new(&mut s);
        assert!(d.write(u64::MAX, &[1]).is_err());
    }
}
