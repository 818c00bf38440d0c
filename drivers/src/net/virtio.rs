//! virtio-net as a [`NetDevice`], on virtio-drivers' `VirtIONetRaw` over any
//! transport (virtio-mmio or virtio-pci, created the way the loader's
//! storage.rs creates them for virtio-blk) and any `Hal` (the loader's
//! identity-mapped one). Target-only: it touches device memory.
//!
//! The buffers are ours and never move: `QUEUE_SIZE` receive buffers stay
//! posted in the device's queue (a received frame is copied out and its
//! buffer posted again at once), and a ring of transmit buffers is filled
//! and handed to the device without waiting for it to finish: a finished
//! one is taken back by the next send. So a send costs a copy and (when the
//! device asks for it) one notification — the per-packet cost that decides
//! a lock-step protocol's rate (docs/network.md, "Rate").
//!
//! The transport is wrapped so that `VIRTIO_F_RING_EVENT_IDX` is not
//! negotiated. With it, virtio-drivers 0.13 asks the device for an
//! interrupt after every completion (it writes `used_event` on each pop)
//! and judges `avail_event` without wrap-around arithmetic, which on QEMU
//! meant a receive-queue notification — an exit into QEMU under its big
//! lock — for every frame, and an interrupt per completion: measured with
//! QEMU's `virtio_queue_notify`/`virtio_notify` trace points, 2297 kicks and
//! 4211 interrupts for a 3 MB TFTP transfer, against U-Boot's 1 and 0.
//! Without it the ring flags do the same job: the device's `NO_NOTIFY` says
//! when a kick is not needed, and ours, `NO_INTERRUPT`, turns device
//! interrupts off (nothing here takes them).

use super::stack::RX_FRAME_OFFSET;
use super::{DeviceError, Mac, NetDevice};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, Hal, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `VIRTIO_F_RING_EVENT_IDX`.
const RING_EVENT_IDX: u64 = 1 << 29;

/// The transport as virtio-drivers' queues see it: the device does not offer
/// `VIRTIO_F_RING_EVENT_IDX` (see the module documentation); everything else
/// is the transport's, which [`VirtioNet`] owns and also reaches itself (to
/// notify a queue that looks stuck). (The trait's own `begin_init`, which
/// neither transport overrides, reads the features through
/// `read_device_features`.)
pub struct NoEventIdx<T: Transport>(NonNull<T>);

impl<T: Transport> NoEventIdx<T> {
    fn t(&self) -> &T {
        // SAFETY: `VirtioNet` keeps the transport alive (it frees it only after dropping
        // the driver that holds this), and no `&mut T` exists while the driver runs: the
        // loader is single-threaded and `VirtioNet` reaches the transport only between
        // calls into the driver.
        unsafe { self.0.as_ref() }
    }

    fn t_mut(&mut self) -> &mut T {
        // SAFETY: as in `t`.
        unsafe { self.0.as_mut() }
    }
}

impl<T: Transport> Transport for NoEventIdx<T> {
    fn device_type(&self) -> DeviceType {
        self.t().device_type()
    }

    fn read_device_features(&mut self) -> u64 {
        self.t_mut().read_device_features() & !RING_EVENT_IDX
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.t_mut().write_driver_features(driver_features);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.t_mut().max_queue_size(queue)
    }

    fn notify(&mut self, queue: u16) {
        self.t_mut().notify(queue);
    }

    fn get_status(&self) -> DeviceStatus {
        self.t().get_status()
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.t_mut().set_status(status);
    }

    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.t_mut().set_guest_page_size(guest_page_size);
    }

    fn requires_legacy_layout(&self) -> bool {
        self.t().requires_legacy_layout()
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.t_mut()
            .queue_set(queue, size, descriptors, driver_area, device_area);
    }

    fn queue_unset(&mut self, queue: u16) {
        self.t_mut().queue_unset(queue);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.t_mut().queue_used(queue)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.t_mut().ack_interrupt()
    }

    fn read_config_generation(&self) -> u32 {
        self.t().read_config_generation()
    }

    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        self.t().read_config_space(offset)
    }

    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> virtio_drivers::Result<()> {
        self.t_mut().write_config_space(offset, value)
    }
}

/// Receive buffers posted at a time (and the virtqueue size; QEMU's
/// virtio-net queues hold 256).
pub const QUEUE_SIZE: usize = 64;
/// Bytes per buffer: a 1514-byte frame plus the virtio-net header
/// (virtio-drivers wants at least 1526).
const BUF_LEN: usize = 2048;
/// Transmit buffers (one descriptor each: the header is in the buffer).
const TX_BUFFERS: usize = 16;
/// Empty receive polls before a queue is notified again (`watchdog`): a
/// few milliseconds, far longer than a reply takes.
const WATCHDOG_POLLS: u32 = 4096;
/// virtio-net's queue numbers.
const QUEUE_RECEIVE: u16 = 0;
const QUEUE_TRANSMIT: u16 = 1;

/// A buffer: 8-byte-aligned storage, seen as bytes.
struct Buf(Box<[u64; BUF_LEN / 8]>);

impl Buf {
    fn new() -> Buf {
        Buf(Box::new([0u64; BUF_LEN / 8]))
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the u64 storage viewed as bytes (same memory and size; u8 has no
        // alignment or validity requirement).
        unsafe { core::slice::from_raw_parts(self.0.as_ptr() as *const u8, BUF_LEN) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr() as *mut u8, BUF_LEN) }
    }
}

/// A virtio-net device.
pub struct VirtioNet<H: Hal, T: Transport> {
    /// The driver; dropped first (see `Drop`).
    net: ManuallyDrop<VirtIONetRaw<H, NoEventIdx<T>, QUEUE_SIZE>>,
    /// The transport (from `Box::leak`), shared with `net`'s [`NoEventIdx`].
    transport: NonNull<T>,
    /// Receive polls in a row that found nothing (see `watchdog`).
    idle_polls: u32,
    /// Receive buffers by descriptor token (all posted).
    rx: Vec<Option<Buf>>,
    /// Buffers the device may still hold though no token names them (after an unexpected
    /// token): kept until the drop resets the device.
    spare: Vec<Buf>,
    /// Transmit buffers: free ones, and those the device holds (token, buffer, frame length).
    tx_free: Vec<Buf>,
    tx_busy: Vec<(u16, Buf, usize)>,
    /// Where in a receive buffer the device is given it: so that, after the virtio-net
    /// header, a frame lands at the offset the stack keeps frames at (mod 8) and the copy
    /// out is an aligned one (`stack::RX_FRAME_OFFSET`).
    rx_skip: usize,
}

impl<H: Hal, T: Transport> VirtioNet<H, T> {
    /// Initialises the device behind `transport` (which must be a network
    /// device) and posts the receive buffers.
    pub fn new(transport: T) -> Result<Self, DeviceError> {
        let transport = NonNull::from(Box::leak(Box::new(transport)));
        let net = match VirtIONetRaw::new(NoEventIdx(transport)) {
            Ok(n) => n,
            Err(e) => {
                // SAFETY: from `Box::leak` above; the failed driver is gone.
                drop(unsafe { Box::from_raw(transport.as_ptr()) });
                return Err(DeviceError(error_text(&e)));
            }
        };
        let mut dev = VirtioNet {
            net: ManuallyDrop::new(net),
            transport,
            idle_polls: 0,
            rx: Vec::new(),
            spare: Vec::new(),
            tx_free: (0..TX_BUFFERS).map(|_| Buf::new()).collect(),
            tx_busy: Vec::new(),
            rx_skip: 0,
        };
        dev.post_rx()?;
        Ok(dev)
    }

    /// Posts the receive buffers (the device then owns them; each is kept in `rx` at once,
    /// so whatever fails, none is freed before the drop resets the device).
    fn post_rx(&mut self) -> Result<(), DeviceError> {
        self.net.disable_interrupts();
        let mut probe = [0u8; 16];
        let hdr = self
            .net
            .fill_buffer_header(&mut probe)
            .map_err(|e| DeviceError(error_text(&e)))?;
        self.rx_skip = (RX_FRAME_OFFSET + 8 - hdr % 8) % 8;
        self.rx = (0..QUEUE_SIZE).map(|_| None).collect();
        for _ in 0..QUEUE_SIZE {
            let mut b = Buf::new();
            // SAFETY: the buffer is boxed (its address does not change) and kept in `rx` at
            // its token (or in `spare` below), untouched until the device returns it
            // (`receive`) or the drop resets the device.
            let token = unsafe { self.net.receive_begin(&mut b.bytes_mut()[self.rx_skip..]) }
                .map_err(|e| DeviceError(error_text(&e)))?;
            match self.rx.get_mut(usize::from(token)) {
                Some(slot @ None) => *slot = Some(b),
                _ => {
                    self.spare.push(b);
                    return Err(DeviceError("device returned an unexpected buffer"));
                }
            }
        }
        Ok(())
    }

    /// A queue that looks stuck is notified again: the receive queue after
    /// `WATCHDOG_POLLS` empty polls, the transmit queue when a send has been
    /// waiting that long. virtio-drivers decides whether to notify from the
    /// device's `NO_NOTIFY` flag right after publishing a buffer, with no full
    /// barrier in between; on real Arm hardware its store-release/load-acquire
    /// pair is enough, under QEMU's TCG on an x86 host it is not, and a missed
    /// notification would stall the queue until a protocol timeout. A spare
    /// notification is harmless.
    fn watchdog(&mut self) {
        self.idle_polls = self.idle_polls.saturating_add(1);
        if self.idle_polls < WATCHDOG_POLLS {
            return;
        }
        self.idle_polls = 0;
        let _ = self.reclaim();
        let tx_waiting = !self.tx_busy.is_empty();
        // SAFETY: the transport lives until `drop`; the driver is not running (it is only
        // called from our methods, which do not call it while this borrow lives).
        let t = unsafe { self.transport.as_mut() };
        t.notify(QUEUE_RECEIVE);
        if tx_waiting {
            t.notify(QUEUE_TRANSMIT);
        }
    }

    /// Takes back the transmit buffers the device is done with.
    fn reclaim(&mut self) -> Result<(), DeviceError> {
        while let Some(token) = self.net.poll_transmit() {
            let i = self
                .tx_busy
                .iter()
                .position(|(t, _, _)| *t == token)
                .ok_or(DeviceError("device returned an unexpected buffer"))?;
            let (t, b, len) = self.tx_busy.swap_remove(i);
            // SAFETY: the same buffer (and length) that was passed to `transmit_begin` for
            // this token.
            let r = unsafe { self.net.transmit_complete(t, &b.bytes()[..len]) };
            self.tx_free.push(b);
            r.map_err(|e| DeviceError(error_text(&e)))?;
        }
        Ok(())
    }
}

impl<H: Hal, T: Transport> Drop for VirtioNet<H, T> {
    fn drop(&mut self) {
        // SAFETY: `net` is dropped once, here, and not used again; then the transport
        // (from `Box::leak` in `new`), whose drop resets the device — before the buffers
        // (dropped after this) are freed, so the device never writes into freed memory.
        unsafe {
            ManuallyDrop::drop(&mut self.net);
            drop(Box::from_raw(self.transport.as_ptr()));
        }
    }
}

fn error_text(e: &Error) -> &'static str {
    match e {
        Error::QueueFull => "virtqueue full",
        Error::NotReady => "not ready",
        Error::WrongToken => "device returned an unexpected buffer",
        Error::AlreadyUsed => "virtqueue already in use",
        Error::InvalidParam => "invalid parameter",
        Error::DmaError => "cannot allocate DMA memory",
        Error::IoError => "I/O error",
        Error::Unsupported => "unsupported request",
        Error::ConfigSpaceTooSmall => "config space too small",
        Error::ConfigSpaceMissing => "no config space",
        _ => "virtio error",
    }
}

impl<H: Hal, T: Transport> NetDevice for VirtioNet<H, T> {
    fn mac(&self) -> Mac {
        self.net.mac_address()
    }

    fn receive(&mut self, out: &mut [u8]) -> Result<Option<usize>, DeviceError> {
        let Some(token) = self.net.poll_receive() else {
            self.watchdog();
            return Ok(None);
        };
        self.idle_polls = 0;
        let mut b = self
            .rx
            .get_mut(usize::from(token))
            .and_then(Option::take)
            .ok_or(DeviceError("device returned an unexpected buffer"))?;
        let skip = self.rx_skip;
        // SAFETY: `b` (from `skip`) is the buffer posted with this token.
        let r = unsafe { self.net.receive_complete(token, &mut b.bytes_mut()[skip..]) };
        let got = match r {
            Ok((hdr, len)) => match b.bytes()[skip..].get(hdr..hdr + len) {
                Some(frame) if frame.len() <= out.len() => {
                    out[..frame.len()].copy_from_slice(frame);
                    Ok(Some(frame.len()))
                }
                _ => Err(DeviceError("received a frame longer than the buffer")),
            },
            Err(e) => Err(DeviceError(error_text(&e))),
        };
        // Post the buffer again whatever the frame was.
        // SAFETY: as in `post_rx`: boxed, kept at its token (or in `spare`) until the device
        // returns it or the drop resets the device. (Not posted on error: then it may go.)
        let token = unsafe { self.net.receive_begin(&mut b.bytes_mut()[skip..]) }
            .map_err(|e| DeviceError(error_text(&e)))?;
        match self.rx.get_mut(usize::from(token)) {
            Some(slot @ None) => *slot = Some(b),
            _ => {
                self.spare.push(b);
                return Err(DeviceError("device returned an unexpected buffer"));
            }
        }
        got
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), DeviceError> {
        self.reclaim()?;
        // All buffers in flight: wait for the device to finish one (it works through
        // its queue on its own; a device that never does is a dead device).
        let mut spins: u64 = 0;
        while self.tx_free.is_empty() {
            core::hint::spin_loop();
            self.reclaim()?;
            spins += 1;
            if spins > 100_000_000 {
                return Err(DeviceError("the device does not finish sending"));
            }
        }
        let mut b = self
            .tx_free
            .pop()
            .ok_or(DeviceError("no transmit buffer"))?;
        let hdr = self
            .net
            .fill_buffer_header(b.bytes_mut())
            .map_err(|e| DeviceError(error_text(&e)))?;
        let len = hdr + frame.len();
        let Some(dst) = b.bytes_mut().get_mut(hdr..len) else {
            self.tx_free.push(b);
            return Err(DeviceError("frame longer than a transmit buffer"));
        };
        dst.copy_from_slice(frame);
        // SAFETY: the buffer is boxed and kept in `tx_busy`, untouched until `reclaim` sees
        // the device finished with it (or the device is reset by the drop).
        match unsafe { self.net.transmit_begin(&b.bytes()[..len]) } {
            Ok(token) => {
                self.tx_busy.push((token, b, len));
                Ok(())
            }
            Err(e) => {
                self.tx_free.push(b);
                Err(DeviceError(error_text(&e)))
            }
        }
    }
}
