//! `drivers::net::tftp`: the packet parser and the read client's state
//! machine fed with an arbitrary sequence of datagrams and clock ticks, as a
//! hostile or broken server (or network) could produce them.
//!
//! Input: [0] blksize selector, [1] window, [2] sink limit selector,
//! [3] flags (bit 0: ask tsize), then events until the input ends:
//! kind u8, len u16 LE, len bytes. kind bit 0: 0 = a datagram (bits 1-2
//! pick its source port), 1 = time passes (len * 10 ms).
//!
//! Properties: no panic, no hang; nothing is ever written at or past the
//! sink's limit; a finished transfer's size is what was stored; every
//! datagram the client sends parses as an ACK, an ERROR or its RRQ; errors are one
//! line; after a failure the client stays quiet.
#![no_main]

use drivers::net::sink::{Download, Sink, SinkError, VecSink};
use drivers::net::tftp::{self, Output, Packet, Status, TftpClient, TftpOptions};
use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;

/// A sink that remembers the largest end written.
struct Watch {
    inner: VecSink,
    max_end: u64,
}

impl Sink for Watch {
    fn addr(&self) -> u64 {
        self.inner.addr()
    }
    fn limit(&self) -> u64 {
        self.inner.limit()
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        self.max_end = self.max_end.max(offset + data.len() as u64);
        assert!(self.max_end <= self.inner.limit(), "write past the limit");
        self.inner.write(offset, data)
    }
}

const PORTS: [u16; 4] = [69, 3000, 3001, 40000];

fuzz_target!(|data: &[u8]| {
    // The parser alone on the whole input.
    if let Ok(Packet::Error { msg, .. }) = tftp::parse(data) {
        assert!(!msg.contains('\n'));
    }
    let mut b = Bytes::new(data);
    let blksize = [8u16, 512, 1024, 1468][(b.u8() & 3) as usize];
    let window = (b.u8() % 8) as u16 + 1;
    let limit = [0u64, 100, 5000, 1 << 20][(b.u8() & 3) as usize];
    let flags = b.u8();
    let opts = TftpOptions {
        blksize,
        windowsize: window,
        timeout_ms: 1000,
        max_timeouts: 3,
        tsize: flags & 1 != 0,
    };
    let mut sink = Watch {
        inner: VecSink::new(0x4000_0000, limit),
        max_end: 0,
    };
    let mut dl = Download::new(&mut sink);
    let mut c = TftpClient::new("file", &opts).unwrap();
    c.start(0);
    let mut now = 0u64;
    let mut ended = false;
    let mut events = 0;
    while !b.is_empty() && events < 4096 {
        events += 1;
        let kind = b.u8();
        let len = b.u16() as usize;
        let mut out = Output::default();
        let st = if kind & 1 == 0 {
            let pkt = b.take(len);
            c.on_datagram(
                PORTS[((kind >> 1) & 3) as usize],
                pkt,
                now,
                &mut dl,
                &mut out,
            )
        } else {
            now += len as u64 * 10;
            c.on_tick(now, &mut out)
        };
        for (_, p) in &out.send {
            match tftp::parse(p) {
                // ACKs, ERRORs, and the request again after a timeout.
                Ok(Packet::Ack(_)) | Ok(Packet::Error { .. }) | Ok(Packet::Request) => {}
                other => panic!("client sent {other:?}"),
            }
        }
        if ended {
            assert!(
                out.send.is_empty() && out.print.is_empty(),
                "sent after the end"
            );
        }
        match st {
            Status::Running => {}
            Status::Done(n) => {
                assert!(!ended);
                assert_eq!(n, dl.len());
                assert!(n <= limit);
                ended = true;
            }
            Status::Failed(e) => {
                assert!(!ended);
                assert!(!e.to_string().contains('\n'));
                ended = true;
            }
        }
    }
    assert!(dl.len() <= limit);
});
