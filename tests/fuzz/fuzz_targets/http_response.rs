//! `drivers::net::http`: the response reader (head via httparse,
//! Content-Length / chunked / until-close bodies) fed with arbitrary bytes
//! in arbitrary pieces, and the `wget` argument parser.
//!
//! Input: [0] sink limit selector, [1] piece size, then the bytes of the
//! connection. Properties: no panic, no hang; nothing is written past the
//! sink's limit nor past an announced Content-Length; bytes are stored in
//! order without gaps; a completed body's length is what was stored (and
//! equals its Content-Length); errors are one line.
#![no_main]

use drivers::net::http::{self, Feed, Framing, ResponseReader};
use drivers::net::sink::{Download, Sink, SinkError, VecSink};
use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;

struct Watch {
    inner: VecSink,
    end: u64,
}

impl Sink for Watch {
    fn addr(&self) -> u64 {
        0x4000_0000
    }
    fn limit(&self) -> u64 {
        self.inner.limit()
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        assert_eq!(offset, self.end, "out of order write");
        self.end += data.len() as u64;
        assert!(self.end <= self.inner.limit());
        self.inner.write(offset, data)
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data) {
        if let Err(e) = http::parse_target(s, None) {
            assert!(!e.to_string().contains('\n'));
        }
    }
    let mut b = Bytes::new(data);
    let limit = [0u64, 10, 1000, 1 << 20][(b.u8() & 3) as usize];
    let piece = (b.u8() as usize % 64) + 1;
    let mut sink = Watch {
        inner: VecSink::new(0x4000_0000, limit),
        end: 0,
    };
    let mut dl = Download::new(&mut sink);
    let mut rd = ResponseReader::new();
    let mut print = String::new();
    let mut failed = false;
    for p in b.rest().chunks(piece) {
        match rd.feed(p, &mut dl, &mut print) {
            Ok(Feed::More) => {}
            Ok(Feed::Complete) => assert!(rd.is_complete()),
            Err(e) => {
                assert!(!e.to_string().contains('\n'));
                failed = true;
                break;
            }
        }
    }
    if let Some(h) = rd.head() {
        if let Framing::Length(n) = h.framing {
            assert!(rd.received() <= n);
        }
    }
    if !failed {
        match rd.on_close(&dl) {
            Ok(n) => {
                assert_eq!(n, rd.received());
                assert_eq!(n, dl.len());
                if let Some(Framing::Length(cl)) = rd.head().map(|h| h.framing.clone()) {
                    assert_eq!(n, cl);
                }
            }
            Err(e) => assert!(!e.to_string().contains('\n')),
        }
    }
    assert!(dl.len() <= limit);
});
