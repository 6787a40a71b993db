//! ILDG gauge configurations (4D SU(3)), the International Lattice Data Grid's exchange format,
//! as Grid, Chroma (QIO) and tmLQCD write it: a LIME file ([`super::lime`]) with the records
//! - `ildg-format`: XML `<ildgFormat>` with `field` = su3gauge, `precision` 32 or 64 (bits
//!   per real) and the extents `lx`, `ly`, `lz`, `lt`;
//! - `ildg-data-lfn`: the logical file name (written as the file's name);
//! - `ildg-binary-data`: the links, big-endian IEEE reals, sites in the order t, z, y, x (x
//!   fastest, this crate's lexicographic order), per site U_x, U_y, U_z, U_t (the link from x to
//!   x + mu), each matrix row by row with entries (re, im);
//! - `scidac-checksum`: XML `<scidacChecksum>` with `suma` and `sumb` in hexadecimal: for the
//!   site of lexicographic index r with CRC-32 (zlib's) c of its bytes, suma is the XOR of c
//!   rotated left by r mod 29 and sumb of c rotated left by r mod 31.
//!
//! Written as one message of these four records (each type once, the XML without a trailing
//! NUL, as Grid's reader and lyncs-io need). On read, `ildg-format` and `ildg-binary-data` are
//! required; the checksum is checked when the file has one; other records (SciDAC XML, Grid's
//! metadata) are skipped. Every link must lie on SU(3) to the precision of the file.

use super::links::{self, Precision, RealFormat};
use super::{lime, read_sites, write_field_file};
use crate::comm::{agreed, on_root};
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::Su3;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// The SciDAC checksum of data in file order: (suma, sumb, sites seen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Checksum {
    suma: u32,
    sumb: u32,
    sites: u64,
}

impl Checksum {
    /// Adds the sites in `data`, `site_bytes` each, following those seen.
    fn update(&mut self, data: &[u8], site_bytes: usize) {
        for site in data.chunks_exact(site_bytes) {
            let c = crc32fast::hash(site);
            self.suma ^= c.rotate_left((self.sites % 29) as u32);
            self.sumb ^= c.rotate_left((self.sites % 31) as u32);
            self.sites += 1;
        }
    }

    fn xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><scidacChecksum><version>1.0</version>\
             <suma>{:x}</suma><sumb>{:x}</sumb></scidacChecksum>",
            self.suma, self.sumb
        )
    }
}

/// The `ildg-format` XML of a field of extents `dims` (x, y, z, t) in `precision`.
fn format_xml(dims: &[usize], precision: Precision) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ildgFormat xmlns=\"http://www.lqcd.org/ildg\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.lqcd.org/ildg/filefmt.xsd\"><version>1.0</version>\
         <field>su3gauge</field><precision>{}</precision><lx>{}</lx><ly>{}</ly><lz>{}</lz><lt>{}</lt></ildgFormat>",
        8 * precision.bytes(),
        dims[0],
        dims[1],
        dims[2],
        dims[3]
    )
}

/// Writes a 4D SU(3) field as an ILDG file in `precision`, through rank 0 with bounded memory
/// (collective on a cut lattice).
pub fn write(u: &GaugeField<Su3>, path: &Path, precision: Precision) -> Result<()> {
    let lattice = u.lattice();
    let dims = lattice.global_dims();
    if dims.len() != 4 {
        return Err(Error::Config(format!("ILDG files hold 4D fields, this one has dims {dims:?}")));
    }
    let format = RealFormat { precision, big_endian: true };
    let site_bytes = 4 * format.matrix_bytes(3);
    let mut local = Vec::with_capacity(lattice.volume() * site_bytes);
    u.to_links().iter().for_each(|link| links::encode(&mut local, link, 3, format));
    let lfn = path.file_name().map_or("flowhmc".into(), |n| n.to_string_lossy().into_owned());
    let data_len = (lattice.global_volume() * site_bytes) as u64;
    let mut header = lime::record("ildg-format", format_xml(dims, precision).as_bytes(), true, false);
    header.extend(lime::record("ildg-data-lfn", lfn.as_bytes(), false, false));
    header.extend(lime::record_header("ildg-binary-data", data_len, false, false));
    let frame = |sum: &Checksum| {
        let mut trailer = vec![0u8; lime::padding(data_len)];
        trailer.extend(lime::record("scidac-checksum", sum.xml().as_bytes(), false, true));
        (header.clone(), trailer)
    };
    write_field_file(lattice, path, &local, site_bytes, frame, Checksum::default(), |sum, data| {
        sum.update(data, site_bytes)
    })
}

/// The text of element `tag` in `xml` (whitespace and NUL trimmed), if present.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].trim_matches(|c: char| c.is_whitespace() || c == '\0'))
}

/// What an ILDG file holds: extents, reals, where the links are and the stated checksum.
struct Contents {
    dims: Vec<usize>,
    format: RealFormat,
    data: lime::RecordInfo,
    checksum: Option<(u32, u32)>,
}

impl Contents {
    /// Reads the records of `path` and checks them against each other; an error names the
    /// file, the record and what is wrong.
    fn read(path: &Path) -> Result<Contents> {
        let bad = |m: String| Error::Config(format!("{} (ILDG): {m}", path.display()));
        let records = lime::records(path)?;
        let find = |kind: &str| -> Result<Option<&lime::RecordInfo>> {
            let mut found = records.iter().filter(|r| r.kind == kind);
            match (found.next(), found.next()) {
                (first, None) => Ok(first),
                _ => Err(bad(format!("record {kind} appears more than once"))),
            }
        };
        let text = |r: &lime::RecordInfo| -> Result<String> {
            Ok(String::from_utf8_lossy(&lime::read_record(path, r)?).into_owned())
        };
        let format_record = find("ildg-format")?.ok_or_else(|| bad("no ildg-format record".into()))?;
        let data = find("ildg-binary-data")?.ok_or_else(|| bad("no ildg-binary-data record".into()))?.clone();
        let xml = text(format_record)?;
        let value =
            |tag: &str| element(&xml, tag).ok_or_else(|| bad(format!("record ildg-format has no <{tag}>")));
        if value("field")? != "su3gauge" {
            return Err(bad(format!("record ildg-format: field {}, not su3gauge", value("field")?)));
        }
        let precision = match value("precision")? {
            "64" => Precision::F64,
            "32" => Precision::F32,
            other => return Err(bad(format!("record ildg-format: precision {other}, not 32 or 64"))),
        };
        let dims = ["lx", "ly", "lz", "lt"]
            .iter()
            .map(|tag| match value(tag)?.parse::<usize>() {
                Ok(l) if l >= 2 && l % 2 == 0 => Ok(l),
                _ => Err(bad(format!(
                    "record ildg-format: <{tag}>{}</{tag}> is not an even extent >= 2",
                    value(tag)?
                ))),
            })
            .collect::<Result<Vec<usize>>>()?;
        let format = RealFormat { precision, big_endian: true };
        let expected =
            dims.iter().try_fold(4 * format.matrix_bytes(3) as u64, |b, &l| b.checked_mul(l as u64));
        if expected != Some(data.len) {
            return Err(bad(format!(
                "record ildg-binary-data: {} bytes, the extents {dims:?} in {}-bit reals need {}",
                data.len,
                8 * precision.bytes(),
                expected.map_or("more than 2^64".into(), |n| n.to_string())
            )));
        }
        let checksum = match find("scidac-checksum")? {
            None => None,
            Some(r) => {
                let xml = text(r)?;
                let hex = |tag: &str| {
                    element(&xml, tag)
                        .and_then(|h| u32::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                        .ok_or_else(|| bad(format!("record scidac-checksum: no hexadecimal <{tag}>")))
                };
                Some((hex("suma")?, hex("sumb")?))
            }
        };
        Ok(Contents { dims, format, data, checksum })
    }
}

/// Reads an ILDG file onto the whole lattice its `ildg-format` record names (open in time with
/// `open_time`).
pub fn read(path: &Path, open_time: bool) -> Result<GaugeField<Su3>> {
    let contents = Contents::read(path)?;
    let lattice = super::whole_lattice(&contents.dims, open_time).map_err(|e| {
        Error::Config(format!(
            "{} (ILDG): extents {:?}: {}",
            path.display(),
            contents.dims,
            crate::ffi::without_kind(&e)
        ))
    })?;
    read_into(path, &Arc::new(lattice))
}

/// Reads an ILDG file onto `lattice` (each rank its block, through rank 0 with bounded
/// memory; collective on a cut lattice), whose extents the file must have. Errors name the
/// file, the record and the mismatch, and are the same on every rank.
pub fn read_into(path: &Path, lattice: &Arc<Lattice>) -> Result<GaugeField<Su3>> {
    let comm = lattice.comm();
    let in_file = |m: String| Error::Config(format!("{} (ILDG): {m}", path.display()));
    let opened = on_root(comm.as_ref(), || {
        let contents = Contents::read(path)?;
        if contents.dims != lattice.global_dims() {
            return Err(in_file(format!(
                "record ildg-format: extents {:?}, the lattice is {:?}",
                contents.dims,
                lattice.global_dims()
            )));
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(contents.data.offset)).map_err(|e| Error::io(path, e))?;
        let precision = u8::from(contents.format.precision == Precision::F64);
        Ok((std::io::BufReader::new(file), (precision, contents.checksum)))
    })?;
    let (mut reader, stated) = opened.unzip();
    let is_f64 = comm.broadcast(vec![stated.map_or(0, |s| s.0)]) == [1];
    let format =
        RealFormat { precision: if is_f64 { Precision::F64 } else { Precision::F32 }, big_endian: true };
    let site_bytes = 4 * format.matrix_bytes(3);
    let mut sum = Checksum::default();
    let (local, mut result) =
        read_sites(lattice, path, reader.as_mut(), site_bytes, |d| sum.update(d, site_bytes));
    if let (Ok(()), Some((_, Some((a, b))))) = (&result, stated)
        && (a, b) != (sum.suma, sum.sumb)
    {
        result = Err(in_file(format!(
            "record scidac-checksum: suma {a:x} sumb {b:x}, the data gives suma {:x} sumb {:x}",
            sum.suma, sum.sumb
        )));
    }
    comm.agree(result)?;
    let links = agreed(
        comm.as_ref(),
        links::decode_block(lattice, &local, 3, format)
            .map_err(|m| in_file(format!("record ildg-binary-data: {m}"))),
    )?;
    GaugeField::from_links(lattice.clone(), links)
}

/// Whether `bytes` start like an ILDG (LIME) file.
pub fn is_ildg(bytes: &[u8]) -> bool {
    lime::is_lime(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum of a unit 4^4 field in f64: every site's CRC is ec319fb2 and the sums are
    /// those tmLQCD stored in lyncs-io's test file unity.lime (suma 35b49a1b, sumb b49a1b35).
    #[test]
    fn the_scidac_checksum_of_a_unit_field_is_the_published_one() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        let u = GaugeField::<Su3>::cold(lat.clone());
        let format = RealFormat { precision: Precision::F64, big_endian: true };
        let mut data = Vec::new();
        u.to_links().iter().for_each(|l| links::encode(&mut data, l, 3, format));
        assert_eq!(crc32fast::hash(&data[..576]), 0xec31_9fb2);
        let mut sum = Checksum::default();
        sum.update(&data, 576);
        assert_eq!((sum.suma, sum.sumb, sum.sites), (0x35b4_9a1b, 0xb49a_1b35, 256));
    }

    #[test]
    fn round_trips_and_corruptions_name_the_record() {
        let dir = std::env::temp_dir().join(format!("flowhmc-ildg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let u = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&[4, 4, 6, 8]).unwrap()), 3);
        for (precision, tolerance) in [(Precision::F64, 0.0), (Precision::F32, 1e-6)] {
            let path = dir.join(format!("{precision:?}.lime"));
            write(&u, &path, precision).unwrap();
            let v = read(&path, false).unwrap();
            assert!(u.max_distance(&v) <= tolerance, "{precision:?}: {}", u.max_distance(&v));
            let kinds: Vec<String> = lime::records(&path).unwrap().into_iter().map(|r| r.kind).collect();
            assert_eq!(kinds, ["ildg-format", "ildg-data-lfn", "ildg-binary-data", "scidac-checksum"]);
        }
        let path = dir.join("F64.lime");
        let good = std::fs::read(&path).unwrap();
        let message = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read(&path, false).unwrap_err().to_string()
        };
        let data = lime::records(&path).unwrap()[2].offset as usize;
        let mut flipped = good.clone();
        flipped[data + 1000] ^= 1;
        let e = message(&flipped);
        assert!(e.contains("(ILDG): record scidac-checksum: suma"), "{e}");
        // an edit of the same length in the XML keeps the records in place
        let edited = |from: &str, to: &str| {
            assert_eq!(from.len(), to.len());
            let at = good.windows(from.len()).position(|w| w == from.as_bytes()).unwrap();
            let mut bytes = good.clone();
            bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
            bytes
        };
        let lt = |to: &str| message(&edited("<lt>8</lt>", to));
        let e = lt("<lt>4</lt>");
        assert!(
            e.contains(
                "record ildg-binary-data: 442368 bytes, the extents [4, 4, 6, 4] in 64-bit reals need 221184"
            ),
            "{e}"
        );
        let e = lt("<lt>7</lt>");
        assert!(e.contains("record ildg-format: <lt>7</lt> is not an even extent"), "{e}");
        let e = message(&edited("su3gauge", "su2gauge"));
        assert!(e.contains("record ildg-format: field su2gauge, not su3gauge"), "{e}");
        let e = message(&good[..good.len() - 300]);
        assert!(e.contains("F64.lime (LIME): record 2 (ildg-binary-data)"), "{e}");
        // a field of other extents than the lattice's
        std::fs::write(&path, &good).unwrap();
        let other = Arc::new(Lattice::new(&[4, 4, 4, 8]).unwrap());
        let e = read_into(&path, &other).unwrap_err().to_string();
        assert!(e.contains("record ildg-format: extents [4, 4, 6, 8], the lattice is [4, 4, 4, 8]"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
