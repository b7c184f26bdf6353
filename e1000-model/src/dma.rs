//! Guest memory access for the device model.

/// A guest-physical access outside the memory the VMM lets the device touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DMA of {len} bytes at guest address {gpa:#x} is outside guest memory")]
pub struct DmaError {
    /// Guest-physical address of the access.
    pub gpa: u64,
    /// Length of the access in bytes.
    pub len: usize,
}

/// Device access to guest memory, bounds checked by the implementation.
///
/// The model never assumes a guest address is valid: every descriptor and
/// buffer access goes through these methods and a failure is counted, never
/// fatal. Several descriptors are fetched with one `read` of a larger buffer.
pub trait Dma {
    /// Copies `buf.len()` bytes from guest address `gpa` into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Copies `data` to guest address `gpa`.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), DmaError>;
    /// Whether `[gpa, gpa + len)` lies entirely in guest memory.
    fn contains(&self, gpa: u64, len: u64) -> bool;

    /// Reads the little-endian u32 at `gpa`. Implementations over memory the
    /// guest changes concurrently make an aligned access one atomic load
    /// (acquire), so a field of a shared block (the CSB) is never torn.
    fn read_u32(&self, gpa: u64) -> Result<u32, DmaError> {
        let mut bytes = [0u8; 4];
        self.read(gpa, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// Writes `value` as a little-endian u32 at `gpa`; one atomic store
    /// (release) for an aligned access, like [`Dma::read_u32`].
    fn write_u32(&self, gpa: u64, value: u32) -> Result<(), DmaError> {
        self.write(gpa, &value.to_le_bytes())
    }
}

/// Guest memory as a plain byte vector starting at guest address 0.
///
/// Used by the unit tests and by tools that exercise the model without a VM.
#[derive(Debug, Default)]
pub struct VecMemory {
    bytes: std::cell::RefCell<Vec<u8>>,
}

impl VecMemory {
    /// `size` bytes of zeroed memory.
    pub fn new(size: usize) -> Self {
        Self {
            bytes: std::cell::RefCell::new(vec![0; size]),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.borrow().len()
    }

    /// Whether the memory is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn range(&self, gpa: u64, len: usize) -> Result<std::ops::Range<usize>, DmaError> {
        let error = DmaError { gpa, len };
        let start = usize::try_from(gpa).map_err(|_| error)?;
        let end = start.checked_add(len).ok_or(error)?;
        if end > self.len() {
            return Err(error);
        }
        Ok(start..end)
    }
}

impl Dma for VecMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let range = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes.borrow()[range]);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), DmaError> {
        let range = self.range(gpa, data.len())?;
        self.bytes.borrow_mut()[range].copy_from_slice(data);
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= self.len() as u64)
    }
}
