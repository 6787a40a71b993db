//! The site-major storage of the CUDA kernels, and conversion from and to the CPU's fields
//! (at the host boundary: a gauge field imported once, sources and solutions of solves).
//!
//! Storage (complex numbers as (re, im) pairs, sites x lexicographic with x0 fastest, see
//! [`crate::geometry`]): links `[(x * 4 + mu) * 9 + row * 3 + col]` (U_mu(x) row-major),
//! momenta `[(x * 4 + mu) * 8 + a]` (reals p_a in the basis T_a of [`crate::group`]), spinors
//! `[(x * 4 + spin) * 3 + color]`, on the whole lattice of one rank.

use crate::checkerboard::Checkerboard;
use crate::error::Result;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::Lattice;
use crate::group::{Su3, Su3Matrix};
use crate::spinor::SpinorField;
use num_complex::Complex64;
use std::sync::Arc;

/// Complex components of a site's spinor (4 spins x 3 colours).
pub const SPINOR: usize = 12;

/// The links of `u` in site-major order.
pub fn links_of(u: &GaugeField<Su3>) -> Vec<Complex64> {
    let volume = u.lattice().volume();
    (0..volume).flat_map(|x| (0..4).flat_map(move |mu| u.link(x, mu).0)).collect()
}

/// The gauge field on `lattice` with site-major links `values`.
pub fn links_from(values: &[Complex64], lattice: &Arc<Lattice>) -> Result<GaugeField<Su3>> {
    GaugeField::try_from_fn(lattice.clone(), |x, mu| {
        let k = (x * 4 + mu) * 9;
        Ok(Su3Matrix(std::array::from_fn(|c| values[k + c])))
    })
}

/// The momenta of `p` in site-major order.
pub fn momenta_of(p: &MomentumField<Su3>, lattice: &Lattice) -> Vec<f64> {
    (0..lattice.volume()).flat_map(|x| (0..4).flat_map(move |mu| p.at(lattice, x, mu))).collect()
}

/// The components of the full field `f` (of checkerboard `cb`) in site-major order.
pub fn spinor_of(f: &SpinorField<Su3, 4>, cb: &Checkerboard) -> Vec<Complex64> {
    let volume = cb.lattice().volume();
    (0..volume * SPINOR).map(|k| f.get(cb, k / SPINOR, k / 3 % 4, k % 3)).collect()
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
