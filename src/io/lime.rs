//! LIME, the record container of ILDG and SciDAC files (USQCD's c-lime, "Lattice QCD
//! Interchange Message Encapsulation").
//!
//! A file is a sequence of records, each a 144-byte header, its data and zero bytes up to the
//! next multiple of 8. Header (big-endian): magic 0x456789ab (u32), version 1 (u16), one byte
//! of flags (0x80 message begin, 0x40 message end), one reserved byte, the data length without
//! padding (u64), and the record type, 128 bytes of ASCII padded with NUL. A message is a run
//! of records from one with the begin flag to one with the end flag.

use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The magic number that starts every record header.
pub const MAGIC: u32 = 0x4567_89ab;
/// Bytes of a record header.
pub const HEADER_BYTES: usize = 144;
/// Longest record type: 128 bytes, the last one NUL.
const TYPE_BYTES: usize = 128;

/// Zero bytes after `len` data bytes up to the next multiple of 8.
pub fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// The header of a record of type `kind` with `len` data bytes, opening a message when
/// `begin`, closing it when `end`.
pub fn record_header(kind: &str, len: u64, begin: bool, end: bool) -> Vec<u8> {
    assert!(kind.len() < TYPE_BYTES && kind.is_ascii(), "a LIME record type: {kind}");
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(&MAGIC.to_be_bytes());
    h.extend_from_slice(&1u16.to_be_bytes());
    h.push(if begin { 0x80 } else { 0 } | if end { 0x40 } else { 0 });
    h.push(0);
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(kind.as_bytes());
    h.resize(HEADER_BYTES, 0);
    h
}

/// A whole record: header, `data` and padding.
pub fn record(kind: &str, data: &[u8], begin: bool, end: bool) -> Vec<u8> {
    let mut r = record_header(kind, data.len() as u64, begin, end);
    r.extend_from_slice(data);
    r.resize(r.len() + padding(data.len() as u64), 0);
    r
}

/// A record found in a file: its type, where its data starts and how long it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// The record type (up to its first NUL).
    pub kind: String,
    /// Byte offset of the data in the file.
    pub offset: u64,
    /// Data bytes (without padding).
    pub len: u64,
}

/// The records of the LIME file `path`, in file order: every header must carry the magic
/// number and version 1, and every record's data must lie inside the file; an error names the
/// record (its number and offset) and what is wrong.
pub fn records(path: &Path) -> Result<Vec<RecordInfo>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let bad = |m: String| Error::Config(format!("{} (LIME): {m}", path.display()));
    let mut found = Vec::new();
    let mut at = 0u64;
    while at < size {
        let n = found.len();
        if size - at < HEADER_BYTES as u64 {
            return Err(bad(format!(
                "record {n} at byte {at}: {} bytes left, a header needs 144",
                size - at
            )));
        }
        let mut h = [0u8; HEADER_BYTES];
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut h))
            .map_err(|e| Error::io(path, e))?;
        let magic = u32::from_be_bytes(h[0..4].try_into().expect("4 bytes"));
        if magic != MAGIC {
            return Err(bad(format!(
                "record {n} at byte {at}: magic number {magic:#010x}, not {MAGIC:#010x}"
            )));
        }
        let version = u16::from_be_bytes(h[4..6].try_into().expect("2 bytes"));
        if version != 1 {
            return Err(bad(format!("record {n} at byte {at}: LIME version {version}, not 1")));
        }
        let len = u64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
        let name = &h[16..];
        let kind = String::from_utf8_lossy(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]);
        let offset = at + HEADER_BYTES as u64;
        if len > size - offset {
            return Err(bad(format!(
                "record {n} ({kind}) at byte {at}: {len} data bytes, the file has {} after the header",
                size - offset
            )));
        }
        found.push(RecordInfo { kind: kind.into_owned(), offset, len });
        at = offset + len + padding(len) as u64;
    }
    Ok(found)
}

/// Whether `bytes` start like a LIME file.
pub fn is_lime(bytes: &[u8]) -> bool {
    bytes.len() >= 6 && bytes[0..4] == MAGIC.to_be_bytes() && bytes[4..6] == 1u16.to_be_bytes()
}

/// The data of `record` of the file `path`, read whole (small records: XML, checksums).
pub fn read_record(path: &Path, record: &RecordInfo) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut data = vec![0u8; record.len as usize];
    file.seek(SeekFrom::Start(record.offset))
        .and_then(|_| file.read_exact(&mut data))
        .map_err(|e| Error::io(path, e))?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_padding_and_flags() {
        let path = std::env::temp_dir().join(format!("flowhmc-lime-{}.lime", std::process::id()));
        let mut bytes = record("ildg-format", b"<xml/>", true, false);
        bytes.extend(record("ildg-binary-data", &[7u8; 16], false, true));
        assert_eq!(bytes.len(), 144 + 8 + 144 + 16);
        // the header bytes of the first record: magic, version, begin flag, length, type
        assert_eq!(&bytes[0..16], &[0x45, 0x67, 0x89, 0xab, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 6]);
        assert_eq!(&bytes[16..27], b"ildg-format");
        assert_eq!(bytes[152 + 6], 0x40);
        std::fs::write(&path, &bytes).unwrap();
        let found = records(&path).unwrap();
        assert_eq!(
            found,
            [
                RecordInfo { kind: "ildg-format".into(), offset: 144, len: 6 },
                RecordInfo { kind: "ildg-binary-data".into(), offset: 152 + 144, len: 16 }
            ]
        );
        assert_eq!(read_record(&path, &found[0]).unwrap(), b"<xml/>");
        assert!(is_lime(&bytes));
        // a truncated file and a damaged magic number name the record
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let e = records(&path).unwrap_err().to_string();
        assert!(e.contains("record 1 (ildg-binary-data) at byte 152: 16 data bytes, the file has 12"), "{e}");
        let mut damaged = bytes.clone();
        damaged[152] = 0;
        std::fs::write(&path, &damaged).unwrap();
        let e = records(&path).unwrap_err().to_string();
        assert!(e.contains("record 1 at byte 152: magic number 0x006789ab"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
