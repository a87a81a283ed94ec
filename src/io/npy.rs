//! The `.npy` format (numpy's array file), for reference arrays and probability outputs.
//!
//! Only what the project needs: little-endian `float16`, `float32`, `float64`, `uint8`, `int8`,
//! `int16`, `uint16`, `int32` arrays in C order, read into a flat `Vec` plus the shape.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// A numpy array read from a `.npy` file: its element type, shape and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct NpyArray {
    /// numpy `descr`, e.g. `<f4`.
    pub descr: String,
    /// Shape, C order.
    pub shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements converted to f32 (f16, f32, f64 and the integer types).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let b = &self.bytes;
        let n = self.len();
        Ok(match self.descr.as_str() {
            "<f2" => (0..n).map(|i| half::f16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32()).collect(),
            "<f4" => (0..n).map(|i| f32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("4 bytes"))).collect(),
            "<f8" => {
                (0..n).map(|i| f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes")) as f32).collect()
            }
            "|u1" => b[..n].iter().map(|&v| v as f32).collect(),
            "|i1" => b[..n].iter().map(|&v| v as i8 as f32).collect(),
            "<i2" => (0..n).map(|i| i16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as f32).collect(),
            "<u2" => (0..n).map(|i| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as f32).collect(),
            "<i4" => {
                (0..n).map(|i| i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("4 bytes")) as f32).collect()
            }
            other => return Err(Error::invalid_argument(format!("npy element type {other} is not supported"))),
        })
    }

    /// Elements as raw float16 bits (only for `<f2` arrays).
    pub fn to_f16(&self) -> Result<Vec<half::f16>> {
        if self.descr != "<f2" {
            return Err(Error::invalid_argument(format!("expected a float16 array, found {}", self.descr)));
        }
        Ok(self.bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect())
    }
}

fn element_size(descr: &str) -> Option<usize> {
    match descr {
        "|u1" | "|i1" => Some(1),
        "<f2" | "<i2" | "<u2" => Some(2),
        "<f4" | "<i4" => Some(4),
        "<f8" => Some(8),
        _ => None,
    }
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    parse(&bytes).map_err(|e| e.context(path.display()))
}

/// Parses a `.npy` file held in memory: what [`read`] does after reading the file.
pub fn parse(bytes: &[u8]) -> Result<NpyArray> {
    let bad = |what: &str| Error::new(ErrorKind::InvalidArgument, format!("not a valid .npy file: {what}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12),
        _ => return Err(bad("unknown version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr")
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.split('\'').next())
        .ok_or_else(|| bad("no descr"))?
        .to_string();
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let shape_text = field("shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("shape is not a list of integers")))
        .collect::<Result<Vec<_>>>()?;
    let size = element_size(&descr).ok_or_else(|| bad(&format!("element type {descr} is not supported")))?;
    let data = &bytes[start + header_len..];
    // A crafted header may claim more elements than memory can index: checked, never wrapped.
    let needed = shape
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(&format!("shape {shape:?} is too large")))?;
    if data.len() < needed {
        return Err(bad("data shorter than the shape says"));
    }
    Ok(NpyArray { descr, shape, bytes: data[..needed].to_vec() })
}

/// Writes `data` (C order, `shape`) as a little-endian float32 `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::shape_mismatch(format!("{} values do not fill shape {shape:?}", data.len())));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Header length (incl. the 10-byte preamble and the final newline) is padded to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut file = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    file.write_all(&out).map_err(|e| Error::io("cannot write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float32_round_trip() {
        let path = std::env::temp_dir().join(format!("nnrt-npy-{}.npy", std::process::id()));
        let data = [1.5f32, -2.0, 0.25, 7.0, 8.0, 9.0];
        write_f32(&path, &[2, 3], &data).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.to_f32().unwrap(), data);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(parse(b"hello world, not numpy").is_err());
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }".to_string();
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        let err = parse(&bytes).unwrap_err();
        assert!(err.message().contains("shorter"), "{err}");

        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 8), }".to_string();
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        let err = parse(&bytes).unwrap_err();
        assert!(err.message().contains("too large"), "{err}");
    }
}
