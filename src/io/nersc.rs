//! NERSC gauge configurations (4D SU(3)).
//!
//! A text header between `BEGIN_HEADER` and `END_HEADER` lines (`KEY = value`), then the links
//! in site order t, z, y, x (x fastest, as this crate's lexicographic order) with the four
//! directions x, y, z, t per site. `DATATYPE` is `4D_SU3_GAUGE_3x3` (full matrices) or
//! `4D_SU3_GAUGE` (first two rows; the third is reconstructed as the conjugate cross product).
//! `FLOATING_POINT` is `IEEE64BIG`, `IEEE32BIG` (written here) or the LITTLE variants (read).
//! On read, `CHECKSUM` (the wrapping sum of the stored data as 32-bit words in host order),
//! `PLAQUETTE` (`<Re tr P>`/3) and `LINK_TRACE` (`<Re tr U>`/3) are checked.

use super::native::check_links;
use super::{read_file, write_atomically};
use crate::error::{Error, Result};
use crate::ffi::without_kind;
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{LinkMatrix, Su3, Su3Matrix};
use crate::observables::average_plaquette;
use num_complex::Complex64;
use std::collections::BTreeMap;
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

/// Floating-point width of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE 754 double.
    F64,
    /// IEEE 754 single.
    F32,
}

impl Precision {
    fn bytes(self) -> usize {
        match self {
            Precision::F64 => 8,
            Precision::F32 => 4,
        }
    }
}

/// Average of Re tr U / 3 over all links.
fn link_trace(u: &GaugeField<Su3>) -> f64 {
    let links = u.to_links();
    links.iter().map(|l| l.trace().re).sum::<f64>() / (3 * links.len()) as f64
}

/// Writes a 4D SU(3) field in NERSC format, big-endian.
pub fn write(u: &GaugeField<Su3>, path: &Path, storage: Storage, precision: Precision) -> Result<()> {
    let dims = u.lattice().dims();
    if dims.len() != 4 {
        return Err(Error::Config(format!("NERSC files hold 4D fields, this one has dims {dims:?}")));
    }
    let rows = if storage == Storage::Full { 3 } else { 2 };
    let links = u.to_links();
    let mut data = Vec::with_capacity(links.len() * rows * 6 * precision.bytes());
    let mut checksum = 0u32;
    for link in &links {
        for z in &link.0[..3 * rows] {
            for x in [z.re, z.im] {
                match precision {
                    Precision::F64 => {
                        let bits = x.to_bits();
                        checksum = checksum.wrapping_add(bits as u32).wrapping_add((bits >> 32) as u32);
                        data.extend_from_slice(&x.to_be_bytes());
                    }
                    Precision::F32 => {
                        let y = x as f32;
                        checksum = checksum.wrapping_add(y.to_bits());
                        data.extend_from_slice(&y.to_be_bytes());
                    }
                }
            }
        }
    }
    let datatype = if storage == Storage::Full { "4D_SU3_GAUGE_3x3" } else { "4D_SU3_GAUGE" };
    let fp = if precision == Precision::F64 { "IEEE64BIG" } else { "IEEE32BIG" };
    let mut header = String::from("BEGIN_HEADER\nHDR_VERSION = 1.0\n");
    header += &format!("DATATYPE = {datatype}\nSTORAGE_FORMAT = 1.0\n");
    for (i, l) in dims.iter().enumerate() {
        header += &format!("DIMENSION_{} = {l}\n", i + 1);
    }
    for i in 1..=4 {
        header += &format!("BOUNDARY_{i} = PERIODIC\n");
    }
    header += &format!("CHECKSUM = {checksum:08x}\n");
    header += &format!("LINK_TRACE = {:.15}\n", link_trace(u));
    header += &format!("PLAQUETTE = {:.15}\n", average_plaquette(u));
    header += &format!("FLOATING_POINT = {fp}\nCREATOR = flowhmc\nEND_HEADER\n");
    let mut bytes = header.into_bytes();
    bytes.extend_from_slice(&data);
    write_atomically(path, &bytes)
}

/// Reads a NERSC file; every inconsistency is an error naming the file and the problem.
pub fn read(path: &Path) -> Result<GaugeField<Su3>> {
    let bytes = read_file(path)?;
    parse(&bytes).map_err(|m| Error::Config(format!("{} (NERSC): {m}", path.display())))
}

/// Whether `bytes` start like a NERSC file.
pub fn is_nersc(bytes: &[u8]) -> bool {
    bytes.starts_with(b"BEGIN_HEADER")
}

/// Parses the bytes of a NERSC file (see [`read`]); errors are messages without the path.
pub fn parse(bytes: &[u8]) -> std::result::Result<GaugeField<Su3>, String> {
    let marker = b"END_HEADER\n";
    let end = bytes.windows(marker.len()).position(|w| w == marker).ok_or("no END_HEADER line")?;
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| "header is not text")?;
    let mut header = BTreeMap::new();
    for line in text.lines().skip(1) {
        if let Some((k, v)) = line.split_once('=') {
            header.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let get = |k: &str| header.get(k).ok_or_else(|| format!("header has no {k}"));
    let dims: Vec<usize> =
        (1..=4).map(|i| dimension(&header, i)).collect::<std::result::Result<_, String>>()?;
    let checks: Vec<(&str, Option<f64>)> = ["PLAQUETTE", "LINK_TRACE"]
        .into_iter()
        .map(|key| Ok((key, finite_value(&header, key)?)))
        .collect::<std::result::Result<_, String>>()?;
    let rows = match get("DATATYPE")?.as_str() {
        "4D_SU3_GAUGE_3x3" => 3,
        "4D_SU3_GAUGE" => 2,
        other => return Err(format!("unsupported DATATYPE {other}")),
    };
    let (width, big) = match get("FLOATING_POINT")?.as_str() {
        "IEEE64BIG" => (8, true),
        "IEEE64LITTLE" => (8, false),
        "IEEE32BIG" | "IEEE32" => (4, true),
        "IEEE32LITTLE" => (4, false),
        other => return Err(format!("unsupported FLOATING_POINT {other}")),
    };
    let data = &bytes[end + marker.len()..];
    check_data_size(&dims, 4 * rows * 6 * width, data.len())?;
    let lattice = Arc::new(
        Lattice::new(&dims).map_err(|e| format!("header DIMENSION_1..4 = {dims:?}: {}", without_kind(&e)))?,
    );
    let mut checksum = 0u32;
    let values: Vec<f64> = data
        .chunks_exact(width)
        .map(|c| {
            if width == 8 {
                let b: [u8; 8] = c.try_into().unwrap();
                let x = if big { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) };
                let bits = x.to_bits();
                checksum = checksum.wrapping_add(bits as u32).wrapping_add((bits >> 32) as u32);
                x
            } else {
                let b: [u8; 4] = c.try_into().unwrap();
                let x = if big { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
                checksum = checksum.wrapping_add(x.to_bits());
                x as f64
            }
        })
        .collect();
    let stated = u32::from_str_radix(get("CHECKSUM")?.trim_start_matches("0x"), 16)
        .map_err(|_| "unreadable CHECKSUM".to_string())?;
    if stated != checksum {
        return Err(format!("checksum mismatch: header {stated:08x}, data {checksum:08x}"));
    }
    // stored entries must lie on SU(3) to the precision of the file before the third row is
    // reconstructed (two-row) or single-precision round-off is removed by projection
    let tolerance = if width == 8 { 1e-10 } else { 1e-6 };
    let links = values
        .chunks_exact(rows * 6)
        .enumerate()
        .map(|(i, v)| {
            let mut m = [Complex64::new(0.0, 0.0); 9];
            for (k, z) in m.iter_mut().take(3 * rows).enumerate() {
                *z = Complex64::new(v[2 * k], v[2 * k + 1]);
            }
            let stored = Su3Matrix(m);
            let projected = <Su3 as crate::group::Group>::project(&stored);
            let off = (0..3 * rows).map(|k| (stored.0[k] - projected.0[k]).norm()).fold(0.0, f64::max);
            if off.is_nan() || off > tolerance {
                return Err(format!("link {i} is not in SU(3) (stored rows off by {off:e})"));
            }
            Ok(if rows == 3 && width == 8 { stored } else { projected })
        })
        .collect::<std::result::Result<Vec<Su3Matrix>, String>>()?;
    check_links::<Su3>(&links)?;
    let field = GaugeField::from_links(lattice, links).map_err(|e| e.to_string())?;
    for ((key, stated), value) in checks.into_iter().zip([average_plaquette(&field), link_trace(&field)]) {
        if let Some(stated) = stated.filter(|s| (s - value).abs() > tolerance) {
            return Err(format!("{key} mismatch: header {stated}, data {value}"));
        }
    }
    Ok(field)
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
                let v = read(&path).unwrap();
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
        assert!(read(&path).unwrap_err().to_string().contains("checksum mismatch"));
        let text = String::from_utf8_lossy(&good).to_string();
        let plaq_line = text.lines().find(|l| l.starts_with("PLAQUETTE")).unwrap().to_string();
        // an edit of the same length keeps the data aligned
        let mut edited_bytes = good.clone();
        let pos = good.windows(plaq_line.len()).position(|w| w == plaq_line.as_bytes()).unwrap();
        let replacement = format!("{:<width$}", "PLAQUETTE = 0.1", width = plaq_line.len());
        edited_bytes[pos..pos + plaq_line.len()].copy_from_slice(replacement.as_bytes());
        std::fs::write(&path, &edited_bytes).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("PLAQUETTE mismatch"));
        std::fs::write(&path, &good[..n - 100]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("data bytes"));
        std::fs::write(&path, text.replacen("4D_SU3_GAUGE_3x3", "4D_SU2_GAUGE_3x3", 1)).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("DATATYPE"));
        // a two-row file whose rows are not unitary is refused, not silently projected
        let lat = u.lattice().clone();
        let mut links = u.to_links();
        links[7] = links[7].scale(1.01);
        let bad = GaugeField::<Su3>::from_links(lat, links).unwrap();
        for precision in [Precision::F64, Precision::F32] {
            let path = dir.join("nonunitary.nersc");
            write(&bad, &path, Storage::TwoRow, precision).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(err.contains("link 7 is not in SU(3)"), "{err}");
        }
        assert!(read(&dir.join("missing.nersc")).unwrap_err().to_string().contains("missing.nersc"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    /// A NERSC file of a hot 4^4 field with header line `key = ...` replaced by `line`, and
    /// the message of reading it.
    fn read_with(key: &str, line: &str) -> String {
        let dir = std::env::temp_dir().join(format!("flowhmc-nersc-header-{}", std::process::id()));
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
        let message = read(&path).map(|_| "read".to_string()).unwrap_or_else(|e| e.to_string());
        std::fs::remove_file(&path).unwrap();
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
