//! HTTP/1.1 GET client for `wget`: one request per connection
//! (`Connection: close`), a response head parsed by `httparse`, the body by
//! `Content-Length`, `Transfer-Encoding: chunked` or the end of the
//! connection, written through a [`Download`].
//!
//! [`ResponseReader`] is the response side as a state machine fed with
//! bytes (fuzzed); [`http_get`] drives a smoltcp TCP connection. A lying
//! `Content-Length` is caught both ways: a connection that closes early is
//! "closed after N of M bytes", bytes beyond it are refused (nothing written
//! past the announced length, and never past the sink's limit).

use super::progress::{bytes_transferred, Progress};
use super::sink::{Download, Sink, SinkError};
use super::stack::NetStack;
use super::{Ctx, Ipv4Addr, NetDevice, NetError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields accepted.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 1024;
/// Most trailer bytes accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// TCP receive buffer: the window the server may fill before we read.
const RX_BUFFER: usize = 64 * 1024;

/// Why an HTTP download failed. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The argument is not `[ip:]path` or `http://ip[:port]/path`.
    BadUrl(String),
    /// The server answered with something other than 200.
    Status {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A redirect (not followed).
    Redirect {
        /// Status code.
        code: u16,
        /// `Location`.
        location: String,
    },
    /// The response head is not HTTP.
    BadResponse(String),
    /// A chunked body is malformed.
    BadChunk(String),
    /// The connection closed before the announced end of the body.
    Truncated {
        /// Body bytes received.
        got: u64,
        /// Bytes announced (`Content-Length`); `None` for a chunked body
        /// that did not end with its last chunk.
        expected: Option<u64>,
    },
    /// Data arrived after the end the response itself announced.
    ExtraData {
        /// Where the body ended (`Content-Length`, or the last chunk).
        length: u64,
    },
    /// The body cannot be stored.
    Sink(SinkError),
    /// No connection within the timeout.
    ConnectTimeout {
        /// The timeout.
        ms: u64,
    },
    /// The server refused the connection (RST to our SYN).
    Refused,
    /// The server reset the connection.
    Reset {
        /// Body bytes received before.
        got: u64,
    },
    /// Nothing arrived for too long.
    Idle {
        /// The timeout.
        ms: u64,
        /// Body bytes received before.
        got: u64,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP error: ")?;
        match self {
            HttpError::BadUrl(m) => write!(f, "{m}"),
            HttpError::Status { code, reason } => write!(f, "server answered {code} {reason}"),
            HttpError::Redirect { code, location } => {
                write!(f, "server redirects ({code}) to '{location}'; not followed")
            }
            HttpError::BadResponse(m) => write!(f, "malformed response: {m}"),
            HttpError::BadChunk(m) => write!(f, "malformed chunked body: {m}"),
            HttpError::Truncated {
                got,
                expected: Some(n),
            } => write!(
                f,
                "connection closed after {got} of the {n} bytes of its Content-Length"
            ),
            HttpError::Truncated {
                got,
                expected: None,
            } => write!(
                f,
                "connection closed after {got} bytes, before the last chunk"
            ),
            HttpError::ExtraData { length } => write!(
                f,
                "server sent more than the {length} bytes it announced; stopped"
            ),
            HttpError::Sink(e) => write!(f, "{e}"),
            HttpError::ConnectTimeout { ms } => write!(f, "no connection after {ms} ms"),
            HttpError::Refused => write!(f, "connection refused"),
            HttpError::Reset { got } => write!(f, "connection reset after {got} bytes"),
            HttpError::Idle { ms, got } => {
                write!(f, "nothing received for {ms} ms (after {got} bytes)")
            }
        }
    }
}

impl From<HttpError> for NetError {
    fn from(e: HttpError) -> NetError {
        NetError::Http(e)
    }
}

// ---------------------------------------------------------------- target

/// Where to GET from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Server address.
    pub server: Ipv4Addr,
    /// TCP port.
    pub port: u16,
    /// Absolute path (with query), as sent.
    pub path: String,
}

/// Parses `wget`'s argument: U-Boot's `[ip:]path`, or
/// `http://ip[:port]/path`. `server` is `serverip`, used when no address is
/// given. Host names are not resolved (no DNS): the host must be an address.
pub fn parse_target(arg: &str, server: Option<Ipv4Addr>) -> Result<Target, HttpError> {
    let arg = arg.trim();
    if let Some(rest) = arg
        .strip_prefix("http://")
        .or_else(|| arg.strip_prefix("HTTP://"))
    {
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| HttpError::BadUrl(format!("bad port '{}'", clean(p))))?,
            ),
            None => (hostport, 80),
        };
        let server = super::parse_ip(host).ok_or_else(|| {
            HttpError::BadUrl(format!("'{}' is not an IPv4 address (no DNS)", clean(host)))
        })?;
        return target(server, port, path);
    }
    if arg.starts_with("https://") {
        return Err(HttpError::BadUrl("https is not supported".into()));
    }
    let (server, path) = match arg.split_once(':') {
        Some((ip, p)) => match super::parse_ip(ip) {
            Some(ip) => (Some(ip), p),
            None => (server, arg),
        },
        None => (server, arg),
    };
    let server = server.ok_or_else(|| HttpError::BadUrl("`serverip' not set".into()))?;
    target(server, 80, path)
}

fn target(server: Ipv4Addr, port: u16, path: &str) -> Result<Target, HttpError> {
    if path.is_empty() {
        return Err(HttpError::BadUrl("no path".into()));
    }
    if let Some(c) = path.bytes().find(|b| !(0x21..0x7f).contains(b)) {
        return Err(HttpError::BadUrl(format!(
            "the path holds the byte {c:#04x} (spaces and controls must be %-encoded)"
        )));
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(Target { server, port, path })
}

/// The request.
pub fn request(t: &Target) -> String {
    let host = if t.port == 80 {
        t.server.to_string()
    } else {
        format!("{}:{}", t.server, t.port)
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: parkboot\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        t.path
    )
}

// ---------------------------------------------------------------- response

/// How the body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes.
    Close,
}

/// The parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `HTTP/1.x 200 OK` as received (for the console).
    pub status_line: String,
    /// Status code.
    pub code: u16,
    /// Body framing.
    pub framing: Framing,
}

/// Parses a complete head (`buf` holds at least the head; returns its
/// length), `None` if more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::BadResponse(format!("{e}"))),
    };
    let code = resp.code.unwrap_or(0);
    let reason = clean(resp.reason.unwrap_or(""));
    let version = resp.version.unwrap_or(1);
    let status_line = format!("HTTP/1.{version} {code} {reason}");
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut location = String::new();
    for h in resp.headers.iter() {
        let value = core::str::from_utf8(h.value)
            .map_err(|_| HttpError::BadResponse(format!("header {} is not text", clean(h.name))))?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadResponse(
                    "two different Content-Length headers".into(),
                ));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value.split(',').map(str::trim) {
                if coding.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                    return Err(HttpError::BadResponse(format!(
                        "transfer coding '{}' is not supported",
                        clean(coding)
                    )));
                }
            }
        } else if h.name.eq_ignore_ascii_case("location") {
            location = clean(value);
        }
    }
    if code != 200 {
        if (300..400).contains(&code) && !location.is_empty() {
            return Err(HttpError::Redirect { code, location });
        }
        return Err(HttpError::Status { code, reason });
    }
    if chunked && length.is_some() {
        return Err(HttpError::BadResponse(
            "both Content-Length and chunked Transfer-Encoding".into(),
        ));
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::Close,
    };
    Ok(Some((
        Head {
            status_line,
            code,
            framing,
        },
        len,
    )))
}

/// `Content-Length`: decimal digits (a list of equal values is allowed by
/// RFC 9110).
fn content_length(v: &str) -> Result<u64, HttpError> {
    let mut n: Option<u64> = None;
    for part in v.split(',').map(str::trim) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadResponse(format!(
                "Content-Length '{}' is not a number",
                clean(v)
            )));
        }
        let x: u64 = part.parse().map_err(|_| {
            HttpError::BadResponse(format!("Content-Length '{}' is too large", clean(v)))
        })?;
        if n.is_some_and(|n| n != x) {
            return Err(HttpError::BadResponse(format!(
                "Content-Length '{}' lists different values",
                clean(v)
            )));
        }
        n = Some(x);
    }
    n.ok_or_else(|| HttpError::BadResponse("empty Content-Length".into()))
}

/// Text from the wire, made safe for one console line.
fn clean(s: &str) -> String {
    s.chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    /// In a chunk's data.
    Data(u64),
    /// After a chunk's data: `\r\n` (count of bytes matched).
    DataEnd(u8),
    /// Trailer lines (current line, total bytes).
    Trailers(Vec<u8>, usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Head(Vec<u8>),
    Length { total: u64 },
    Chunked(Chunk),
    Close,
    Done { length: u64 },
}

/// The response side of one GET, fed with the bytes of the connection.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    body: Body,
    /// Body bytes stored.
    got: u64,
    head: Option<Head>,
    progress: Progress,
}

/// What [`ResponseReader::feed`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// More is expected.
    More,
    /// The body is complete (by its own framing); bytes after this point
    /// are an error.
    Complete,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    /// A reader waiting for the head.
    pub fn new() -> ResponseReader {
        ResponseReader {
            body: Body::Head(Vec::new()),
            got: 0,
            head: None,
            progress: Progress::new(None),
        }
    }

    /// The head, once parsed.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// Body bytes stored so far.
    pub fn received(&self) -> u64 {
        self.got
    }

    /// Whether the body has ended by its own framing.
    pub fn is_complete(&self) -> bool {
        matches!(self.body, Body::Done { .. })
    }

    /// Consumes `data`; progress marks are appended to `print`.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        dl: &mut Download<'_>,
        print: &mut String,
    ) -> Result<Feed, HttpError> {
        while !data.is_empty() {
            data = self.step(data, dl, print)?;
        }
        Ok(if self.is_complete() {
            Feed::Complete
        } else {
            Feed::More
        })
    }

    /// Consumes a prefix of `data`, returns the rest.
    fn step<'d>(
        &mut self,
        data: &'d [u8],
        dl: &mut Download<'_>,
        print: &mut String,
    ) -> Result<&'d [u8], HttpError> {
        match &mut self.body {
            Body::Head(buf) => {
                let take = data.len().min(MAX_HEAD.saturating_sub(buf.len()).max(1));
                let old = buf.len();
                buf.extend_from_slice(&data[..take]);
                // Parse only once a blank line may have arrived (feeding a
                // byte at a time must not re-parse the head each time).
                let tail = &buf[old.saturating_sub(3)..];
                let ended = tail.windows(2).any(|w| w == b"\n\n")
                    || tail.windows(3).any(|w| w == b"\n\r\n");
                if !ended && buf.len() < MAX_HEAD {
                    return Ok(&data[take..]);
                }
                match parse_head(buf)? {
                    None if buf.len() >= MAX_HEAD => Err(HttpError::BadResponse(format!(
                        "head longer than {MAX_HEAD} bytes"
                    ))),
                    None => Ok(&data[take..]),
                    Some((head, len)) => {
                        // Bytes of this piece after the head belong to the body.
                        let used = len.saturating_sub(old).min(take);
                        self.start_body(head, dl)?;
                        Ok(&data[used..])
                    }
                }
            }
            Body::Length { total } => {
                let total = *total;
                let left = total - self.got;
                let n = (data.len() as u64).min(left) as usize;
                self.store(&data[..n], dl, print)?;
                if self.got == total {
                    self.body = Body::Done { length: total };
                }
                Ok(&data[n..])
            }
            Body::Close => {
                self.store(data, dl, print)?;
                Ok(&[])
            }
            Body::Chunked(_) => self.chunked(data, dl, print),
            Body::Done { length } => Err(HttpError::ExtraData { length: *length }),
        }
    }

    fn start_body(&mut self, head: Head, dl: &mut Download<'_>) -> Result<(), HttpError> {
        self.body = match head.framing {
            Framing::Length(n) => {
                dl.announce(n).map_err(HttpError::Sink)?;
                self.progress.set_total(Some(n));
                if n == 0 {
                    Body::Done { length: 0 }
                } else {
                    Body::Length { total: n }
                }
            }
            Framing::Chunked => Body::Chunked(Chunk::Size(Vec::new())),
            Framing::Close => Body::Close,
        };
        self.head = Some(head);
        Ok(())
    }

    fn store(
        &mut self,
        data: &[u8],
        dl: &mut Download<'_>,
        print: &mut String,
    ) -> Result<(), HttpError> {
        if data.is_empty() {
            return Ok(());
        }
        dl.write(self.got, data).map_err(|e| match e {
            SinkError::LongerThanAnnounced { announced, .. } => {
                HttpError::ExtraData { length: announced }
            }
            e => HttpError::Sink(e),
        })?;
        self.got += data.len() as u64;
        print.push_str(&self.progress.advance_bytes(self.got));
        Ok(())
    }

    fn chunked<'d>(
        &mut self,
        data: &'d [u8],
        dl: &mut Download<'_>,
        print: &mut String,
    ) -> Result<&'d [u8], HttpError> {
        let Body::Chunked(state) = &mut self.body else {
            return Ok(data);
        };
        match state {
            Chunk::Size(line) => {
                let (piece, rest, done) = line_piece(data);
                if line.len() + piece.len() > MAX_LINE {
                    return Err(HttpError::BadChunk("chunk-size line too long".into()));
                }
                line.extend_from_slice(piece);
                if !done {
                    return Ok(rest);
                }
                let size = chunk_size(line)?;
                *state = if size == 0 {
                    Chunk::Trailers(Vec::new(), 0)
                } else {
                    Chunk::Data(size)
                };
                Ok(rest)
            }
            Chunk::Data(left) => {
                let n = (data.len() as u64).min(*left) as usize;
                *left -= n as u64;
                if *left == 0 {
                    *state = Chunk::DataEnd(0);
                }
                self.store(&data[..n], dl, print)?;
                Ok(&data[n..])
            }
            Chunk::DataEnd(matched) => {
                let want = b"\r\n"[*matched as usize];
                if data[0] != want {
                    return Err(HttpError::BadChunk(
                        "chunk data not followed by CRLF (wrong chunk size?)".into(),
                    ));
                }
                *matched += 1;
                if *matched == 2 {
                    *state = Chunk::Size(Vec::new());
                }
                Ok(&data[1..])
            }
            Chunk::Trailers(line, total) => {
                let (piece, rest, done) = line_piece(data);
                *total += piece.len();
                if line.len() + piece.len() > MAX_LINE || *total > MAX_TRAILERS {
                    return Err(HttpError::BadChunk("trailers too long".into()));
                }
                line.extend_from_slice(piece);
                if done {
                    if line == b"\r\n" || line == b"\n" {
                        let length = self.got;
                        self.body = Body::Done { length };
                    } else {
                        line.clear();
                    }
                }
                Ok(rest)
            }
        }
    }

    /// The connection closed: the body must be complete (or delimited by
    /// the close). Returns the body length.
    pub fn on_close(&self, dl: &Download<'_>) -> Result<u64, HttpError> {
        match &self.body {
            Body::Done { .. } => dl.finish().map_err(HttpError::Sink),
            Body::Close => Ok(self.got),
            Body::Head(_) => Err(HttpError::BadResponse(
                "connection closed before the response head ended".into(),
            )),
            Body::Length { total } => Err(HttpError::Truncated {
                got: self.got,
                expected: Some(*total),
            }),
            Body::Chunked(_) => Err(HttpError::Truncated {
                got: self.got,
                expected: None,
            }),
        }
    }

    /// The rest of U-Boot's progress for a successful download.
    pub fn finish_text(&mut self, bytes: u64, elapsed_ms: u64) -> String {
        self.progress.finish(bytes, elapsed_ms)
    }
}

/// Splits off bytes up to and including the first `\n`.
fn line_piece(data: &[u8]) -> (&[u8], &[u8], bool) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..=i], &data[i + 1..], true),
        None => (data, &[], false),
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((_, size))) => Ok(size),
        _ => Err(HttpError::BadChunk(format!(
            "bad chunk-size line '{}'",
            clean(&String::from_utf8_lossy(line))
        ))),
    }
}

// ---------------------------------------------------------------- the command

/// What `wget` was asked to do.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The URL.
    pub target: Target,
    /// Give up connecting after this long.
    pub connect_timeout_ms: u64,
    /// Give up when nothing arrives for this long.
    pub idle_timeout_ms: u64,
}

impl HttpRequest {
    /// A request with the default timeouts (10 s to connect, 10 s idle).
    pub fn new(target: Target) -> HttpRequest {
        HttpRequest {
            target,
            connect_timeout_ms: 10_000,
            idle_timeout_ms: 10_000,
        }
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTransfer {
    /// Body bytes stored (the new `filesize`).
    pub bytes: u64,
    /// Wall time from connect to the end of the body, microseconds.
    pub elapsed_us: u64,
    /// The status line.
    pub status_line: String,
}

/// How long to wait for the server's FIN after a body that ended by its own
/// framing (data arriving meanwhile is the lying-length error).
const CLOSE_GRACE_MS: u64 = 2000;

/// `wget`: GETs `req.target` into `sink`, printing a transcript in the shape
/// of `tftpboot`'s (server, file, load address, `#` marks, rate, `done`,
/// `Bytes transferred = …`).
pub fn http_get<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    req: &HttpRequest,
    sink: &mut dyn Sink,
) -> Result<HttpTransfer, NetError> {
    let ip = stack.config().ip.ok_or(NetError::NotSet("ipaddr"))?;
    let t = &req.target;
    let mut dl = Download::new(sink);
    ctx.print(&format!(
        "HTTP from server {}:{}; our IP address is {ip}\nFilename '{}'.\nLoad address: {:#x}\n{}",
        t.server,
        t.port,
        t.path,
        dl.addr(),
        Progress::START
    ));
    let rx = tcp::SocketBuffer::new(vec![0; RX_BUFFER]);
    let txb = tcp::SocketBuffer::new(vec![0; 4096]);
    let sock = stack.add(tcp::Socket::new(rx, txb));
    let t0 = ctx.now_us();
    let local = stack.ephemeral_port(t0);
    let mut reader = ResponseReader::new();
    let r = match stack.tcp_connect(
        sock,
        IpEndpoint::new(IpAddress::Ipv4(t.server), t.port),
        local,
    ) {
        Ok(()) => run(stack, ctx, sock, req, &mut reader, &mut dl),
        Err(e) => Err(e),
    };
    let elapsed_us = ctx.now_us().saturating_sub(t0);
    finish_socket(stack, ctx, sock, r.is_ok());
    match r {
        Ok(bytes) => {
            ctx.print(&reader.finish_text(bytes, elapsed_us / 1000));
            ctx.print(&bytes_transferred(bytes));
            Ok(HttpTransfer {
                bytes,
                elapsed_us,
                status_line: reader
                    .head()
                    .map(|h| h.status_line.clone())
                    .unwrap_or_default(),
            })
        }
        Err(e) => {
            ctx.print("\n");
            Err(e)
        }
    }
}

/// Closes (success) or aborts (failure) the connection and frees the socket.
fn finish_socket<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    sock: smoltcp::iface::SocketHandle,
    ok: bool,
) {
    {
        let s = stack.sockets.get_mut::<tcp::Socket>(sock);
        if ok {
            s.close();
        } else {
            s.abort();
        }
    }
    // Let the FIN or RST go out.
    let until = ctx.now_us() + 200_000;
    loop {
        let now = ctx.now_us();
        stack.poll(now);
        let s = stack.sockets.get_mut::<tcp::Socket>(sock);
        if !s.is_active() || now >= until || matches!(s.state(), tcp::State::TimeWait) {
            break;
        }
    }
    stack.remove(sock);
}

fn run<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    sock: smoltcp::iface::SocketHandle,
    req: &HttpRequest,
    reader: &mut ResponseReader,
    dl: &mut Download<'_>,
) -> Result<u64, NetError> {
    let request = request(&req.target);
    let mut sent = false;
    let mut connected = false;
    let mut fin = false;
    let start = ctx.now_us() / 1000;
    let mut last_data = start;
    let mut complete_at: Option<u64> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut print = String::new();
    loop {
        if ctx.interrupted() {
            return Err(NetError::Aborted);
        }
        let now_us = ctx.now_us();
        let now = now_us / 1000;
        stack.poll(now_us);
        let s = stack.sockets.get_mut::<tcp::Socket>(sock);
        let state = s.state();
        if matches!(
            state,
            tcp::State::CloseWait
                | tcp::State::LastAck
                | tcp::State::Closing
                | tcp::State::TimeWait
        ) {
            fin = true;
        }
        if s.may_send() {
            connected = true;
            if !sent {
                s.send_slice(request.as_bytes())
                    .map_err(|_| NetError::Stack("cannot queue the request"))?;
                sent = true;
            }
        }
        let mut got_any = false;
        while s.can_recv() {
            let n = s.recv_slice(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            got_any = true;
            let fed = reader.feed(&buf[..n], dl, &mut print);
            if !print.is_empty() {
                ctx.print(&print);
                print.clear();
            }
            if fed? == Feed::Complete && complete_at.is_none() {
                complete_at = Some(now);
            }
        }
        if got_any {
            last_data = now;
        }
        let s = stack.sockets.get_mut::<tcp::Socket>(sock);
        if !s.is_open() || (fin && !s.can_recv()) {
            if !connected {
                return Err(HttpError::Refused.into());
            }
            if !fin && !reader.is_complete() {
                return Err(HttpError::Reset {
                    got: reader.received(),
                }
                .into());
            }
            return Ok(reader.on_close(dl)?);
        }
        if let Some(t) = complete_at {
            if now.saturating_sub(t) >= CLOSE_GRACE_MS {
                // The server keeps the connection open after a complete
                // body; that is fine.
                return Ok(reader.on_close(dl)?);
            }
        }
        if !connected && now.saturating_sub(start) >= req.connect_timeout_ms {
            return Err(HttpError::ConnectTimeout {
                ms: req.connect_timeout_ms,
            }
            .into());
        }
        if connected
            && complete_at.is_none()
            && now.saturating_sub(last_data) >= req.idle_timeout_ms
        {
            return Err(HttpError::Idle {
                ms: req.idle_timeout_ms,
                got: reader.received(),
            }
            .into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sink::VecSink;

    fn read_all(resp: &[u8], limit: u64, pieces: usize) -> (Result<u64, HttpError>, Vec<u8>) {
        let mut sink = VecSink::new(0x4000_0000, limit);
        let r = {
            let mut dl = Download::new(&mut sink);
            let mut rd = ResponseReader::new();
            let mut print = String::new();
            let mut r = Ok(Feed::More);
            for piece in resp.chunks(pieces.max(1)) {
                r = rd.feed(piece, &mut dl, &mut print);
                if r.is_err() {
                    break;
                }
            }
            match r {
                Err(e) => Err(e),
                Ok(_) => rd.on_close(&dl),
            }
        };
        (r, sink.data)
    }

    #[test]
    fn content_length_body_in_any_pieces() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for p in [1, 2, 7, 100] {
            let (r, data) = read_all(resp, 100, p);
            assert_eq!(r, Ok(5));
            assert_eq!(data, b"hello");
        }
    }

    #[test]
    fn chunked_body() {
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
        for p in [1, 3, 1000] {
            let (r, data) = read_all(resp, 100, p);
            assert_eq!(r, Ok(11), "pieces of {p}");
            assert_eq!(data, b"hello world");
        }
    }

    #[test]
    fn lying_content_length_both_ways() {
        let (r, data) = read_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            100,
            4,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "HTTP error: connection closed after 5 of the 10 bytes of its Content-Length"
        );
        assert_eq!(data, b"hello");
        let (r, data) = read_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhello",
            100,
            100,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "HTTP error: server sent more than the 3 bytes it announced; stopped"
        );
        assert_eq!(data, b"hel");
    }

    #[test]
    fn content_length_over_the_limit_writes_nothing() {
        let (r, data) = read_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
            10,
            100,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "HTTP error: file is 11 bytes but only 10 bytes are free at 0x40000000; nothing loaded"
        );
        assert!(data.is_empty());
        // Without a length: stops at the limit.
        let (r, data) = read_all(b"HTTP/1.0 200 OK\r\n\r\nhello world", 10, 4);
        assert!(matches!(
            r,
            Err(HttpError::Sink(SinkError::Overflow { limit: 10, .. }))
        ));
        // Pieces of 4 bytes: the one that would cross the limit is refused
        // whole.
        assert_eq!(data, b"hello wor");
    }

    #[test]
    fn bad_heads() {
        let e = |r: &[u8]| read_all(r, 100, 100).0.unwrap_err().to_string();
        assert_eq!(
            e(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            "HTTP error: server answered 404 Not Found"
        );
        assert_eq!(
            e(b"HTTP/1.1 302 Found\r\nLocation: http://x/y\r\n\r\n"),
            "HTTP error: server redirects (302) to 'http://x/y'; not followed"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            "HTTP error: malformed response: two different Content-Length headers"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"),
            "HTTP error: malformed response: Content-Length '-5' is not a number"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "HTTP error: malformed response: both Content-Length and chunked Transfer-Encoding"
        );
        assert_eq!(
            e(b"SSH-2.0-OpenSSH\r\n\r\n"),
            "HTTP error: malformed response: invalid HTTP version"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "HTTP error: malformed chunked body: bad chunk-size line 'zz??'"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"),
            "HTTP error: malformed chunked body: chunk data not followed by CRLF (wrong chunk size?)"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
            "HTTP error: connection closed after 3 bytes, before the last chunk"
        );
    }

    #[test]
    fn targets() {
        let s = Some(Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(
            parse_target("Image", s).unwrap(),
            Target {
                server: Ipv4Addr::new(10, 0, 2, 2),
                port: 80,
                path: "/Image".into()
            }
        );
        assert_eq!(
            parse_target("10.0.2.100:/boot/Image", s).unwrap().server,
            Ipv4Addr::new(10, 0, 2, 100)
        );
        let t = parse_target("http://10.0.2.100:8080/a?b=c", None).unwrap();
        assert_eq!((t.port, t.path.as_str()), (8080, "/a?b=c"));
        assert_eq!(
            request(&t),
            "GET /a?b=c HTTP/1.1\r\nHost: 10.0.2.100:8080\r\nUser-Agent: parkboot\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            parse_target("http://example.com/x", None)
                .unwrap_err()
                .to_string(),
            "HTTP error: 'example.com' is not an IPv4 address (no DNS)"
        );
        assert_eq!(
            parse_target("Image", None).unwrap_err().to_string(),
            "HTTP error: `serverip' not set"
        );
        assert!(parse_target("a b", s).is_err());
        // Found by the http_response fuzzer: user text went into the message raw.
        assert_eq!(
            parse_target("http://1\n2:80/", None)
                .unwrap_err()
                .to_string(),
            "HTTP error: '1?2' is not an IPv4 address (no DNS)"
        );
    }
}
