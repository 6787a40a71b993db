//! The site-major storage of the CUDA kernels, and conversion from and to the CPU's fields
//! (at the host boundary: a gauge field imported once, sources and solutions of solves).
//!
//! Storage (complex numbers as (re, im) pairs, sites x lexicographic with x0 fastest, see
//! [`crate::geometry`]): links `[(x * 4 + mu) * 9 + row * 3 + col]` (U_mu(x) row-major),
//! spinors `[(x * 4 + spin) * 3 + color]`, on the whole lattice of one rank.

use crate::checkerboard::Checkerboard;
use crate::field::GaugeField;
use crate::group::Su3;
use crate::spinor::SpinorField;
use num_complex::Complex64;

/// Complex components of a site's spinor (4 spins x 3 colours).
pub const SPINOR: usize = 12;

/// The links of `u` in site-major order.
pub fn links_of(u: &GaugeField<Su3>) -> Vec<Complex64> {
    let volume = u.lattice().volume();
    (0..volume).flat_map(|x| (0..4).flat_map(move |mu| u.link(x, mu).0)).collect()
}

/// The components of the full field `f` (of checkerboard `cb`) in site-major order.
pub fn spinor_of(f: &SpinorField<Su3, 4>, cb: &Checkerboard) -> Vec<Complex64> {
    let volume = cb.lattice().volume();
    (0..volume * SPINOR).map(|k| f.get(cb, k / SPINOR, k / 3 % 4, k % 3)).collect()
}

/// The full field of checkerboard `cb` with site-major components `values`.
pub fn spinor_from(values: &[Complex64], cb: &Checkerboard) -> SpinorField<Su3, 4> {
    let mut f = SpinorField::full(cb);
    for (k, &z) in values.iter().enumerate() {
        f.set(cb, k / SPINOR, k / 3 % 4, k % 3, z);
    }
    f
}

/// The components of the sites of parity `p` of site-major full-field `values` (on a lattice
/// of `volume` sites with extents `dims`), in lexicographic order: the half-field storage of
/// the kernels (index x / 2, as the CPU's even/odd order).
pub fn half(values: &[Complex64], dims: &[usize], p: usize) -> Vec<Complex64> {
    let volume: usize = dims.iter().product();
    let parity = |x: usize| {
        let mut rest = x;
        dims.iter().fold(0, |sum, &l| {
            let c = rest % l;
            rest /= l;
            sum + c
        }) % 2
    };
    (0..volume)
        .filter(|&x| parity(x) == p)
        .flat_map(|x| values[x * SPINOR..(x + 1) * SPINOR].iter().copied())
        .collect()
}
