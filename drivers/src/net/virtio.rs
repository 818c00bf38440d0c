//! virtio-net as a [`NetDevice`], on virtio-drivers' `VirtIONet` over any
//! transport (virtio-mmio or virtio-pci, created the way the loader's
//! storage.rs creates them for virtio-blk) and any `Hal` (the loader's
//! identity-mapped one). Target-only: it touches device memory.
//!
//! Receive buffers (`QUEUE_SIZE` of `BUF_LEN` bytes) stay posted in the
//! device's queue; a received frame is copied out and its buffer posted
//! again at once. Sending waits for the device to take the frame.

use super::{DeviceError, Mac, NetDevice};
use virtio_drivers::device::net::{TxBuffer, VirtIONet};
use virtio_drivers::transport::Transport;
use virtio_drivers::{Error, Hal};

/// Receive buffers posted at a time (and the virtqueue size; QEMU's
/// virtio-net queues hold 256).
pub const QUEUE_SIZE: usize = 64;
/// Bytes per receive buffer: a 1514-byte frame plus the virtio-net header
/// (virtio-drivers wants at least 1526).
const BUF_LEN: usize = 2048;

/// A virtio-net device.
pub struct VirtioNet<H: Hal, T: Transport> {
    net: VirtIONet<H, T, QUEUE_SIZE>,
}

impl<H: Hal, T: Transport> VirtioNet<H, T> {
    /// Initialises the device behind `transport` (which must be a network
    /// device) and posts the receive buffers.
    pub fn new(transport: T) -> Result<Self, DeviceError> {
        VirtIONet::new(transport, BUF_LEN)
            .map(|net| VirtioNet { net })
            .map_err(|e| DeviceError(error_text(&e)))
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

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DeviceError> {
        let rx = match self.net.receive() {
            Ok(rx) => rx,
            Err(Error::NotReady) => return Ok(None),
            Err(e) => return Err(DeviceError(error_text(&e))),
        };
        let frame = rx.packet();
        let fits = frame.len() <= buf.len();
        let n = frame.len();
        if fits {
            buf[..n].copy_from_slice(frame);
        }
        self.net
            .recycle_rx_buffer(rx)
            .map_err(|e| DeviceError(error_text(&e)))?;
        if fits {
            Ok(Some(n))
        } else {
            Err(DeviceError("received a frame longer than the buffer"))
        }
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), DeviceError> {
        self.net
            .send(TxBuffer::from(frame))
            .map_err(|e| DeviceError(error_text(&e)))
    }
}
