//! SU(3) links as the bytes of a configuration file (NERSC, ILDG, openQCD): each matrix row
//! by row, each entry as (re, im), in IEEE floats of one width and byte order; files may store
//! the first two rows only, the third being the conjugate cross product of them.

use super::native::check_links;
use crate::geometry::Lattice;
use crate::group::LinkMatrix;
use crate::group::{Group, Su3, Su3Matrix};
use num_complex::Complex64;

/// Floating-point width of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE 754 double.
    F64,
    /// IEEE 754 single.
    F32,
}

impl Precision {
    /// Bytes of one real.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F64 => 8,
            Precision::F32 => 4,
        }
    }
}

/// How a file stores reals: width and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealFormat {
    /// The width.
    pub precision: Precision,
    /// Big-endian (else little-endian).
    pub big_endian: bool,
}

impl RealFormat {
    /// Appends `x` in this format.
    fn push(self, bytes: &mut Vec<u8>, x: f64) {
        match (self.precision, self.big_endian) {
            (Precision::F64, true) => bytes.extend_from_slice(&x.to_be_bytes()),
            (Precision::F64, false) => bytes.extend_from_slice(&x.to_le_bytes()),
            (Precision::F32, true) => bytes.extend_from_slice(&(x as f32).to_be_bytes()),
            (Precision::F32, false) => bytes.extend_from_slice(&(x as f32).to_le_bytes()),
        }
    }

    /// The real stored in `c` (as many bytes as the width).
    fn value(self, c: &[u8]) -> f64 {
        match (self.precision, self.big_endian) {
            (Precision::F64, true) => f64::from_be_bytes(c.try_into().expect("8 bytes")),
            (Precision::F64, false) => f64::from_le_bytes(c.try_into().expect("8 bytes")),
            (Precision::F32, true) => f32::from_be_bytes(c.try_into().expect("4 bytes")) as f64,
            (Precision::F32, false) => f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64,
        }
    }

    /// Bytes of one matrix of `rows` rows.
    pub fn matrix_bytes(self, rows: usize) -> usize {
        rows * 6 * self.precision.bytes()
    }

    /// How far stored entries may be from SU(3): the round-off of the width.
    pub fn tolerance(self) -> f64 {
        match self.precision {
            Precision::F64 => 1e-10,
            Precision::F32 => 1e-6,
        }
    }
}

/// Appends the first `rows` rows of `m` in `format`.
pub fn encode(bytes: &mut Vec<u8>, m: &Su3Matrix, rows: usize, format: RealFormat) {
    for z in &m.0[..3 * rows] {
        format.push(bytes, z.re);
        format.push(bytes, z.im);
    }
}

/// The matrix stored in `bytes` ([`RealFormat::matrix_bytes`] of them) with `rows` rows, or
/// how far its stored entries lie from SU(3) when that exceeds the format's tolerance. Two-row
/// and single-precision matrices come back projected to SU(3) (the third row rebuilt, the f32
/// round-off removed); whole f64 matrices as stored.
pub fn decode(bytes: &[u8], rows: usize, format: RealFormat) -> std::result::Result<Su3Matrix, f64> {
    let width = format.precision.bytes();
    let mut m = [Complex64::new(0.0, 0.0); 9];
    for (z, c) in m.iter_mut().zip(bytes.chunks_exact(2 * width)).take(3 * rows) {
        *z = Complex64::new(format.value(&c[..width]), format.value(&c[width..]));
    }
    let stored = Su3Matrix(m);
    let projected = Su3::project(&stored);
    let off = (0..3 * rows).map(|k| (stored.0[k] - projected.0[k]).norm()).fold(0.0, f64::max);
    if off.is_nan() || off > format.tolerance() {
        return Err(off);
    }
    Ok(if rows == 3 && format.precision == Precision::F64 { stored } else { projected })
}

/// What to add to the error about the zero link U_mu(site) of a periodic lattice where open
/// boundaries in time would remove it (x0 = N0-1, mu = t): how to read such a file.
pub(crate) fn open_hint(lattice: &Lattice, site: usize, mu: usize, zero: bool) -> &'static str {
    let t = lattice.ndim() - 1;
    let last = lattice.global_coords(site)[t] + 1 == lattice.global_dims()[t];
    if zero && mu == t && last && !lattice.is_open_in_time() {
        "; zero there is a removed link of open boundaries in time: read the file onto an open \
         lattice (lattice.boundary = \"open\", or flowhmc convert ... --open)"
    } else {
        ""
    }
}

/// Whether every real stored in `bytes` is zero.
fn is_zero(bytes: &[u8], format: RealFormat) -> bool {
    bytes.chunks_exact(format.precision.bytes()).all(|c| format.value(c) == 0.0)
}

/// The links of a block's site data in this crate's order (per site the directions 0..3, each
/// matrix stored with `rows` rows in `format`), each checked to lie on SU(3) as stored
/// ([`decode`]) and once more as decoded (finite, unitary to 1e-10); an error names the first
/// bad link by its global coordinates and direction. A removed link of a lattice open in time
/// may also be stored as the zero matrix, as openQCD and this crate store it.
pub fn decode_block(
    lattice: &Lattice,
    data: &[u8],
    rows: usize,
    format: RealFormat,
) -> std::result::Result<Vec<Su3Matrix>, String> {
    let d = lattice.ndim();
    let links = data
        .chunks_exact(format.matrix_bytes(rows))
        .enumerate()
        .map(|(i, bytes)| match decode(bytes, rows, format) {
            Ok(m) => Ok(m),
            Err(_) if lattice.is_removed_link(i / d, i % d) && is_zero(bytes, format) => {
                Ok(Su3Matrix::zero())
            }
            Err(off) => Err(format!(
                "the link at {:?} in direction {} is not in SU(3) (stored rows off by {off:e}){}",
                lattice.global_coords(i / d),
                i % d,
                open_hint(lattice, i / d, i % d, is_zero(bytes, format))
            )),
        })
        .collect::<std::result::Result<Vec<Su3Matrix>, String>>()?;
    check_links::<Su3>(lattice, &links)?;
    Ok(links)
}
