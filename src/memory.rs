//! Allocations that grow with the volume: a failure is [`ErrorKind::OutOfMemory`] naming the size,
//! never an abort of the host process.

use crate::error::{Error, ErrorKind, Result};

/// A vector of `len` copies of `value`, or an out-of-memory error naming `what` and the bytes
/// asked for.
pub fn try_filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut vec = Vec::new();
    reserve(&mut vec, len, what)?;
    vec.resize(len, value);
    Ok(vec)
}

/// Makes room for `additional` more elements in `vec`, or fails with out-of-memory.
pub fn reserve<T>(vec: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    vec.try_reserve_exact(additional)
        .map_err(|_| out_of_memory(additional.saturating_mul(std::mem::size_of::<T>()), what))
}

/// The error for an allocation of `bytes` for `what` that failed.
pub fn out_of_memory(bytes: usize, what: &str) -> Error {
    Error::new(
        ErrorKind::OutOfMemory,
        format!("cannot allocate {} MiB for {what}: out of memory", bytes.div_ceil(1 << 20)),
    )
}

/// Checks, before any work, that `bytes` can be allocated at all: reserves them once and gives
/// them back. A volume whose working set cannot fit (an address-space limit, a 32-bit host, a
/// container's memory cap that refuses the mapping) fails here with a clear error instead of
/// part way through. Untouched reserved pages cost no physical memory.
pub fn probe(bytes: u64, what: &str) -> Result<()> {
    let bytes = usize::try_from(bytes).map_err(|_| out_of_memory(usize::MAX, what))?;
    let mut vec: Vec<u8> = Vec::new();
    reserve(&mut vec, bytes, what)
}
