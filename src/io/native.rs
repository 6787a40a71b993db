//! flowhmc's native gauge file: one JSON header line, then the links as little-endian f64.
//!
//! Header keys: `format` ("flowhmc-gauge"), `version` (1), `group` ("u1" | "su3"), `dims`
//! (x first), `checksum` (FNV-1a 64 of the data bytes, hex) and `metadata` (free JSON, used by
//! checkpoints for the update number). Data: links in the order `site * D + mu` (lexicographic,
//! x fastest), each matrix row-major as (re, im) pairs.

use super::{read_file, write_atomically};
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{Group, LinkMatrix};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

const FORMAT: &str = "flowhmc-gauge";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    group: String,
    dims: Vec<usize>,
    checksum: String,
    metadata: serde_json::Value,
}

/// FNV-1a 64-bit hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Whether `bytes` start like a native gauge file.
pub fn is_native(bytes: &[u8]) -> bool {
    bytes.starts_with(br#"{"format":"flowhmc-gauge""#)
}

/// Writes `u` with `metadata` to `path` atomically.
pub fn write<G: Group>(u: &GaugeField<G>, metadata: serde_json::Value, path: &Path) -> Result<()> {
    let per_link = 2 * G::NC * G::NC;
    let mut reals = vec![0.0; per_link];
    let links = u.to_links();
    let mut data = Vec::with_capacity(links.len() * per_link * 8);
    for link in &links {
        link.write_reals(&mut reals);
        reals.iter().for_each(|x| data.extend_from_slice(&x.to_le_bytes()));
    }
    let header = Header {
        format: FORMAT.into(),
        version: 1,
        group: G::NAME.into(),
        dims: u.lattice().dims().to_vec(),
        checksum: format!("{:016x}", fnv1a(&data)),
        metadata,
    };
    let mut bytes = serde_json::to_vec(&header).expect("header serialises");
    bytes.push(b'\n');
    bytes.extend_from_slice(&data);
    write_atomically(path, &bytes)
}

/// Reads a native file of group `G`; returns the field and the metadata. The group, the
/// checksum and the data length are checked, and every link must be in the group to 1e-10.
pub fn read<G: Group>(path: &Path) -> Result<(GaugeField<G>, serde_json::Value)> {
    let bytes = read_file(path)?;
    parse(&bytes).map_err(|m| Error::Config(format!("{}: {m}", path.display())))
}

/// Parses the bytes of a native file (see [`read`]); errors are messages without the path.
pub fn parse<G: Group>(bytes: &[u8]) -> std::result::Result<(GaugeField<G>, serde_json::Value), String> {
    let end = bytes.iter().position(|&b| b == b'\n').ok_or("no header line")?;
    let header: Header =
        serde_json::from_slice(&bytes[..end]).map_err(|e| format!("unreadable header: {e}"))?;
    if header.format != FORMAT || header.version != 1 {
        return Err(format!(
            "not a flowhmc gauge file (format {}, version {})",
            header.format, header.version
        ));
    }
    if header.group != G::NAME {
        return Err(format!("the file holds a {} field, {} was expected", header.group, G::NAME));
    }
    let lattice = Arc::new(Lattice::new(&header.dims).map_err(|e| e.to_string())?);
    let data = &bytes[end + 1..];
    let per_link = 2 * G::NC * G::NC;
    let expected = lattice.volume() * lattice.ndim() * per_link * 8;
    if data.len() != expected {
        return Err(format!("{} data bytes, dims {:?} need {expected}", data.len(), header.dims));
    }
    let sum = format!("{:016x}", fnv1a(data));
    if sum != header.checksum {
        return Err(format!("checksum mismatch: header {}, data {sum}", header.checksum));
    }
    let reals: Vec<f64> = data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let links: Vec<G::Elem> = reals.chunks_exact(per_link).map(G::Elem::read_reals).collect();
    check_links::<G>(&links)?;
    let field = GaugeField::from_links(lattice, links).map_err(|e| e.to_string())?;
    Ok((field, header.metadata))
}

/// Every link finite and in the group to 1e-10.
pub(crate) fn check_links<G: Group>(links: &[G::Elem]) -> std::result::Result<(), String> {
    for (i, link) in links.iter().enumerate() {
        let v = G::unitarity_violation(link);
        if v.is_nan() || v >= 1e-10 {
            return Err(format!("link {i} is not in {} (violation {v:e})", G::NAME));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Su3, U1};

    #[test]
    fn round_trip_and_refusals() {
        let dir = std::env::temp_dir().join(format!("flowhmc-native-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("u.cfg");
        let lat = Arc::new(Lattice::new(&[4, 4, 2, 2]).unwrap());
        let u = GaugeField::<Su3>::hot(lat, 3);
        write(&u, serde_json::json!({"update": 12}), &path).unwrap();
        let (v, meta) = read::<Su3>(&path).unwrap();
        assert!(u == v);
        assert_eq!(meta["update"], 12);
        // wrong group
        let err = read::<U1>(&path).unwrap_err().to_string();
        assert!(err.contains("su3 field"), "{err}");
        // one flipped data byte
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read::<Su3>(&path).unwrap_err().to_string().contains("checksum"));
        // truncated
        std::fs::write(&path, &bytes[..n - 8]).unwrap();
        assert!(read::<Su3>(&path).unwrap_err().to_string().contains("data bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
