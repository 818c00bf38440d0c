//! TFTP read client: RFC 1350 with the option extension (RFC 2347) for
//! `blksize` (RFC 2348), `tsize` and `timeout` (RFC 2349) and `windowsize`
//! (RFC 7440), as U-Boot's `tftpboot` uses it.
//!
//! [`TftpClient`] is the protocol as a state machine fed with datagrams and
//! time; [`tftp_get`] drives it over a [`NetStack`] and prints U-Boot's
//! transcript. Behaviour (docs/network.md):
//!
//! * the request asks for `tsize`, `blksize`, `timeout` and, when more than
//!   one, `windowsize` (in that order: QEMU's built-in server reads only its
//!   first two known options);
//! * the server's first answer fixes its port (RFC 1350's TID); datagrams
//!   from another port get ERROR 5 and are otherwise ignored;
//! * an OACK is checked (no option larger than asked; `timeout` echoed) and
//!   `tsize` is checked against the sink before ACK 0 is sent;
//! * blocks are stored in order; a duplicate or a block from the future is
//!   not stored and makes the client acknowledge the last block it has, once
//!   per gap (U-Boot's rule, which restarts a window at the first loss);
//! * after `timeout` with no new block the last packet is sent again and a
//!   `T ` printed; after `max_timeouts` in a row the transfer fails with one
//!   line;
//! * block numbers roll over from 65535 to 0;
//! * an ERROR packet ends the transfer with U-Boot's `TFTP error: 'msg' (n)`.

use super::progress::{bytes_transferred, Progress};
use super::sink::{Download, Sink, SinkError};
use super::stack::NetStack;
use super::{Ctx, Ipv4Addr, NetDevice, NetError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// The server's well-known port.
pub const PORT: u16 = 69;
/// RFC 1350's block size, used when the server ignores the options.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348's bounds for `blksize`.
pub const MIN_BLKSIZE: u16 = 8;
/// RFC 2348's upper bound.
pub const MAX_BLKSIZE: u16 = 65464;
/// Largest block this client asks for: what one reassembled IPv4 datagram
/// (16 KiB buffer in the stack) can hold after IP, UDP and TFTP headers.
pub const BLKSIZE_CAP: u16 = 16384 - 20 - 8 - 4;
/// Largest block that fits one Ethernet frame (1500 - IP, UDP, TFTP
/// headers): larger ones arrive as IP fragments.
pub const FRAME_BLKSIZE: u16 = 1500 - 20 - 8 - 4;
/// Longest file name sent (U-Boot: 128; the packet must fit one frame).
pub const MAX_FILENAME: usize = 512;
/// Bytes the client's UDP socket buffers; a window must fit.
const RX_BUFFER: usize = 128 * 1024;

const OP_RRQ: u16 = 1;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// TFTP error codes (RFC 1350, 2347).
pub mod code {
    /// Not defined, see message.
    pub const UNDEFINED: u16 = 0;
    /// File not found.
    pub const NOT_FOUND: u16 = 1;
    /// Access violation.
    pub const ACCESS: u16 = 2;
    /// Disk full or allocation exceeded.
    pub const DISK_FULL: u16 = 3;
    /// Illegal TFTP operation.
    pub const ILLEGAL: u16 = 4;
    /// Unknown transfer ID.
    pub const UNKNOWN_TID: u16 = 5;
    /// Option negotiation failed (RFC 2347).
    pub const OPTIONS: u16 = 8;
}

// ---------------------------------------------------------------- packets

/// A TFTP datagram as the client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// DATA: block number and payload.
    Data {
        /// Block number (wraps at 65536).
        block: u16,
        /// The data.
        data: &'a [u8],
    },
    /// OACK: the options the server accepted, names lower-cased.
    Oack(Vec<(String, String)>),
    /// ERROR: code and message.
    Error {
        /// RFC 1350 error code.
        code: u16,
        /// The server's message.
        msg: String,
    },
    /// ACK (not expected by a reader; ignored).
    Ack(u16),
    /// RRQ/WRQ (not expected by a reader; ignored).
    Request,
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than its opcode needs.
    Truncated,
    /// Opcode outside 1..=6.
    BadOpcode(u16),
    /// An OACK that is not NUL-terminated name/value pairs.
    BadOack,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::Truncated => f.write_str("truncated packet"),
            PacketError::BadOpcode(o) => write!(f, "unknown opcode {o}"),
            PacketError::BadOack => f.write_str("malformed option acknowledgement"),
        }
    }
}

/// Most options accepted in one OACK.
const MAX_OPTIONS: usize = 16;

/// Parses one datagram.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, PacketError> {
    let op = be16(buf, 0).ok_or(PacketError::Truncated)?;
    let body = &buf[2..];
    match op {
        OP_DATA => {
            let block = be16(buf, 2).ok_or(PacketError::Truncated)?;
            Ok(Packet::Data {
                block,
                data: &buf[4..],
            })
        }
        OP_ACK => Ok(Packet::Ack(be16(buf, 2).ok_or(PacketError::Truncated)?)),
        OP_ERROR => {
            let code = be16(buf, 2).ok_or(PacketError::Truncated)?;
            let text = &buf[4..];
            let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
            Ok(Packet::Error {
                code,
                msg: printable(text, 128),
            })
        }
        OP_OACK => parse_oack(body).map(Packet::Oack),
        1 | 2 => Ok(Packet::Request),
        _ => Err(PacketError::BadOpcode(op)),
    }
}

fn parse_oack(body: &[u8]) -> Result<Vec<(String, String)>, PacketError> {
    let mut opts = Vec::new();
    // name NUL value NUL ..., every field NUL-terminated.
    let Some((&last, fields)) = body.split_last() else {
        return Ok(opts);
    };
    if last != 0 {
        return Err(PacketError::BadOack);
    }
    let mut fields = fields.split(|&b| b == 0);
    while let Some(name) = fields.next() {
        let value = fields.next().ok_or(PacketError::BadOack)?;
        if name.is_empty() || opts.len() == MAX_OPTIONS {
            return Err(PacketError::BadOack);
        }
        let name = core::str::from_utf8(name).map_err(|_| PacketError::BadOack)?;
        let value = core::str::from_utf8(value).map_err(|_| PacketError::BadOack)?;
        opts.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Ok(opts)
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Text from the wire, made safe for one console line.
fn printable(b: &[u8], max: usize) -> String {
    b.iter()
        .take(max)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// A read request with options.
pub fn rrq(filename: &str, opts: &[(&str, u64)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + filename.len() + 64);
    p.extend_from_slice(&OP_RRQ.to_be_bytes());
    p.extend_from_slice(filename.as_bytes());
    p.push(0);
    p.extend_from_slice(b"octet\0");
    for (name, value) in opts {
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        p.extend_from_slice(value.to_string().as_bytes());
        p.push(0);
    }
    p
}

/// An ACK.
pub fn ack(block: u16) -> Vec<u8> {
    let mut p = OP_ACK.to_be_bytes().to_vec();
    p.extend_from_slice(&block.to_be_bytes());
    p
}

/// An ERROR.
pub fn error(code: u16, msg: &str) -> Vec<u8> {
    let mut p = OP_ERROR.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(msg.as_bytes());
    p.push(0);
    p
}

// ---------------------------------------------------------------- options

/// How the client asks (U-Boot's env: `tftpblocksize`, `tftpwindowsize`,
/// `tftptimeout`, `tftptimeoutcountmax`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOptions {
    /// `blksize` to ask for (capped to [`BLKSIZE_CAP`]).
    pub blksize: u16,
    /// `windowsize` to ask for (1: not asked).
    pub windowsize: u16,
    /// Wait for a block this long before sending the last packet again.
    pub timeout_ms: u32,
    /// Give up after this many timeouts in a row.
    pub max_timeouts: u32,
    /// Ask for `tsize`.
    pub tsize: bool,
}

impl Default for TftpOptions {
    /// U-Boot's defaults (blksize 1468 = one Ethernet frame, 5 s, 10
    /// timeouts), and a window of 8 blocks when the server offers windowing.
    fn default() -> Self {
        TftpOptions {
            blksize: 1468,
            windowsize: 8,
            timeout_ms: 5000,
            max_timeouts: 10,
            tsize: true,
        }
    }
}

impl TftpOptions {
    /// The defaults with U-Boot's variables applied. Returns the notes to
    /// print (U-Boot's wording for values it corrects); a value that is
    /// not a number is an error naming the variable.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(TftpOptions, Vec<String>), String> {
        let mut o = TftpOptions::default();
        let mut notes = Vec::new();
        let num = |name: &str| -> Result<Option<u64>, String> {
            match get(name) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    format!(
                        "{name}: '{}' is not a decimal number",
                        printable(v.as_bytes(), 32)
                    )
                }),
            }
        };
        if let Some(b) = num("tftpblocksize")? {
            let capped = b.clamp(MIN_BLKSIZE as u64, BLKSIZE_CAP as u64) as u16;
            if capped as u64 != b {
                notes.push(format!(
                    "Capping tftp block size option to {capped} (was {b})"
                ));
            }
            o.blksize = capped;
        }
        if let Some(w) = num("tftpwindowsize")? {
            o.windowsize = w.clamp(1, 64) as u16;
        }
        if let Some(t) = num("tftptimeout")? {
            if t < 1000 {
                notes.push(format!("TFTP timeout ({t} ms) too low, set min = 1000 ms"));
            }
            o.timeout_ms = t.clamp(1000, 255_000) as u32;
        }
        if let Some(c) = num("tftptimeoutcountmax")? {
            o.max_timeouts = c.min(1000) as u32;
        }
        Ok((o, notes))
    }

    /// The window actually asked for: at most 64 blocks and at most what
    /// the socket buffers.
    fn window(&self, blksize: u16) -> u16 {
        let fit = (RX_BUFFER / (blksize as usize + 64)).max(1);
        self.windowsize.clamp(1, 64).min(fit as u16)
    }

    fn timeout_s(&self) -> u64 {
        (self.timeout_ms as u64 / 1000).clamp(1, 255)
    }
}

// ---------------------------------------------------------------- errors

/// Why a TFTP transfer failed. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TftpError {
    /// The server sent an ERROR packet.
    Server {
        /// Its code.
        code: u16,
        /// Its message.
        msg: String,
    },
    /// No answer after the allowed timeouts.
    Timeout {
        /// Timeouts in a row.
        count: u32,
        /// Each this long.
        ms: u32,
    },
    /// The OACK asked for something we cannot accept.
    Options(String),
    /// The server broke the protocol.
    Protocol(String),
    /// The data cannot be stored.
    Sink(SinkError),
    /// The file name is empty or too long.
    BadName(String),
}

impl fmt::Display for TftpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TftpError::Server { code, msg } => write!(f, "TFTP error: '{msg}' ({code})"),
            TftpError::Timeout { count, ms } => write!(
                f,
                "TFTP error: retry count exceeded ({count} timeouts of {ms} ms); giving up"
            ),
            TftpError::Options(m) => write!(f, "TFTP error: option negotiation failed: {m}"),
            TftpError::Protocol(m) => write!(f, "TFTP error: {m}"),
            TftpError::Sink(e) => write!(f, "TFTP error: {e}"),
            TftpError::BadName(m) => write!(f, "TFTP error: {m}"),
        }
    }
}

impl From<TftpError> for NetError {
    fn from(e: TftpError) -> NetError {
        NetError::Tftp(e)
    }
}

// ---------------------------------------------------------------- state machine

/// What the client wants done after an event.
#[derive(Debug, Default)]
pub struct Output {
    /// Datagrams to send: (destination port, bytes).
    pub send: Vec<(u16, Vec<u8>)>,
    /// Console text.
    pub print: String,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still running.
    Running,
    /// Complete: the file's size.
    Done(u64),
    /// Failed.
    Failed(TftpError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// RRQ sent, nothing heard.
    Requesting,
    /// Options acknowledged (ACK 0 sent), or data flowing.
    Receiving,
    /// Over.
    Finished,
}

/// The TFTP read protocol of one transfer, without I/O.
#[derive(Debug)]
pub struct TftpClient {
    opts: TftpOptions,
    asked_blksize: u16,
    asked_window: u16,
    phase: Phase,
    /// The server's transfer port, once it answered.
    tid: Option<u16>,
    blksize: u16,
    window: u16,
    /// Blocks stored, in order.
    blocks: u64,
    /// ACK when `blocks` reaches this.
    next_ack: u64,
    /// The gap we last reported (U-Boot's `tftp_last_nack`).
    last_nack: Option<u64>,
    /// The last packet sent (sent again on timeout).
    last: Vec<u8>,
    deadline: u64,
    timeouts: u32,
    total_timeouts: u32,
    progress: Progress,
    /// The OACK said `tsize`.
    tsize: Option<u64>,
    rrq: Vec<u8>,
}

impl TftpClient {
    /// A transfer of `filename`; `start()` gives the request to send.
    pub fn new(filename: &str, opts: &TftpOptions) -> Result<TftpClient, TftpError> {
        if filename.is_empty() {
            return Err(TftpError::BadName("no file name".into()));
        }
        if filename.len() > MAX_FILENAME || filename.bytes().any(|b| b == 0) {
            return Err(TftpError::BadName(format!(
                "file name longer than {MAX_FILENAME} bytes or with a NUL"
            )));
        }
        let blksize = opts.blksize.clamp(MIN_BLKSIZE, BLKSIZE_CAP);
        let window = opts.window(blksize);
        let mut list: Vec<(&str, u64)> = Vec::new();
        if opts.tsize {
            list.push(("tsize", 0));
        }
        list.push(("blksize", blksize as u64));
        list.push(("timeout", opts.timeout_s()));
        if window > 1 {
            list.push(("windowsize", window as u64));
        }
        Ok(TftpClient {
            opts: opts.clone(),
            asked_blksize: blksize,
            asked_window: window,
            phase: Phase::Requesting,
            tid: None,
            blksize: DEFAULT_BLKSIZE,
            window: 1,
            blocks: 0,
            next_ack: 1,
            last_nack: None,
            last: Vec::new(),
            deadline: 0,
            timeouts: 0,
            total_timeouts: 0,
            progress: Progress::new(None),
            tsize: None,
            rrq: rrq(filename, &list),
        })
    }

    /// The request, to send to port 69 at `now_ms`.
    pub fn start(&mut self, now_ms: u64) -> Vec<u8> {
        self.last = self.rrq.clone();
        self.deadline = now_ms + self.opts.timeout_ms as u64;
        self.rrq.clone()
    }

    /// The negotiated block size.
    pub fn blksize(&self) -> u16 {
        self.blksize
    }

    /// The negotiated window.
    pub fn window(&self) -> u16 {
        self.window
    }

    /// The server's transfer port, once known.
    pub fn tid(&self) -> Option<u16> {
        self.tid
    }

    /// Timeouts so far, in all.
    pub fn total_timeouts(&self) -> u32 {
        self.total_timeouts
    }

    /// When `on_tick` next has something to do.
    pub fn deadline(&self) -> u64 {
        self.deadline
    }

    /// A datagram from the server's address, from port `port`.
    pub fn on_datagram(
        &mut self,
        port: u16,
        buf: &[u8],
        now_ms: u64,
        dl: &mut Download<'_>,
        out: &mut Output,
    ) -> Status {
        if self.phase == Phase::Finished {
            return Status::Running;
        }
        if let Some(tid) = self.tid {
            if port != tid {
                out.send
                    .push((port, error(code::UNKNOWN_TID, "Unknown transfer ID")));
                return Status::Running;
            }
        }
        let pkt = match parse(buf) {
            Ok(p) => p,
            Err(PacketError::BadOack) if self.phase == Phase::Requesting => {
                return self.fail_options(port, "malformed option acknowledgement".into(), out)
            }
            Err(_) => return Status::Running,
        };
        match pkt {
            Packet::Error { code, msg } => {
                self.phase = Phase::Finished;
                Status::Failed(TftpError::Server { code, msg })
            }
            Packet::Oack(opts) => self.on_oack(port, &opts, now_ms, dl, out),
            Packet::Data { block, data } => self.on_data(port, block, data, now_ms, dl, out),
            Packet::Ack(_) | Packet::Request => Status::Running,
        }
    }

    fn on_oack(
        &mut self,
        port: u16,
        opts: &[(String, String)],
        now_ms: u64,
        dl: &mut Download<'_>,
        out: &mut Output,
    ) -> Status {
        if self.phase != Phase::Requesting {
            // Our ACK 0 was lost and the OACK came again: ACK again.
            if self.blocks == 0 && self.tid == Some(port) {
                self.send(port, ack(0), now_ms, out);
            }
            return Status::Running;
        }
        self.tid = Some(port);
        let mut blksize = DEFAULT_BLKSIZE;
        let mut window = 1u16;
        for (name, value) in opts {
            let v = match value.parse::<u64>() {
                Ok(v) => v,
                Err(_)
                    if matches!(
                        name.as_str(),
                        "blksize" | "windowsize" | "tsize" | "timeout"
                    ) =>
                {
                    return self.fail_options(
                        port,
                        format!(
                            "{name} '{}' is not a number",
                            printable(value.as_bytes(), 32)
                        ),
                        out,
                    )
                }
                Err(_) => continue,
            };
            match name.as_str() {
                "blksize" => {
                    if v < MIN_BLKSIZE as u64 || v > self.asked_blksize as u64 {
                        return self.fail_options(
                            port,
                            format!("blksize {v}, asked for at most {}", self.asked_blksize),
                            out,
                        );
                    }
                    blksize = v as u16;
                }
                "windowsize" => {
                    if v < 1 || v > self.asked_window as u64 {
                        return self.fail_options(
                            port,
                            format!("windowsize {v}, asked for at most {}", self.asked_window),
                            out,
                        );
                    }
                    window = v as u16;
                }
                "timeout" if v != self.opts.timeout_s() => {
                    return self.fail_options(
                        port,
                        format!("timeout {v} s, asked for {} s", self.opts.timeout_s()),
                        out,
                    );
                }
                "tsize" if self.opts.tsize => {
                    if let Err(e) = dl.announce(v) {
                        out.send
                            .push((port, error(code::DISK_FULL, "File too large")));
                        self.phase = Phase::Finished;
                        return Status::Failed(TftpError::Sink(e));
                    }
                    self.tsize = Some(v);
                    self.progress.set_total(Some(v));
                }
                _ => {}
            }
        }
        self.blksize = blksize;
        self.window = window;
        self.phase = Phase::Receiving;
        self.next_ack = window as u64;
        self.timeouts = 0;
        self.send(port, ack(0), now_ms, out);
        Status::Running
    }

    fn fail_options(&mut self, port: u16, why: String, out: &mut Output) -> Status {
        out.send
            .push((port, error(code::OPTIONS, "Option Negotiation Failed")));
        self.phase = Phase::Finished;
        Status::Failed(TftpError::Options(why))
    }

    fn on_data(
        &mut self,
        port: u16,
        block: u16,
        data: &[u8],
        now_ms: u64,
        dl: &mut Download<'_>,
        out: &mut Output,
    ) -> Status {
        if self.phase == Phase::Requesting {
            // The server ignored the options: RFC 1350 transfer.
            if block != 1 {
                self.phase = Phase::Finished;
                return Status::Failed(TftpError::Protocol(format!(
                    "first block is {block}, not 1"
                )));
            }
            self.tid = Some(port);
            self.phase = Phase::Receiving;
            self.blksize = DEFAULT_BLKSIZE;
            self.window = 1;
            self.next_ack = 1;
        }
        let expected = ((self.blocks + 1) & 0xffff) as u16;
        if block != expected {
            // A duplicate or a block after a gap: acknowledge what we have,
            // once per gap.
            if self.last_nack != Some(self.blocks) {
                self.last_nack = Some(self.blocks);
                self.next_ack = self.blocks + self.window as u64;
                let a = ack((self.blocks & 0xffff) as u16);
                self.send(port, a, now_ms, out);
            }
            return Status::Running;
        }
        if data.len() > self.blksize as usize {
            out.send
                .push((port, error(code::ILLEGAL, "Block too large")));
            self.phase = Phase::Finished;
            return Status::Failed(TftpError::Protocol(format!(
                "block {block} has {} bytes, more than the block size {}",
                data.len(),
                self.blksize
            )));
        }
        let offset = self.blocks * self.blksize as u64;
        if let Err(e) = dl.write(offset, data) {
            out.send
                .push((port, error(code::DISK_FULL, "File too large")));
            self.phase = Phase::Finished;
            return Status::Failed(TftpError::Sink(e));
        }
        self.blocks += 1;
        self.timeouts = 0;
        self.deadline = now_ms + self.opts.timeout_ms as u64;
        let pos = self.blocks * self.blksize as u64;
        out.print.push_str(&self.progress.advance(self.blocks, pos));
        if data.len() < self.blksize as usize {
            self.phase = Phase::Finished;
            out.send.push((port, ack(block)));
            return match dl.finish() {
                Ok(n) => Status::Done(n),
                Err(e) => Status::Failed(TftpError::Sink(e)),
            };
        }
        if self.blocks >= self.next_ack {
            self.next_ack = self.blocks + self.window as u64;
            self.send(port, ack(block), now_ms, out);
        }
        Status::Running
    }

    /// Time passed: sends the last packet again after a timeout, or gives up.
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Output) -> Status {
        if self.phase == Phase::Finished || now_ms < self.deadline {
            return Status::Running;
        }
        self.timeouts += 1;
        self.total_timeouts += 1;
        if self.timeouts > self.opts.max_timeouts {
            self.phase = Phase::Finished;
            return Status::Failed(TftpError::Timeout {
                count: self.timeouts - 1,
                ms: self.opts.timeout_ms,
            });
        }
        out.print.push_str("T ");
        let port = self.tid.unwrap_or(PORT);
        let again = if self.phase == Phase::Requesting {
            self.rrq.clone()
        } else {
            // Restart the window after the last block we have.
            self.last_nack = Some(self.blocks);
            self.next_ack = self.blocks + self.window as u64;
            ack((self.blocks & 0xffff) as u16)
        };
        self.send(port, again, now_ms, out);
        Status::Running
    }

    /// The end of a successful transfer: the rest of U-Boot's progress.
    pub fn finish_text(&mut self, bytes: u64, elapsed_ms: u64) -> String {
        self.progress.finish(bytes, elapsed_ms)
    }

    /// A courtesy ERROR for the server when the user aborts.
    pub fn abort_packet(&self) -> Option<(u16, Vec<u8>)> {
        self.tid
            .map(|p| (p, error(code::UNDEFINED, "Transfer aborted by user")))
    }

    fn send(&mut self, port: u16, pkt: Vec<u8>, now_ms: u64, out: &mut Output) {
        self.last = pkt.clone();
        self.deadline = now_ms + self.opts.timeout_ms as u64;
        out.send.push((port, pkt));
    }
}

// ---------------------------------------------------------------- the command

/// What `tftp` was asked to do.
#[derive(Debug, Clone)]
pub struct TftpRequest {
    /// The server (`serverip`, or the `ip:` of `[ip:]file`).
    pub server: Ipv4Addr,
    /// The file.
    pub filename: String,
    /// Options.
    pub opts: TftpOptions,
}

/// A finished transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes stored (the new `filesize`).
    pub bytes: u64,
    /// Wall time from the request to the last block, in microseconds.
    pub elapsed_us: u64,
    /// The block size used.
    pub blksize: u16,
    /// The window used.
    pub window: u16,
    /// Timeouts that happened (sum of all runs).
    pub timeouts: u32,
}

impl Transfer {
    /// Throughput in bytes per second.
    pub fn bytes_per_sec(&self) -> u64 {
        (self.bytes as u128 * 1_000_000 / self.elapsed_us.max(1) as u128) as u64
    }
}

/// Splits U-Boot's `[ip:]file` argument.
pub fn split_server(arg: &str) -> (Option<Ipv4Addr>, &str) {
    if let Some((ip, file)) = arg.split_once(':') {
        if let Some(ip) = super::parse_ip(ip) {
            return (Some(ip), file);
        }
    }
    (None, arg)
}

/// U-Boot's default file name when `bootfile` is empty: our address in hex
/// and `.img` (`0A00020F.img`).
pub fn default_filename(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{:02X}{:02X}{:02X}{:02X}.img", o[0], o[1], o[2], o[3])
}

/// U-Boot's rules for what `tftpboot` fetches from where: the `[ip:]file`
/// argument, else `bootfile` (which may also carry `ip:`), else
/// [`default_filename`] with U-Boot's warning (returned, to print); the
/// server is the `ip:` given, else `serverip`.
pub fn resolve_target(
    arg: Option<&str>,
    bootfile: Option<&str>,
    cfg: &super::IpConfig,
) -> Result<(Ipv4Addr, String, Option<String>), NetError> {
    let given = arg.or(bootfile).filter(|s| !s.is_empty());
    let (ip, file) = match given {
        Some(g) => split_server(g),
        None => (None, ""),
    };
    let server = ip.or(cfg.server).ok_or(NetError::NotSet("serverip"))?;
    if !file.is_empty() {
        return Ok((server, file.to_string(), None));
    }
    let me = cfg.ip.ok_or(NetError::NotSet("ipaddr"))?;
    let name = default_filename(me);
    let warn = format!("*** Warning: no boot file name; using '{name}'");
    Ok((server, name, Some(warn)))
}

/// `tftpboot`: downloads `req.filename` from `req.server` into `sink`,
/// printing U-Boot's transcript (`Using … device`, `TFTP from server …`,
/// `Filename`, `Load address`, `Loading: ###…`, the rate, `done`,
/// `Bytes transferred = …`). The stack must be configured (`ipaddr`).
pub fn tftp_get<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    req: &TftpRequest,
    sink: &mut dyn Sink,
) -> Result<Transfer, NetError> {
    let ip = stack.config().ip.ok_or(NetError::NotSet("ipaddr"))?;
    let mut client = TftpClient::new(&req.filename, &req.opts)?;
    let mut dl = Download::new(sink);
    ctx.print(&format!("Using {} device\n", stack.name()));
    let mut head = format!("TFTP from server {}; our IP address is {ip}", req.server);
    if let Some(gw) = stack
        .config()
        .gateway
        .filter(|_| stack.config().via_gateway(req.server))
    {
        head.push_str(&format!("; sending through gateway {gw}"));
    }
    ctx.print(&format!(
        "{head}\nFilename '{}'.\nLoad address: {:#x}\n{}",
        req.filename,
        dl.addr(),
        Progress::START
    ));
    let t0 = ctx.now_us();
    let local = stack.ephemeral_port(t0);
    let sock = udp_socket(stack, local)?;
    stack.expect_udp_fragments(req.opts.blksize > FRAME_BLKSIZE);
    let first = client.start(t0 / 1000);
    let r = run(stack, ctx, sock, req.server, &mut client, first, &mut dl);
    stack.expect_udp_fragments(false);
    stack.remove(sock);
    let elapsed_us = ctx.now_us().saturating_sub(t0);
    match r {
        Ok(bytes) => {
            ctx.print(&client.finish_text(bytes, elapsed_us / 1000));
            ctx.print(&bytes_transferred(bytes));
            Ok(Transfer {
                bytes,
                elapsed_us,
                blksize: client.blksize(),
                window: client.window(),
                timeouts: client.total_timeouts(),
            })
        }
        Err(e) => {
            ctx.print("\n");
            Err(e)
        }
    }
}

fn udp_socket<D: NetDevice>(
    stack: &mut NetStack<D>,
    local: u16,
) -> Result<smoltcp::iface::SocketHandle, NetError> {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; RX_BUFFER]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 8192]);
    let mut s = udp::Socket::new(rx, tx);
    s.bind(local)
        .map_err(|_| NetError::Stack("cannot bind a UDP port"))?;
    Ok(stack.add(s))
}

/// The transfer's loop: every turn looks for ctrl-C, moves frames, feeds
/// each datagram from the server to the client where it lies in the socket
/// buffer (no copy), and sends what the client answers in the same turn —
/// on a lock-step server the time from a block to its ACK is the rate.
fn run<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    sock: smoltcp::iface::SocketHandle,
    server: Ipv4Addr,
    client: &mut TftpClient,
    first: Vec<u8>,
    dl: &mut Download<'_>,
) -> Result<u64, NetError> {
    let mut out = Output::default();
    out.send.push((PORT, first));
    flush(stack, sock, server, &mut out, ctx);
    loop {
        if ctx.interrupted() {
            if let Some((port, pkt)) = client.abort_packet() {
                out.send.push((port, pkt));
                flush(stack, sock, server, &mut out, ctx);
                stack.poll(ctx.now_us());
            }
            return Err(NetError::Aborted);
        }
        let now = ctx.now_us();
        stack.poll(now);
        let mut status = Status::Running;
        {
            let s = stack.sockets.get_mut::<udp::Socket>(sock);
            while let Ok((data, meta)) = s.recv() {
                if meta.endpoint.addr != IpAddress::Ipv4(server) {
                    continue;
                }
                status = client.on_datagram(meta.endpoint.port, data, now / 1000, dl, &mut out);
                if status != Status::Running {
                    break;
                }
            }
        }
        if !out.send.is_empty() || !out.print.is_empty() {
            flush(stack, sock, server, &mut out, ctx);
            stack.poll(ctx.now_us());
        }
        match status {
            Status::Running => {}
            Status::Done(bytes) => return Ok(bytes),
            Status::Failed(e) => return Err(e.into()),
        }
        if let Status::Failed(e) = client.on_tick(now / 1000, &mut out) {
            return Err(e.into());
        }
    }
}

/// Queues the client's datagrams on the socket and prints its text.
fn flush<D: NetDevice>(
    stack: &mut NetStack<D>,
    sock: smoltcp::iface::SocketHandle,
    server: Ipv4Addr,
    out: &mut Output,
    ctx: &mut dyn Ctx,
) {
    if !out.print.is_empty() {
        ctx.print(&out.print);
        out.print.clear();
    }
    if out.send.is_empty() {
        return;
    }
    let s = stack.sockets.get_mut::<udp::Socket>(sock);
    for (port, pkt) in out.send.drain(..) {
        // A full send buffer drops the packet; the timeout sends it again.
        let _ = s.send_slice(&pkt, IpEndpoint::new(IpAddress::Ipv4(server), port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sink::VecSink;

    fn data(block: u16, bytes: &[u8]) -> Vec<u8> {
        let mut p = OP_DATA.to_be_bytes().to_vec();
        p.extend_from_slice(&block.to_be_bytes());
        p.extend_from_slice(bytes);
        p
    }

    fn oack(opts: &[(&str, &str)]) -> Vec<u8> {
        let mut p = OP_OACK.to_be_bytes().to_vec();
        for (k, v) in opts {
            p.extend_from_slice(k.as_bytes());
            p.push(0);
            p.extend_from_slice(v.as_bytes());
            p.push(0);
        }
        p
    }

    fn opts(blksize: u16, window: u16) -> TftpOptions {
        TftpOptions {
            blksize,
            windowsize: window,
            ..TftpOptions::default()
        }
    }

    #[test]
    fn request_lists_the_options_in_slirp_friendly_order() {
        let mut c = TftpClient::new("Image", &opts(1468, 4)).unwrap();
        assert_eq!(
            c.start(0),
            b"\0\x01Image\0octet\0tsize\0\x30\0blksize\0\x31468\0timeout\0\x35\0windowsize\0\x34\0"
                .to_vec()
        );
        let mut c = TftpClient::new("x", &opts(1468, 1)).unwrap();
        assert_eq!(
            c.start(0),
            b"\0\x01x\0octet\0tsize\0\x30\0blksize\0\x31468\0timeout\0\x35\0".to_vec()
        );
    }

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        assert_eq!(parse(&[]), Err(PacketError::Truncated));
        assert_eq!(parse(&[0, 3, 0]), Err(PacketError::Truncated));
        assert_eq!(parse(&[0, 9]), Err(PacketError::BadOpcode(9)));
        assert_eq!(parse(&[0, 6, b'a']), Err(PacketError::BadOack));
        assert_eq!(parse(&[0, 6, b'a', 0]), Err(PacketError::BadOack));
        assert_eq!(parse(&[0, 6]), Ok(Packet::Oack(vec![])));
        assert_eq!(parse(&[0, 6, 0]), Err(PacketError::BadOack));
        assert_eq!(
            parse(b"\0\x06a\0\0"),
            Ok(Packet::Oack(vec![("a".into(), "".into())]))
        );
        assert_eq!(
            parse(b"\0\x05\0\x01File\x07 not found\0junk"),
            Ok(Packet::Error {
                code: 1,
                msg: "File? not found".into()
            })
        );
        assert_eq!(
            parse(b"\0\x06BLKSIZE\x001024\0"),
            Ok(Packet::Oack(vec![("blksize".into(), "1024".into())]))
        );
    }

    #[test]
    fn lock_step_transfer_without_options() {
        let mut sink = VecSink::new(0x4000_0000, 10_000);
        let mut dl = Download::new(&mut sink);
        let mut c = TftpClient::new("f", &opts(1468, 1)).unwrap();
        c.start(0);
        let mut out = Output::default();
        assert_eq!(
            c.on_datagram(3000, &data(1, &[1; 512]), 1, &mut dl, &mut out),
            Status::Running
        );
        assert_eq!(out.send, vec![(3000, ack(1))]);
        out.send.clear();
        assert_eq!(
            c.on_datagram(3000, &data(2, &[2; 100]), 2, &mut dl, &mut out),
            Status::Done(612)
        );
        assert_eq!(out.send, vec![(3000, ack(2))]);
        assert_eq!(&sink.data[..512], &[1; 512][..]);
        assert_eq!(&sink.data[512..], &[2; 100][..]);
    }

    #[test]
    fn oversize_blksize_in_oack_is_refused() {
        let mut sink = VecSink::new(0, 10_000);
        let mut dl = Download::new(&mut sink);
        let mut c = TftpClient::new("f", &opts(1024, 1)).unwrap();
        c.start(0);
        let mut out = Output::default();
        let st = c.on_datagram(3000, &oack(&[("blksize", "2048")]), 1, &mut dl, &mut out);
        assert_eq!(
            st,
            Status::Failed(TftpError::Options(
                "blksize 2048, asked for at most 1024".into()
            ))
        );
        assert_eq!(
            st_text(&st),
            "TFTP error: option negotiation failed: blksize 2048, asked for at most 1024"
        );
        assert_eq!(
            out.send,
            vec![(3000, error(8, "Option Negotiation Failed"))]
        );
    }

    fn st_text(s: &Status) -> String {
        match s {
            Status::Failed(e) => e.to_string(),
            _ => String::new(),
        }
    }

    #[test]
    fn oack_values_are_printed_safely() {
        // Found by the tftp_client fuzzer: the value went into the message raw.
        let mut sink = VecSink::new(0, 1000);
        let mut dl = Download::new(&mut sink);
        let mut c = TftpClient::new("f", &opts(512, 4)).unwrap();
        c.start(0);
        let mut out = Output::default();
        let st = c.on_datagram(
            3000,
            &oack(&[("windowsize", "4\n\x1b[2J")]),
            1,
            &mut dl,
            &mut out,
        );
        assert_eq!(
            st_text(&st),
            "TFTP error: option negotiation failed: windowsize '4??[2J' is not a number"
        );
    }

    #[test]
    fn tsize_over_the_limit_is_refused_before_a_byte() {
        let mut sink = VecSink::new(0x4000_0000, 1000);
        let mut dl = Download::new(&mut sink);
        let mut c = TftpClient::new("f", &opts(512, 1)).unwrap();
        c.start(0);
        let mut out = Output::default();
        let st = c.on_datagram(3000, &oack(&[("tsize", "1001")]), 1, &mut dl, &mut out);
        assert_eq!(
            st_text(&st),
            "TFTP error: file is 1001 bytes but only 1000 bytes are free at 0x40000000; nothing loaded"
        );
        assert_eq!(out.send, vec![(3000, error(3, "File too large"))]);
        assert!(sink.data.is_empty());
    }

    #[test]
    fn block_numbers_roll_over() {
        let mut sink = VecSink::new(0, 1 << 20);
        let mut dl = Download::new(&mut sink);
        let mut c = TftpClient::new("f", &opts(8, 1)).unwrap();
        c.start(0);
        let mut out = Output::default();
        c.on_datagram(7, &oack(&[("blksize", "8")]), 0, &mut dl, &mut out);
        for i in 1..=70_000u64 {
            let b = (i & 0xffff) as u16;
            let st = c.on_datagram(7, &data(b, &i.to_le_bytes()), i, &mut dl, &mut out);
            assert_eq!(st, Status::Running, "block {i}");
        }
        assert_eq!(
            c.on_datagram(
                7,
                &data((70_001u64 & 0xffff) as u16, &[]),
                0,
                &mut dl,
                &mut out
            ),
            Status::Done(560_000)
        );
        assert_eq!(&sink.data[65_536 * 8..65_537 * 8], &65_537u64.to_le_bytes());
    }

    #[test]
    fn wrong_port_gets_unknown_tid() {
        let mut sink = VecSink::new(0, 1000);
        let mut dl = Download::new(&mut sink);
        let mut c = TftpClient::new("f", &opts(512, 1)).unwrap();
        c.start(0);
        let mut out = Output::default();
        c.on_datagram(3000, &data(1, &[1; 512]), 1, &mut dl, &mut out);
        out.send.clear();
        c.on_datagram(4000, &data(2, &[9; 10]), 1, &mut dl, &mut out);
        assert_eq!(out.send, vec![(4000, error(5, "Unknown transfer ID"))]);
        assert_eq!(dl.len(), 512);
    }

    #[test]
    fn timeouts_resend_then_give_up() {
        let mut c = TftpClient::new(
            "f",
            &TftpOptions {
                max_timeouts: 2,
                ..opts(512, 1)
            },
        )
        .unwrap();
        let rrq = c.start(0);
        let mut out = Output::default();
        assert_eq!(c.on_tick(4999, &mut out), Status::Running);
        assert!(out.send.is_empty());
        assert_eq!(c.on_tick(5000, &mut out), Status::Running);
        assert_eq!(out.send, vec![(PORT, rrq.clone())]);
        assert_eq!(out.print, "T ");
        assert_eq!(c.on_tick(10_000, &mut out), Status::Running);
        let st = c.on_tick(15_000, &mut out);
        assert_eq!(
            st_text(&st),
            "TFTP error: retry count exceeded (2 timeouts of 5000 ms); giving up"
        );
    }

    #[test]
    fn env_options() {
        let env = |k: &str| match k {
            "tftpblocksize" => Some("65000".into()),
            "tftptimeout" => Some("10".into()),
            "tftpwindowsize" => Some("1".into()),
            _ => None,
        };
        let (o, notes) = TftpOptions::from_env(&env).unwrap();
        assert_eq!(o.blksize, BLKSIZE_CAP);
        assert_eq!(o.timeout_ms, 1000);
        assert_eq!(o.windowsize, 1);
        assert_eq!(
            notes,
            vec![
                "Capping tftp block size option to 16352 (was 65000)".to_string(),
                "TFTP timeout (10 ms) too low, set min = 1000 ms".to_string()
            ]
        );
        let bad = |k: &str| (k == "tftptimeout").then(|| "5s".to_string());
        assert_eq!(
            TftpOptions::from_env(&bad).unwrap_err(),
            "tftptimeout: '5s' is not a decimal number"
        );
    }

    #[test]
    fn targets_follow_u_boot() {
        let cfg = crate::net::IpConfig {
            ip: Some(Ipv4Addr::new(10, 0, 2, 15)),
            server: Some(Ipv4Addr::new(10, 0, 2, 2)),
            ..Default::default()
        };
        let s = Ipv4Addr::new(10, 0, 2, 2);
        assert_eq!(
            resolve_target(Some("Image"), Some("x"), &cfg).unwrap(),
            (s, "Image".into(), None)
        );
        assert_eq!(
            resolve_target(None, Some("10.0.2.9:pxelinux.0"), &cfg).unwrap(),
            (Ipv4Addr::new(10, 0, 2, 9), "pxelinux.0".into(), None)
        );
        assert_eq!(
            resolve_target(None, None, &cfg).unwrap(),
            (
                s,
                "0A00020F.img".into(),
                Some("*** Warning: no boot file name; using '0A00020F.img'".into())
            )
        );
        let no_server = crate::net::IpConfig {
            server: None,
            ..cfg.clone()
        };
        assert_eq!(
            resolve_target(Some("Image"), None, &no_server)
                .unwrap_err()
                .to_string(),
            "*** ERROR: `serverip' not set"
        );
    }

    #[test]
    fn server_argument() {
        assert_eq!(
            split_server("10.0.2.2:Image"),
            (Some(Ipv4Addr::new(10, 0, 2, 2)), "Image")
        );
        assert_eq!(split_server("Image"), (None, "Image"));
        assert_eq!(split_server("c:/x"), (None, "c:/x"));
        assert_eq!(
            default_filename(Ipv4Addr::new(10, 0, 2, 15)),
            "0A00020F.img"
        );
    }
}
