//! The model bundle: one file holding a model folder's files, so a model can be shipped as one
//! blob and loaded from memory (decrypted by the host, never written to disk).
//!
//! Layout, little-endian:
//!
//! ```text
//! "NNRTBNDL"                          8 bytes
//! format version                      u32 (1)
//! entry count                         u32
//! per entry: name length u32, name (UTF-8, relative, '/'-separated), data length u64
//! the entries' data, in order
//! CRC-32 (IEEE) of everything above   u32
//! ```
//!
//! A cascade stage carries its previous stage's folder under [`PREVIOUS_STAGE_PREFIX`].

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};

/// First bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"NNRTBNDL";
/// The format version this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Folder, inside a bundle, of a cascade stage's previous stage.
pub const PREVIOUS_STAGE_PREFIX: &str = "previous_stage/";
/// Limits that make a hostile header fail early instead of allocating or looping on its word.
const MAX_ENTRIES: u32 = 4096;
const MAX_NAME_LEN: u32 = 1024;

/// A parsed bundle: its bytes and where each file lies in them.
#[derive(Debug)]
pub struct Bundle {
    bytes: Vec<u8>,
    entries: BTreeMap<String, Range<usize>>,
}

impl Bundle {
    /// Checks and indexes a bundle. Any inconsistency (magic, version, truncation, a checksum
    /// mismatch, names that are not plain relative paths, duplicates) is `InvalidModel`.
    pub fn parse(bytes: Vec<u8>) -> Result<Bundle> {
        let bad = |why: String| Error::invalid_model(format!("not a valid model bundle: {why}"));
        if bytes.len() < MAGIC.len() + 12 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("it does not start with NNRTBNDL (write one with `nnunet-rt bundle`)".into()));
        }
        let body_len = bytes.len() - 4;
        let stored = u32::from_le_bytes(bytes[body_len..].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&bytes[..body_len]);
        if stored != computed {
            return Err(bad(format!("checksum {computed:08x} does not match {stored:08x}: corrupt or truncated")));
        }
        let mut reader = Reader { bytes: &bytes[..body_len], at: MAGIC.len() };
        let version = reader.u32()?;
        if version != FORMAT_VERSION {
            return Err(Error::unsupported_model(format!(
                "model bundle format version {version} is not supported (this library reads version {FORMAT_VERSION})"
            )));
        }
        let count = reader.u32()?;
        if count > MAX_ENTRIES {
            return Err(bad(format!("{count} entries (at most {MAX_ENTRIES})")));
        }
        let mut headers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name_len = reader.u32()?;
            if name_len > MAX_NAME_LEN {
                return Err(bad(format!("an entry name of {name_len} bytes (at most {MAX_NAME_LEN})")));
            }
            let name = std::str::from_utf8(reader.take(name_len as u64)?)
                .map_err(|_| bad("an entry name is not UTF-8".into()))?
                .to_string();
            check_name(&name).map_err(bad)?;
            headers.push((name, reader.u64()?));
        }
        let mut entries = BTreeMap::new();
        for (name, len) in headers {
            let start = reader.at;
            reader.take(len)?;
            if entries.insert(name.clone(), start..reader.at).is_some() {
                return Err(bad(format!("entry {name:?} appears twice")));
            }
        }
        if reader.at != body_len {
            return Err(bad(format!("{} bytes follow the last entry", body_len - reader.at)));
        }
        Ok(Bundle { bytes, entries })
    }

    /// The bytes of file `name`, if the bundle holds it.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries.get(name).map(|range| &self.bytes[range.clone()])
    }

    /// Every file name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// Reads fields off a byte slice; running past its end is a truncation error.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u64) -> Result<&'a [u8]> {
        let end = usize::try_from(len).ok().and_then(|len| self.at.checked_add(len)).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::invalid_model(format!(
                "not a valid model bundle: a field of {len} bytes at offset {} runs past its end (truncated?)",
                self.at
            )));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

/// Entry names are relative '/'-separated paths without empty, `.` or `..` components, so a
/// bundle can never name anything outside itself.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && !name.contains('\\')
        && !name.contains('\0')
        && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if plain {
        Ok(())
    } else {
        Err(format!("entry name {name:?} is not a plain relative path"))
    }
}

/// Writes a bundle of `files` (name inside the bundle, file on disk), streaming each file once.
pub fn write(files: &[(String, &Path)], out: &mut impl Write) -> Result<()> {
    let mut hasher = crc32fast::Hasher::new();
    let mut emit = |bytes: &[u8], out: &mut dyn Write| -> Result<()> {
        hasher.update(bytes);
        out.write_all(bytes).map_err(|e| Error::new(crate::ErrorKind::Io, format!("cannot write the bundle: {e}")))
    };
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for (name, path) in files {
        check_name(name).map_err(Error::invalid_argument)?;
        let len = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?.len();
        header.extend_from_slice(&(name.len() as u32).to_le_bytes());
        header.extend_from_slice(name.as_bytes());
        header.extend_from_slice(&len.to_le_bytes());
    }
    emit(&header, out)?;
    for (_, path) in files {
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        emit(&bytes, out)?;
    }
    let checksum = hasher.finalize();
    out.write_all(&checksum.to_le_bytes())
        .map_err(|e| Error::new(crate::ErrorKind::Io, format!("cannot write the bundle: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        // One folder per call: the tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("nnrt-bundle-test-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<(String, std::path::PathBuf)> = files
            .iter()
            .enumerate()
            .map(|(i, (name, bytes))| {
                let path = dir.join(format!("{i}"));
                std::fs::write(&path, bytes).unwrap();
                (name.to_string(), path)
            })
            .collect();
        let list: Vec<(String, &Path)> = paths.iter().map(|(n, p)| (n.clone(), p.as_path())).collect();
        let mut out = Vec::new();
        write(&list, &mut out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn files_come_back_as_written() {
        let bytes = bundle_of(&[("plans.json", b"{}"), ("fold_0/model.onnx", b"\x00\x01\x02")]);
        let bundle = Bundle::parse(bytes).unwrap();
        assert_eq!(bundle.get("plans.json"), Some(&b"{}"[..]));
        assert_eq!(bundle.get("fold_0/model.onnx"), Some(&b"\x00\x01\x02"[..]));
        assert_eq!(bundle.get("dataset.json"), None);
        assert_eq!(bundle.names().collect::<Vec<_>>(), ["fold_0/model.onnx", "plans.json"]);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = bundle_of(&[("plans.json", b"{\"a\": 1}"), ("dataset.json", b"{}")]);
        for len in 0..bytes.len() {
            let err = Bundle::parse(bytes[..len].to_vec()).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidModel, "{len}: {err}");
        }
        for i in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= 0x40;
            assert!(Bundle::parse(corrupt).is_err(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn names_that_escape_or_repeat_are_refused() {
        for name in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b"] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        let bytes = bundle_of(&[("a", b"1"), ("a", b"2")]);
        assert!(Bundle::parse(bytes).unwrap_err().to_string().contains("twice"));
    }
}
