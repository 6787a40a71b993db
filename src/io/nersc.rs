//! NERSC gauge configurations (4D SU(3)).
//!
//! A text header between `BEGIN_HEADER` and `END_HEADER` lines (`KEY = value`), then the links
//! in site order t, z, y, x (x fastest, as this crate's lexicographic order) with the four
//! directions x, y, z, t per site. `DATATYPE` is `4D_SU3_GAUGE_3x3` (full matrices) or
//! `4D_SU3_GAUGE` (first two rows; the third is reconstructed as the conjugate cross product).
//! `FLOATING_POINT` is `IEEE64BIG`, `IEEE32BIG` (written here) or the LITTLE variants (read).
//! On read, `CHECKSUM` (the wrapping sum of the stored data as 32-bit words in host order),
//! `PLAQUETTE` (`<Re tr P>`/3) and `LINK_TRACE` (`<Re tr U>`/3) are checked.

use super::links::{self, RealFormat};
use super::{read_sites, write_field_file};
use crate::comm::{agreed, on_root};
use crate::error::{Error, Result};
use crate::ffi::without_kind;
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{LinkMatrix, Su3};
use crate::loops::plaquette_re_tr_sum;
use crate::parallel::global_sum;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// Full 3x3 matrices or the first two rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `4D_SU3_GAUGE_3x3`.
    Full,
    /// `4D_SU3_GAUGE`: two rows, third reconstructed.
    TwoRow,
}

pub use super::links::Precision;

/// NERSC's PLAQUETTE: the average of Re tr P / 3 over all 6 V plaquettes of the links as
/// stored (on a lattice open in time the absent ones count 0; this crate's
/// [`crate::observables::average_plaquette`] on a periodic lattice).
fn file_plaquette(u: &GaugeField<Su3>) -> f64 {
    plaquette_re_tr_sum(u) / (3 * 6 * u.lattice().global_volume()) as f64
}

/// Average of Re tr U / 3 over all links (collective on a cut lattice).
fn link_trace(u: &GaugeField<Su3>) -> f64 {
    let lattice = u.lattice();
    let links = lattice.volume() * 4;
    let sum = global_sum(lattice.comm().as_ref(), links, |i| u.link(i / 4, i % 4).trace().re);
    sum / (3 * lattice.global_volume() * 4) as f64
}

/// The wrapping sum of `data` as 32-bit words in the byte order `big` (or little) endian.
fn word_sum(sum: u32, data: &[u8], big: bool) -> u32 {
    data.chunks_exact(4).fold(sum, |s, w| {
        let w: [u8; 4] = w.try_into().expect("4 bytes");
        s.wrapping_add(if big { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) })
    })
}

/// Writes a 4D SU(3) field in NERSC format, big-endian, through rank 0 with bounded memory
/// (collective on a cut lattice).
pub fn write(u: &GaugeField<Su3>, path: &Path, storage: Storage, precision: Precision) -> Result<()> {
    let lattice = u.lattice();
    let dims = lattice.global_dims();
    if dims.len() != 4 {
        return Err(Error::Config(format!("NERSC files hold 4D fields, this one has dims {dims:?}")));
    }
    let rows = if storage == Storage::Full { 3 } else { 2 };
    let format = RealFormat { precision, big_endian: true };
    let links = u.to_links();
    let mut local = Vec::with_capacity(links.len() * format.matrix_bytes(rows));
    links.iter().for_each(|link| links::encode(&mut local, link, rows, format));
    let datatype = if storage == Storage::Full { "4D_SU3_GAUGE_3x3" } else { "4D_SU3_GAUGE" };
    let fp = if precision == Precision::F64 { "IEEE64BIG" } else { "IEEE32BIG" };
    let (trace, plaquette) = (link_trace(u), file_plaquette(u));
    let header = |checksum: &u32| {
        let mut header = String::from("BEGIN_HEADER\nHDR_VERSION = 1.0\n");
        header += &format!("DATATYPE = {datatype}\nSTORAGE_FORMAT = 1.0\n");
        for (i, l) in dims.iter().enumerate() {
            header += &format!("DIMENSION_{} = {l}\n", i + 1);
        }
        for i in 1..=4 {
            header += &format!("BOUNDARY_{i} = PERIODIC\n");
        }
        header += &format!("CHECKSUM = {checksum:08x}\n");
        header += &format!("LINK_TRACE = {trace:.15}\n");
        header += &format!("PLAQUETTE = {plaquette:.15}\n");
        header += &format!("FLOATING_POINT = {fp}\nCREATOR = flowhmc\nEND_HEADER\n");
        header.into_bytes()
    };
    let per_site = 4 * format.matrix_bytes(rows);
    let frame = |checksum: &u32| (header(checksum), Vec::new());
    write_field_file(lattice, path, &local, per_site, frame, 0u32, |s, data| *s = word_sum(*s, data, true))
}

/// What a NERSC header says about the data.
struct Header {
    dims: Vec<usize>,
    /// Rows stored per matrix (3 or 2).
    rows: usize,
    /// How the reals are stored.
    format: RealFormat,
    /// `CHECKSUM`.
    checksum: u32,
    /// `PLAQUETTE` and `LINK_TRACE`, where given.
    checks: Vec<(&'static str, Option<f64>)>,
}

impl Header {
    /// Bytes of one site's four links.
    fn site_bytes(&self) -> usize {
        4 * self.format.matrix_bytes(self.rows)
    }

    /// Parses the header text (the lines before `END_HEADER`).
    fn parse(text: &str) -> std::result::Result<Header, String> {
        let mut header = BTreeMap::new();
        for line in text.lines().skip(1) {
            if let Some((k, v)) = line.split_once('=') {
                header.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let get = |k: &str| header.get(k).ok_or_else(|| format!("header has no {k}"));
        let dims: Vec<usize> =
            (1..=4).map(|i| dimension(&header, i)).collect::<std::result::Result<_, String>>()?;
        let checks = ["PLAQUETTE", "LINK_TRACE"]
            .into_iter()
            .map(|key| Ok((key, finite_value(&header, key)?)))
            .collect::<std::result::Result<_, String>>()?;
        let rows = match get("DATATYPE")?.as_str() {
            "4D_SU3_GAUGE_3x3" => 3,
            "4D_SU3_GAUGE" => 2,
            other => return Err(format!("unsupported DATATYPE {other}")),
        };
        let (precision, big_endian) = match get("FLOATING_POINT")?.as_str() {
            "IEEE64BIG" => (Precision::F64, true),
            "IEEE64LITTLE" => (Precision::F64, false),
            "IEEE32BIG" | "IEEE32" => (Precision::F32, true),
            "IEEE32LITTLE" => (Precision::F32, false),
            other => return Err(format!("unsupported FLOATING_POINT {other}")),
        };
        let checksum = u32::from_str_radix(get("CHECKSUM")?.trim_start_matches("0x"), 16)
            .map_err(|_| "unreadable CHECKSUM".to_string())?;
        Ok(Header { dims, rows, format: RealFormat { precision, big_endian }, checksum, checks })
    }

    /// How far the header's averages may be from the data's.
    fn tolerance(&self) -> f64 {
        self.format.tolerance()
    }
}

/// Longest header a NERSC file may have.
const MAX_HEADER: u64 = 1 << 20;

/// Opens a NERSC file and reads its header: the reader at the data, the header text (before
/// `END_HEADER`) and the number of data bytes.
fn open(path: &Path) -> Result<(BufReader<File>, String, u64)> {
    let in_file = |m: &str| Error::Config(format!("{} (NERSC): {m}", path.display()));
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let marker = b"END_HEADER\n";
    let mut text = Vec::new();
    while !text.ends_with(marker) {
        let read = (&mut reader)
            .take(MAX_HEADER.saturating_sub(text.len() as u64))
            .read_until(b'\n', &mut text)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            return Err(in_file("no END_HEADER line"));
        }
    }
    let header_len = text.len() as u64;
    text.truncate(text.len() - marker.len());
    let text = String::from_utf8(text).map_err(|_| in_file("header is not text"))?;
    Ok((reader, text, len - header_len))
}

/// Reads a NERSC file onto the whole lattice its header names (open in time with `open_time`);
/// every inconsistency is an error naming the file and the problem.
pub fn read(path: &Path, open_time: bool) -> Result<GaugeField<Su3>> {
    let in_file = |m: String| Error::Config(format!("{} (NERSC): {m}", path.display()));
    let (_, text, data_len) = open(path)?;
    let header = Header::parse(&text).map_err(in_file)?;
    check_data_size(&header.dims, header.site_bytes(), usize::try_from(data_len).unwrap_or(usize::MAX))
        .map_err(in_file)?;
    let lattice = super::whole_lattice(&header.dims, open_time)
        .map_err(|e| in_file(format!("header DIMENSION_1..4 = {:?}: {}", header.dims, without_kind(&e))))?;
    read_into(path, &Arc::new(lattice))
}

/// Reads a NERSC file onto `lattice` (each rank its block, through rank 0 with bounded
/// memory; collective on a cut lattice): as [`read`], and the file's extents must be the
/// lattice's. Errors are the same on every rank.
pub fn read_into(path: &Path, lattice: &Arc<Lattice>) -> Result<GaugeField<Su3>> {
    let comm = lattice.comm();
    let in_file = |m: String| Error::Config(format!("{} (NERSC): {m}", path.display()));
    let opened = on_root(comm.as_ref(), || {
        let (reader, text, data_len) = open(path)?;
        let header = Header::parse(&text).map_err(in_file)?;
        if header.dims != lattice.global_dims() {
            return Err(in_file(format!(
                "the file holds dims {:?}, the lattice is {:?}",
                header.dims,
                lattice.global_dims()
            )));
        }
        check_data_size(&header.dims, header.site_bytes(), usize::try_from(data_len).unwrap_or(usize::MAX))
            .map_err(in_file)?;
        Ok((reader, text))
    })?;
    let (mut reader, text) = opened.unzip();
    let text = String::from_utf8(comm.broadcast(text.unwrap_or_default().into_bytes())).expect("text");
    let header = Header::parse(&text).expect("rank 0 parsed this header");
    let mut sum = 0u32;
    let (local, mut result) = read_sites(lattice, path, reader.as_mut(), header.site_bytes(), |d| {
        sum = word_sum(sum, d, header.format.big_endian)
    });
    if result.is_ok() && comm.rank() == 0 && sum != header.checksum {
        result = Err(in_file(format!("checksum mismatch: header {:08x}, data {sum:08x}", header.checksum)));
    }
    comm.agree(result)?;
    let links = agreed(
        comm.as_ref(),
        links::decode_block(lattice, &local, header.rows, header.format).map_err(in_file),
    )?;
    let (stored, field) = GaugeField::from_stored_links(lattice.clone(), links)?;
    for ((key, stated), value) in header.checks.iter().zip([file_plaquette(&stored), link_trace(&stored)]) {
        if let Some(stated) = stated.filter(|s| (s - value).abs() > header.tolerance()) {
            return Err(in_file(format!("{key} mismatch: header {stated}, data {value}")));
        }
    }
    Ok(field)
}

/// Whether `bytes` start like a NERSC file.
pub fn is_nersc(bytes: &[u8]) -> bool {
    bytes.starts_with(b"BEGIN_HEADER")
}

/// The lattice extent `DIMENSION_i` of a header: an even number >= 2, as flowhmc lattices need.
fn dimension(header: &BTreeMap<String, String>, i: usize) -> std::result::Result<usize, String> {
    let key = format!("DIMENSION_{i}");
    let text = header.get(&key).ok_or_else(|| format!("header has no {key}"))?;
    match text.parse::<usize>() {
        Ok(l) if l >= 2 && l % 2 == 0 => Ok(l),
        Ok(_) => Err(format!("header {key} = {text}: flowhmc lattices need even extents >= 2")),
        Err(_) => Err(format!("header {key} = {text}: not a lattice extent (an even number >= 2)")),
    }
}

/// The value of an optional header key that must be a finite number if given.
fn finite_value(header: &BTreeMap<String, String>, key: &str) -> std::result::Result<Option<f64>, String> {
    let Some(text) = header.get(key) else { return Ok(None) };
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        Ok(_) => Err(format!("header {key} = {text}: not a finite number")),
        Err(_) => Err(format!("header {key} = {text}: not a number")),
    }
}

/// Checks, before anything is allocated for the lattice, that the data holds exactly the
/// links of `dims` at `site_bytes` bytes a site. A single extent that alone needs more than
/// the data is named by its header key.
fn check_data_size(dims: &[usize], site_bytes: usize, data: usize) -> std::result::Result<(), String> {
    let too_long = |&(_, &l): &(usize, &usize)| l.checked_mul(site_bytes).is_none_or(|b| b > data);
    if let Some((i, l)) = dims.iter().enumerate().find(too_long) {
        let sites = data / site_bytes;
        return Err(format!(
            "header DIMENSION_{} = {l}: the file's {data} data bytes hold {sites} sites of {site_bytes} bytes",
            i + 1
        ));
    }
    let needed = dims.iter().try_fold(site_bytes, |b, &l| b.checked_mul(l));
    if needed != Some(data) {
        let needed = needed.map_or("more than 2^64".to_string(), |n| n.to_string());
        return Err(format!(
            "header DIMENSION_1..4 = {dims:?}: the lattice needs {needed} data bytes, the file has {data}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_every_storage_and_precision() {
        let dir = std::env::temp_dir().join(format!("flowhmc-nersc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 6]).unwrap());
        let u = GaugeField::<Su3>::hot(lat, 4);
        for storage in [Storage::Full, Storage::TwoRow] {
            for precision in [Precision::F64, Precision::F32] {
                let path = dir.join(format!("{storage:?}{precision:?}.nersc"));
                write(&u, &path, storage, precision).unwrap();
                let v = read(&path, false).unwrap();
                let tol = if precision == Precision::F64 { 1e-14 } else { 1e-6 };
                assert!(u.max_distance(&v) < tol, "{storage:?} {precision:?}: {}", u.max_distance(&v));
            }
        }
        // corruptions: a data bit, the plaquette line, a truncated file, a wrong datatype
        let path = dir.join("FullF64.nersc");
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        assert!(read(&path, false).unwrap_err().to_string().contains("checksum mismatch"));
        let text = String::from_utf8_lossy(&good).to_string();
        let plaq_line = text.lines().find(|l| l.starts_with("PLAQUETTE")).unwrap().to_string();
        // an edit of the same length keeps the data aligned
        let mut edited_bytes = good.clone();
        let pos = good.windows(plaq_line.len()).position(|w| w == plaq_line.as_bytes()).unwrap();
        let replacement = format!("{:<width$}", "PLAQUETTE = 0.1", width = plaq_line.len());
        edited_bytes[pos..pos + plaq_line.len()].copy_from_slice(replacement.as_bytes());
        std::fs::write(&path, &edited_bytes).unwrap();
        assert!(read(&path, false).unwrap_err().to_string().contains("PLAQUETTE mismatch"));
        std::fs::write(&path, &good[..n - 100]).unwrap();
        assert!(read(&path, false).unwrap_err().to_string().contains("data bytes"));
        std::fs::write(&path, text.replacen("4D_SU3_GAUGE_3x3", "4D_SU2_GAUGE_3x3", 1)).unwrap();
        assert!(read(&path, false).unwrap_err().to_string().contains("DATATYPE"));
        // a two-row file whose rows are not unitary is refused, not silently projected
        let lat = u.lattice().clone();
        let mut links = u.to_links();
        links[7] = links[7].scale(1.01);
        let bad = GaugeField::<Su3>::from_links(lat, links).unwrap();
        for precision in [Precision::F64, Precision::F32] {
            let path = dir.join("nonunitary.nersc");
            write(&bad, &path, Storage::TwoRow, precision).unwrap();
            let err = read(&path, false).unwrap_err().to_string();
            assert!(err.contains("the link at [1, 0, 0, 0] in direction 3 is not in SU(3)"), "{err}");
        }
        assert!(read(&dir.join("missing.nersc"), false).unwrap_err().to_string().contains("missing.nersc"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    /// A NERSC file of a hot 4^4 field with header line `key = ...` replaced by `line`, and
    /// the message of reading it.
    fn read_with(key: &str, line: &str) -> String {
        // a directory per key: the tests run in parallel, with keys of their own
        let dir = std::env::temp_dir().join(format!("flowhmc-nersc-header-{}-{key}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{key}.nersc"));
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        write(&GaugeField::<Su3>::hot(lat, 2), &path, Storage::TwoRow, Precision::F64).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let end = bytes.windows(10).position(|w| w == b"END_HEADER").unwrap();
        let header = String::from_utf8(bytes[..end].to_vec()).unwrap();
        let old = header.lines().find(|l| l.starts_with(&format!("{key} "))).unwrap();
        let mut edited = header.replace(old, line).into_bytes();
        edited.extend_from_slice(&bytes[end..]);
        std::fs::write(&path, edited).unwrap();
        let message = read(&path, false).map(|_| "read".to_string()).unwrap_or_else(|e| e.to_string());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(message.contains(&path.display().to_string()), "{message} does not name the file");
        assert!(!message.contains('\n') && !message.contains("lattice.dims"), "{message}");
        message
    }

    #[test]
    fn dimensions_the_data_cannot_hold_are_refused_naming_the_header_key() {
        for (key, line, expected) in [
            ("DIMENSION_1", "DIMENSION_1 = 4294967296", "header DIMENSION_1 = 4294967296: "),
            (
                "DIMENSION_3",
                "DIMENSION_3 = 18446744073709551615",
                "header DIMENSION_3 = 18446744073709551615: ",
            ),
            ("DIMENSION_2", "DIMENSION_2 = 3", "header DIMENSION_2 = 3: "),
            ("DIMENSION_4", "DIMENSION_4 = 0", "header DIMENSION_4 = 0: "),
            ("DIMENSION_4", "DIMENSION_4 = -4", "header DIMENSION_4 = -4: "),
            ("DIMENSION_4", "DIMENSION_4 = 8", "header DIMENSION_1..4 = [4, 4, 4, 8]: "),
        ] {
            let message = read_with(key, line);
            assert!(message.contains(expected), "{line}: {message}");
        }
        // a file that only needs more data bytes than it has names them
        assert!(read_with("DIMENSION_4", "DIMENSION_4 = 8").contains("the file has 98304"));
    }

    #[test]
    fn a_non_finite_plaquette_or_link_trace_is_refused_naming_the_key() {
        for (key, value) in [("PLAQUETTE", "nan"), ("LINK_TRACE", "NaN"), ("PLAQUETTE", "inf")] {
            let message = read_with(key, &format!("{key} = {value}"));
            assert!(message.contains(&format!("header {key} = {value}: not a finite number")), "{message}");
        }
    }
}
