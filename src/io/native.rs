//! flowhmc's native field file: one JSON header line, then the field as little-endian f64.
//!
//! Header keys: `format` ("flowhmc-gauge"), `version` (1), `group` (the field kind: "u1" |
//! "su3" for gauge fields, "scalar" for real scalar fields), `dims` (x first), `checksum`
//! (FNV-1a 64 of the data bytes, hex) and `metadata` (free JSON, used by checkpoints for the
//! update number). Data of a gauge field: links in the order `site * D + mu` (lexicographic,
//! x fastest), each matrix row-major as (re, im) pairs; of a scalar field: phi(x) in
//! lexicographic order.

use super::{read_sites, write_field_file};
use crate::backend::cpu::PackedGroup;
use crate::comm::{agreed, on_root};
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::LinkMatrix;
use crate::scalar::ScalarField;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
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

/// A field that the native format stores: a kind name and a flat list of reals.
pub trait NativeField: Sized {
    /// The `group` entry of the header.
    fn kind() -> &'static str;
    /// The lattice of the field.
    fn lattice(&self) -> &Arc<Lattice>;
    /// Number of reals stored per site on a lattice of `ndim` dimensions.
    fn reals_per_site(ndim: usize) -> usize;
    /// The reals in file order.
    fn to_reals(&self) -> Vec<f64>;
    /// The field from reals in file order (their number already checked); rejects values
    /// that are not a valid field.
    fn from_reals(lattice: Arc<Lattice>, reals: &[f64]) -> std::result::Result<Self, String>;
}

impl<G: PackedGroup> NativeField for GaugeField<G> {
    fn kind() -> &'static str {
        G::NAME
    }
    fn lattice(&self) -> &Arc<Lattice> {
        GaugeField::lattice(self)
    }
    fn reals_per_site(ndim: usize) -> usize {
        2 * G::NC * G::NC * ndim
    }
    fn to_reals(&self) -> Vec<f64> {
        let per_link = 2 * G::NC * G::NC;
        let links = self.to_links();
        let mut reals = vec![0.0; links.len() * per_link];
        for (link, out) in links.iter().zip(reals.chunks_exact_mut(per_link)) {
            link.write_reals(out);
        }
        reals
    }
    fn from_reals(lattice: Arc<Lattice>, reals: &[f64]) -> std::result::Result<Self, String> {
        let links: Vec<G::Elem> = reals.chunks_exact(2 * G::NC * G::NC).map(G::Elem::read_reals).collect();
        check_links::<G>(&lattice, &links)?;
        GaugeField::from_links(lattice, links).map_err(|e| e.to_string())
    }
}

impl NativeField for ScalarField {
    fn kind() -> &'static str {
        "scalar"
    }
    fn lattice(&self) -> &Arc<Lattice> {
        ScalarField::lattice(self)
    }
    fn reals_per_site(_ndim: usize) -> usize {
        1
    }
    fn to_reals(&self) -> Vec<f64> {
        self.values().to_vec()
    }
    fn from_reals(lattice: Arc<Lattice>, reals: &[f64]) -> std::result::Result<Self, String> {
        if let Some(x) = reals.iter().position(|v| !v.is_finite()) {
            return Err(format!("phi at {:?} is {}", lattice.global_coords(x), reals[x]));
        }
        let mut phi = ScalarField::zeros(lattice);
        phi.values_mut().copy_from_slice(reals);
        Ok(phi)
    }
}

/// The FNV-1a 64-bit hash of nothing.
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The FNV-1a 64-bit hash `h` of some bytes continued over `bytes`.
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Whether `bytes` start like a native field file.
pub fn is_native(bytes: &[u8]) -> bool {
    bytes.starts_with(br#"{"format":"flowhmc-gauge""#)
}

/// Writes `field` with `metadata` to `path` atomically, through rank 0 with bounded memory
/// ([`super::slices`]); collective on a cut lattice.
pub fn write<F: NativeField>(field: &F, metadata: serde_json::Value, path: &Path) -> Result<()> {
    let lattice = field.lattice();
    let local: Vec<u8> = field.to_reals().iter().flat_map(|x| x.to_le_bytes()).collect();
    let header = |checksum: &u64| {
        let header = Header {
            format: FORMAT.into(),
            version: 1,
            group: F::kind().into(),
            dims: lattice.global_dims().to_vec(),
            checksum: format!("{checksum:016x}"),
            metadata: metadata.clone(),
        };
        let mut bytes = serde_json::to_vec(&header).expect("header serialises");
        bytes.push(b'\n');
        bytes
    };
    let per_site = F::reals_per_site(lattice.ndim()) * 8;
    let frame = |hash: &u64| (header(hash), Vec::new());
    write_field_file(lattice, path, &local, per_site, frame, FNV_START, |h, bytes| *h = fnv1a(*h, bytes))
}

/// Reads a native file holding a field of kind `F` on the whole lattice its header names (open
/// in time with `open_time`); returns the field and the metadata. The kind, the extents, the
/// data length, the checksum and every value are checked (links in the group to 1e-10, scalars
/// finite).
pub fn read<F: NativeField>(path: &Path, open_time: bool) -> Result<(F, serde_json::Value)> {
    let (_, header, data_len) = open::<F>(path)?;
    let dims = &header.dims;
    // the data length is checked before the lattice's tables are built
    let volume = Lattice::check_extents(dims, || Lattice::table_bytes(dims))
        .map_err(|e| in_file(path, in_header(e)))?;
    check_data_len::<F>(path, dims, volume, data_len)?;
    let lattice = Arc::new(super::whole_lattice(dims, open_time).map_err(|e| in_file(path, in_header(e)))?);
    read_into(path, &lattice)
}

/// Reads a native file of kind `F` onto `lattice` (each rank its block, through rank 0 with
/// bounded memory; collective on a cut lattice): as [`read`], and the file's extents must be
/// the lattice's. Errors are the same on every rank.
pub fn read_into<F: NativeField>(path: &Path, lattice: &Arc<Lattice>) -> Result<(F, serde_json::Value)> {
    let comm = lattice.comm();
    let opened = on_root(comm.as_ref(), || {
        let (reader, header, data_len) = open::<F>(path)?;
        if header.dims != lattice.global_dims() {
            return Err(in_file(
                path,
                format!("the file holds dims {:?}, the lattice is {:?}", header.dims, lattice.global_dims()),
            ));
        }
        check_data_len::<F>(path, &header.dims, lattice.global_volume(), data_len)?;
        Ok((reader, header))
    })?;
    let metadata = comm.broadcast(
        opened
            .as_ref()
            .map_or_else(Vec::new, |(_, h)| serde_json::to_vec(&h.metadata).expect("metadata serialises")),
    );
    let metadata = serde_json::from_slice(&metadata).expect("rank 0 sends valid JSON");
    let per_site = F::reals_per_site(lattice.ndim()) * 8;
    let (mut reader, stated) = opened.map(|(r, h)| (Some(r), h.checksum)).unwrap_or_default();
    let mut sum = FNV_START;
    let (local, mut result) =
        read_sites(lattice, path, reader.as_mut(), per_site, |bytes| sum = fnv1a(sum, bytes));
    if result.is_ok() && comm.rank() == 0 && format!("{sum:016x}") != stated {
        result = Err(in_file(path, format!("checksum mismatch: header {stated}, data {sum:016x}")));
    }
    comm.agree(result)?;
    let reals: Vec<f64> = local.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let field = F::from_reals(lattice.clone(), &reals).map_err(|m| in_file(path, m));
    Ok((agreed(comm.as_ref(), field)?, metadata))
}

/// Longest header line a native file may have.
const MAX_HEADER: u64 = 1 << 20;

/// Opens a native file and checks its header's format and kind: the reader at the data, the
/// header and the number of data bytes.
fn open<F: NativeField>(path: &Path) -> Result<(BufReader<File>, Header, u64)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    (&mut reader).take(MAX_HEADER).read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
    if line.last() != Some(&b'\n') {
        return Err(in_file(path, "no header line".into()));
    }
    let header: Header = serde_json::from_slice(&line[..line.len() - 1])
        .map_err(|e| in_file(path, format!("unreadable header: {e}")))?;
    if header.format != FORMAT || header.version != 1 {
        return Err(in_file(
            path,
            format!("not a flowhmc gauge file (format {}, version {})", header.format, header.version),
        ));
    }
    if header.group != F::kind() {
        return Err(in_file(
            path,
            format!("the file holds a {} field, {} was expected", header.group, F::kind()),
        ));
    }
    Ok((reader, header, len - line.len() as u64))
}

/// Checks that the data holds exactly the `volume` sites of `dims`.
fn check_data_len<F: NativeField>(path: &Path, dims: &[usize], volume: usize, data_len: u64) -> Result<()> {
    let expected = volume.checked_mul(F::reals_per_site(dims.len()) * 8);
    if expected.map(|n| n as u64) != Some(data_len) {
        let need = expected.map_or("more than 2^64".into(), |n| n.to_string());
        return Err(in_file(path, format!("{data_len} data bytes, dims {dims:?} need {need}")));
    }
    Ok(())
}

/// A message about the file at `path`.
fn in_file(path: &Path, m: String) -> Error {
    Error::Config(format!("{}: {m}", path.display()))
}

/// A lattice error about the header's `dims`, worded for the file ("header dims = [..]: ...")
/// rather than for a card.
fn in_header(e: Error) -> String {
    match e {
        Error::Card(m) => m.replacen("lattice.dims", "header dims", 1),
        other => other.to_string(),
    }
}

/// Every link of a block finite and in the group to 1e-10, or zero where a lattice open in time
/// removes it; an invalid one is named by its global coordinates and direction.
pub(crate) fn check_links<G: PackedGroup>(
    lattice: &Lattice,
    links: &[G::Elem],
) -> std::result::Result<(), String> {
    let d = lattice.ndim();
    for (i, link) in links.iter().enumerate() {
        if lattice.is_removed_link(i / d, i % d) && link.norm_sqr() == 0.0 {
            continue;
        }
        let v = G::unitarity_violation(link);
        if v.is_nan() || v >= 1e-10 {
            return Err(format!(
                "the link at {:?} in direction {} is not in {} (violation {v:e}){}",
                lattice.global_coords(i / d),
                i % d,
                G::NAME,
                super::links::open_hint(lattice, i / d, i % d, link.norm_sqr() == 0.0)
            ));
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
        let (v, meta) = read::<GaugeField<Su3>>(&path, false).unwrap();
        assert!(u == v);
        assert_eq!(meta["update"], 12);
        // wrong group, or a scalar field expected
        let err = read::<GaugeField<U1>>(&path, false).unwrap_err().to_string();
        assert!(err.contains("su3 field"), "{err}");
        assert!(read::<ScalarField>(&path, false).unwrap_err().to_string().contains("scalar was expected"));
        // one flipped data byte
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read::<GaugeField<Su3>>(&path, false).unwrap_err().to_string().contains("checksum"));
        // truncated
        std::fs::write(&path, &bytes[..n - 8]).unwrap();
        assert!(read::<GaugeField<Su3>>(&path, false).unwrap_err().to_string().contains("data bytes"));
        // a header claiming a huge lattice is refused by its data length (before 10^9 sites of
        // tables are built) or its extents, in the file's words
        let good = std::fs::read(&path).unwrap();
        let end = good.iter().position(|&b| b == b'\n').unwrap();
        let mut header: serde_json::Value = serde_json::from_slice(&good[..end]).unwrap();
        for (dims, expected) in [
            (serde_json::json!([2048, 2048, 16, 16]), "data bytes, dims [2048, 2048, 16, 16] need "),
            (serde_json::json!([65536, 65536, 2, 2]), "header dims = [65536, 65536, 2, 2]: 1.718e10 sites"),
        ] {
            header["dims"] = dims;
            let mut bytes = serde_json::to_vec(&header).unwrap();
            bytes.extend_from_slice(&good[end..]);
            std::fs::write(&path, &bytes).unwrap();
            let e = read::<GaugeField<Su3>>(&path, false).unwrap_err().to_string();
            assert!(e.contains(expected) && !e.contains("lattice.dims"), "{e}");
        }
        // a scalar field round-trips; a NaN in it is refused
        let phi = ScalarField::gaussian(
            Arc::new(Lattice::new(&[4, 6]).unwrap()),
            &crate::rng::StreamKey::new(1, crate::rng::Purpose::Test, 0),
        );
        write(&phi, serde_json::json!({}), &path).unwrap();
        assert_eq!(read::<ScalarField>(&path, false).unwrap().0, phi);
        let mut nan = phi.clone();
        nan.values_mut()[5] = f64::NAN;
        write(&nan, serde_json::json!({}), &path).unwrap();
        assert!(read::<ScalarField>(&path, false).unwrap_err().to_string().contains("phi at [1, 1] is NaN"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
