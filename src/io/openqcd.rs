//! openQCD's configuration files (4D SU(3)), as its `export_cnfg` writes and `import_cnfg`
//! reads them (openQCD 2.4, modules/archive/archive.c), all little-endian:
//! - header: the extents N0, N1, N2, N3 (int32; openQCD's direction 0 is time, 1..3 are
//!   this crate's x, y, z) and the average plaquette (f64) in openQCD's normalisation,
//!   sum_p Re tr U(p) / (6 V), 3 for the unit field (three times this crate's
//!   [`crate::observables::average_plaquette`] on a periodic lattice; on a lattice open in time
//!   the same sum and divisor, the plaquettes through the removed links counting 0, as
//!   openQCD's `export_cnfg` writes it with `plaq_sum_dble`);
//! - the links, time slice by time slice (x0 slowest, then x1, x2, x3 fastest), of the odd
//!   points only (x0 + x1 + x2 + x3 odd): per point the 8 links attached to it,
//!   U(x, 0), U(x - 0, 0), U(x, 1), U(x - 1, 1), ..., U(x, 3), U(x - 3, 3) (periodic), each
//!   3x3 complex matrix row by row as (re, im) f64. Every link appears once.
//!
//! On read the stated plaquette must be the links' within openQCD's own tolerance,
//! |P_file - P_links| <= sqrt(64 n_p) eps + 64 (|P_file| + |P_links|) eps for the plaquette
//! sums P over n_p = 6 V plaquettes, eps the f64 epsilon. Files go through rank 0 one time
//! slice at a time ([`super::slices`]), with three slices of links held there.

use super::links::{self, Precision, RealFormat};
use super::{AtomicFile, slices};
use crate::comm::{agreed, on_root};
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::loops::plaquette_re_tr_sum;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Bytes of a link matrix (f64).
const MATRIX: usize = 144;
/// Bytes of the header: four int32 extents and the plaquette.
const HEADER: usize = 24;
/// Bytes of a site's four forward links in this crate's order (directions x, y, z, t).
const SITE: usize = 4 * MATRIX;
const FORMAT: RealFormat = RealFormat { precision: Precision::F64, big_endian: false };

/// The geometry of one time slice: this crate's extents (x, y, z) of the slice.
#[derive(Clone, Copy)]
struct Slice {
    lx: usize,
    ly: usize,
    lz: usize,
}

impl Slice {
    /// The slice offset of (x, y, z) in this crate's order (x fastest), periodic.
    fn site(&self, x: usize, y: usize, z: usize) -> usize {
        x % self.lx + self.lx * (y % self.ly + self.ly * (z % self.lz))
    }

    /// Bytes of the slice's record in the file: its odd points, 8 links each.
    fn record_bytes(&self) -> usize {
        self.lx * self.ly * self.lz / 2 * 8 * MATRIX
    }

    /// The odd points of the slice at time `t` in openQCD's order (x1 = x slowest, x3 = z
    /// fastest), as (x, y, z).
    fn odd_points(self, t: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..self.lx)
            .flat_map(move |x| (0..self.ly).flat_map(move |y| (0..self.lz).map(move |z| (x, y, z))))
            .filter(move |&(x, y, z)| (t + x + y + z) % 2 == 1)
    }
}

/// The link (site, mu) of slice data in this crate's order.
fn link(slice: &[u8], site: usize, mu: usize) -> &[u8] {
    &slice[(site * 4 + mu) * MATRIX..(site * 4 + mu + 1) * MATRIX]
}

/// The file record of time slice `t` from the slice's data `current` and the previous
/// slice's `previous` (whose time links are the odd points' backward ones).
fn encode_record(g: Slice, t: usize, current: &[u8], previous: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(g.record_bytes());
    for (x, y, z) in g.odd_points(t) {
        let s = g.site(x, y, z);
        let back = [g.site(x + g.lx - 1, y, z), g.site(x, y + g.ly - 1, z), g.site(x, y, z + g.lz - 1)];
        record.extend_from_slice(link(current, s, 3));
        record.extend_from_slice(link(previous, s, 3));
        for (mu, &b) in back.iter().enumerate() {
            record.extend_from_slice(link(current, s, mu));
            record.extend_from_slice(link(current, b, mu));
        }
    }
    record
}

/// Fills slice `t`'s data from the file records of slices `t` (`current`) and `t + 1`
/// (`next`, whose odd points hold the even points' forward time links as backward ones).
fn decode_record(g: Slice, t: usize, current: &[u8], next: &[u8], slice: &mut [u8]) {
    let mut put = |site: usize, mu: usize, m: &[u8]| {
        slice[(site * 4 + mu) * MATRIX..(site * 4 + mu + 1) * MATRIX].copy_from_slice(m)
    };
    let matrix = |record: &[u8], k: usize, j: usize| {
        let at = (8 * k + j) * MATRIX;
        record[at..at + MATRIX].to_vec()
    };
    for (k, (x, y, z)) in g.odd_points(t).enumerate() {
        let s = g.site(x, y, z);
        let back = [g.site(x + g.lx - 1, y, z), g.site(x, y + g.ly - 1, z), g.site(x, y, z + g.lz - 1)];
        put(s, 3, &matrix(current, k, 0));
        for (mu, &b) in back.iter().enumerate() {
            put(s, mu, &matrix(current, k, 2 + 2 * mu));
            put(b, mu, &matrix(current, k, 3 + 2 * mu));
        }
    }
    // the odd points of slice t + 1 sit above the even points of slice t
    for (k, (x, y, z)) in g.odd_points(t + 1).enumerate() {
        put(g.site(x, y, z), 3, &matrix(next, k, 1));
    }
}

/// The header of a field of extents `dims` (x, y, z, t) with openQCD's plaquette `plaquette`.
fn header(dims: &[usize], plaquette: f64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    for l in [dims[3], dims[0], dims[1], dims[2]] {
        h.extend_from_slice(&(l as i32).to_le_bytes());
    }
    h.extend_from_slice(&plaquette.to_le_bytes());
    h
}

/// Writes a 4D SU(3) field as openQCD exports it, through rank 0 with three time slices held
/// there (collective on a cut lattice). Slice 0's record needs the last slice's time links,
/// so it is written last, in its place.
pub fn write(u: &GaugeField<Su3>, path: &Path) -> Result<()> {
    let lattice = u.lattice();
    let dims = lattice.global_dims().to_vec();
    if dims.len() != 4 {
        return Err(Error::Config(format!("openQCD files hold 4D fields, this one has dims {dims:?}")));
    }
    let g = Slice { lx: dims[0], ly: dims[1], lz: dims[2] };
    let mut local = Vec::with_capacity(lattice.volume() * SITE);
    u.to_links().iter().for_each(|m| links::encode(&mut local, m, 3, FORMAT));
    let plaquette = plaquette_re_tr_sum(u) / (6.0 * lattice.global_volume() as f64);
    let root = lattice.comm().rank() == 0;
    let mut file = root.then(|| -> Result<AtomicFile> {
        let mut file = AtomicFile::create(path)?;
        file.write_all(&header(&dims, plaquette))?;
        file.write_all(&vec![0u8; g.record_bytes()])?;
        Ok(file)
    });
    let (mut t, mut first, mut previous) = (0, Vec::new(), Vec::new());
    let streamed = slices::gather_slices(lattice, &local, SITE, |slice| {
        let Some(Ok(f)) = &mut file else { return Ok(()) };
        if t == 0 {
            first = slice.to_vec();
        } else {
            f.write_all(&encode_record(g, t, slice, &previous))?;
        }
        previous = slice.to_vec();
        t += 1;
        Ok(())
    });
    let written = file.map_or(Ok(()), |opened| {
        let mut f = opened?;
        streamed?;
        f.write_at(HEADER as u64, &encode_record(g, 0, &first, &previous))?;
        f.commit()
    });
    lattice.comm().agree(written)
}

/// The extents (x, y, z, t) and plaquette of an openQCD header, checked against the file
/// size `len`.
fn parse_header(h: &[u8], len: u64) -> std::result::Result<(Vec<usize>, f64), String> {
    let n: Vec<i32> =
        h[..16].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    for (i, &l) in n.iter().enumerate() {
        if l < 2 || l % 2 != 0 {
            return Err(format!("header N{i} = {l}: not an even extent >= 2"));
        }
    }
    let dims = vec![n[1] as usize, n[2] as usize, n[3] as usize, n[0] as usize];
    let needed = dims
        .iter()
        .try_fold(SITE as u64, |b, &l| b.checked_mul(l as u64))
        .and_then(|b| b.checked_add(HEADER as u64));
    if needed != Some(len) {
        return Err(format!(
            "header N0..N3 = {n:?}: the file needs {} bytes, it has {len}",
            needed.map_or("more than 2^64".into(), |b| b.to_string())
        ));
    }
    let plaquette = f64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    if !plaquette.is_finite() {
        return Err(format!("header plaquette {plaquette}: not a finite number"));
    }
    Ok((dims, plaquette))
}

/// Reads an openQCD file onto the whole lattice its header names (open in time with `open_time`).
pub fn read(path: &Path, open_time: bool) -> Result<GaugeField<Su3>> {
    let in_file = |m: String| Error::Config(format!("{} (openQCD): {m}", path.display()));
    let (mut file, len) = open(path)?;
    let mut h = [0u8; HEADER];
    file.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
    let (dims, _) = parse_header(&h, len).map_err(in_file)?;
    let lattice = super::whole_lattice(&dims, open_time)
        .map_err(|e| in_file(format!("extents {dims:?}: {}", crate::ffi::without_kind(&e))))?;
    read_into(path, &Arc::new(lattice))
}

fn open(path: &Path) -> Result<(std::io::BufReader<std::fs::File>, u64)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok((std::io::BufReader::new(file), len))
}

/// Reads an openQCD file onto `lattice` (each rank its block, through rank 0 with three time
/// slices held there; collective on a cut lattice), whose extents the file must have. Errors
/// name the file and the mismatch, and are the same on every rank.
pub fn read_into(path: &Path, lattice: &Arc<Lattice>) -> Result<GaugeField<Su3>> {
    let comm = lattice.comm();
    let in_file = |m: String| Error::Config(format!("{} (openQCD): {m}", path.display()));
    let opened = on_root(comm.as_ref(), || {
        let (mut file, len) = open(path)?;
        let mut h = [0u8; HEADER];
        file.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
        let (dims, plaquette) = parse_header(&h, len).map_err(in_file)?;
        if dims != lattice.global_dims() {
            return Err(in_file(format!(
                "the header's extents are (x, y, z, t) = {dims:?}, the lattice is {:?}",
                lattice.global_dims()
            )));
        }
        Ok((file, plaquette))
    })?;
    let (mut reader, plaquette) = opened.unzip();
    let plaquette = f64::from_le_bytes(
        comm.broadcast(plaquette.map_or(vec![0; 8], |p| p.to_le_bytes().to_vec()))
            .try_into()
            .expect("8 bytes"),
    );
    let dims = lattice.global_dims();
    let (g, extent) = (Slice { lx: dims[0], ly: dims[1], lz: dims[2] }, dims[3]);
    let read_record = |reader: &mut std::io::BufReader<std::fs::File>| -> Result<Vec<u8>> {
        let mut record = vec![0u8; g.record_bytes()];
        reader.read_exact(&mut record).map_err(|e| Error::io(path, e))?;
        Ok(record)
    };
    let (mut t, mut first, mut current, mut next) = (0, Vec::new(), Vec::new(), Vec::new());
    let (local, result) = slices::scatter_slices(lattice, SITE, |slice| {
        let reader = reader.as_mut().expect("rank 0 reads the file");
        if t == 0 {
            first = read_record(reader)?;
            next = first.clone();
        }
        current = std::mem::take(&mut next);
        next = if t + 1 < extent { read_record(reader)? } else { first.clone() };
        decode_record(g, t, &current, &next, slice);
        t += 1;
        Ok(())
    });
    comm.agree(result)?;
    let links = agreed(comm.as_ref(), links::decode_block(lattice, &local, 3, FORMAT).map_err(in_file))?;
    let (stored, field) = GaugeField::from_stored_links(lattice.clone(), links)?;
    let plaquettes = 6.0 * lattice.global_volume() as f64;
    let (stated, measured) = (plaquette * plaquettes, plaquette_re_tr_sum(&stored));
    let eps =
        (64.0 * plaquettes).sqrt() * f64::EPSILON + 64.0 * (stated.abs() + measured.abs()) * f64::EPSILON;
    if (stated - measured).abs() > eps {
        return Err(in_file(format!(
            "header plaquette {plaquette}, the links give {} (openQCD's normalisation, 3 for unit links)",
            measured / plaquettes
        )));
    }
    Ok(field)
}

/// Whether a file that starts with `bytes` and has `len` bytes is an openQCD configuration:
/// four even extents whose links fill exactly the rest of the file.
pub fn is_openqcd(bytes: &[u8], len: u64) -> bool {
    bytes.len() >= HEADER && parse_header(&bytes[..HEADER], len).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit field's file: the header openQCD writes (extents, plaquette 3.0), and every
    /// matrix the identity.
    #[test]
    fn a_unit_field_has_openqcds_header() {
        let path = std::env::temp_dir().join(format!("flowhmc-openqcd-unit-{}", std::process::id()));
        let u = GaugeField::<Su3>::cold(Arc::new(Lattice::new(&[4, 6, 8, 10]).unwrap()));
        write(&u, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 24 + 4 * 6 * 8 * 10 * 576);
        let ints: Vec<i32> =
            bytes[..16].chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(ints, [10, 4, 6, 8]);
        assert_eq!(f64::from_le_bytes(bytes[16..24].try_into().unwrap()), 3.0);
        let one = 1.0f64.to_le_bytes();
        assert_eq!(&bytes[24..32], &one, "c11.re of the first matrix");
        assert!(is_openqcd(&bytes[..32], bytes.len() as u64));
        assert!(!is_openqcd(&bytes[..32], bytes.len() as u64 - 1));
        std::fs::remove_file(&path).unwrap();
    }

    /// The record of the first odd point: its 8 links in openQCD's order, found by value in
    /// a field whose links are distinct.
    #[test]
    fn the_first_odd_point_holds_its_eight_links_in_openqcds_order() {
        let path = std::env::temp_dir().join(format!("flowhmc-openqcd-order-{}", std::process::id()));
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 6]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 5);
        write(&u, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // openQCD's first odd point is x0 = 0, x1 = 0, x2 = 0, x3 = 1: this crate's (0, 0, 1, 0)
        let site = |x: usize, y: usize, z: usize, t: usize| x + 4 * (y + 4 * (z + 4 * t));
        let expected = [
            (site(0, 0, 1, 0), 3),
            (site(0, 0, 1, 5), 3),
            (site(0, 0, 1, 0), 0),
            (site(3, 0, 1, 0), 0),
            (site(0, 0, 1, 0), 1),
            (site(0, 3, 1, 0), 1),
            (site(0, 0, 1, 0), 2),
            (site(0, 0, 0, 0), 2),
        ];
        for (j, (s, mu)) in expected.into_iter().enumerate() {
            let at = 24 + j * MATRIX;
            let stored = links::decode(&bytes[at..at + MATRIX], 3, FORMAT).unwrap();
            assert!(stored == u.link(s, mu), "matrix {j}: link ({s}, {mu})");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn round_trips_and_refuses_a_wrong_plaquette_or_size() {
        let path = std::env::temp_dir().join(format!("flowhmc-openqcd-trip-{}", std::process::id()));
        let u = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&[4, 6, 4, 8]).unwrap()), 9);
        write(&u, &path).unwrap();
        let v = read(&path, false).unwrap();
        assert!(u.max_distance(&v) == 0.0);
        let good = std::fs::read(&path).unwrap();
        let message = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read(&path, false).unwrap_err().to_string()
        };
        let mut plaq = good.clone();
        let p = f64::from_le_bytes(good[16..24].try_into().unwrap());
        plaq[16..24].copy_from_slice(&(p * (1.0 + 1e-12)).to_le_bytes());
        let e = message(&plaq);
        assert!(e.contains("(openQCD): header plaquette") && e.contains("the links give"), "{e}");
        let e = message(&good[..good.len() - 8]);
        assert!(e.contains("header N0..N3 = [8, 4, 6, 4]: the file needs"), "{e}");
        let mut odd = good.clone();
        odd[0..4].copy_from_slice(&7i32.to_le_bytes());
        assert!(message(&odd).contains("header N0 = 7: not an even extent"));
        // the top byte of an f64 entry (little-endian): its exponent changes
        let mut data = good.clone();
        data[24 + 4976 + 7] ^= 0x40;
        let e = message(&data);
        assert!(e.contains("is not in SU(3)"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
