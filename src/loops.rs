//! Wilson loops built from links: plaquettes, 1x2 rectangles, staples and general paths.
//!
//! Orientation: the plaquette P_{mu nu}(x) = U_mu(x) U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger;
//! the rectangle R_{mu nu}(x) is the 2x1 loop that is long in mu, traversed x -> x+2mu ->
//! x+2mu+nu -> x+nu -> x.

use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::{LANES, Lanes, PackedMatrix};
use crate::field::GaugeField;
use crate::geometry::PackedSite;
use crate::group::LinkMatrix;
use crate::parallel::global_sums;

/// One step of a lattice path: direction and sense (forward = +mu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Direction 0..D-1.
    pub mu: usize,
    /// `true` for +mu (multiply by U_mu(y)), `false` for -mu (multiply by U_mu(y-mu)^dagger).
    pub forward: bool,
}

impl Step {
    /// +mu.
    pub const fn up(mu: usize) -> Self {
        Step { mu, forward: true }
    }
    /// -mu.
    pub const fn down(mu: usize) -> Self {
        Step { mu, forward: false }
    }
    /// +mu if `forward`, else -mu.
    pub const fn signed(mu: usize, forward: bool) -> Self {
        Step { mu, forward }
    }
}

/// The ordered product of links along `path` starting at `start`, and the end site.
pub fn path_product<G: PackedGroup>(u: &GaugeField<G>, start: usize, path: &[Step]) -> (G::Elem, usize) {
    let lat = u.lattice();
    let mut site = start;
    let mut prod: Option<G::Elem> = None;
    for step in path {
        let link = if step.forward {
            let l = u.link(site, step.mu);
            site = lat.fwd(site, step.mu);
            l
        } else {
            site = lat.bwd(site, step.mu);
            u.link(site, step.mu).adj()
        };
        // the first link as it is (a product with the identity would only cost time)
        prod = Some(prod.map_or(link, |p| p.mul(&link)));
    }
    (prod.unwrap_or_else(G::Elem::identity), site)
}

/// The plaquette matrix P_{mu nu}(x).
#[inline]
pub fn plaquette<G: PackedGroup>(u: &GaugeField<G>, site: usize, mu: usize, nu: usize) -> G::Elem {
    let lat = u.lattice();
    let lower = u.link(site, mu).mul(&u.link(lat.fwd(site, mu), nu));
    let upper = u.link(site, nu).mul(&u.link(lat.fwd(site, nu), mu));
    lower.mul_adj(&upper)
}

/// The clover: the sum Q_{mu nu}(x) of the four plaquettes around x in the (mu, nu) plane,
/// each a loop from x oriented mu then nu (so Q_{nu mu} = Q_{mu nu}^dagger).
pub fn clover_leaves<G: PackedGroup>(u: &GaugeField<G>, site: usize, mu: usize, nu: usize) -> G::Elem {
    leaf_paths(mu, nu).iter().fold(G::Elem::zero(), |acc, path| acc.add(&path_product(u, site, path).0))
}

/// [`clover_leaves`] of the LANES sites of `x`, packed.
pub fn packed_clover_leaves<G: PackedGroup>(
    u: &GaugeField<G>,
    x: PackedSite,
    mu: usize,
    nu: usize,
) -> G::Packed<f64> {
    leaf_paths(mu, nu)
        .iter()
        .fold(G::Packed::<f64>::zero(), |acc, path| acc.add(&path_product_packed(u, x, path)))
}

/// The paths of the four plaquettes around a site in the (mu, nu) plane, each from the site,
/// oriented mu then nu.
fn leaf_paths(mu: usize, nu: usize) -> [[Step; 4]; 4] {
    let (m, n) = (Step::up(mu), Step::up(nu));
    let (mb, nb) = (Step::down(mu), Step::down(nu));
    [[m, n, mb, nb], [n, mb, nb, m], [mb, nb, m, n], [nb, m, n, mb]]
}

/// Path of the rectangle R_{mu nu}(x) (long in mu).
pub fn rectangle_path(mu: usize, nu: usize) -> [Step; 6] {
    [Step::up(mu), Step::up(mu), Step::up(nu), Step::down(mu), Step::down(mu), Step::down(nu)]
}

/// The ordered product along `path` from the LANES sites of `start`, packed.
pub fn path_product_packed<G: PackedGroup>(
    u: &GaugeField<G>,
    start: PackedSite,
    path: &[Step],
) -> G::Packed<f64> {
    let lat = u.lattice();
    let mut site = start;
    let mut prod: Option<G::Packed<f64>> = None;
    for step in path {
        let link = if step.forward {
            let l = u.packed_link(site, step.mu);
            site = lat.packed_fwd(site, step.mu);
            l
        } else {
            site = lat.packed_bwd(site, step.mu);
            u.packed_link(site, step.mu)
        };
        prod = Some(match (prod, step.forward) {
            (None, true) => link.0.permute(link.1),
            (None, false) => link.0.permute(link.1).adj(),
            (Some(p), true) => G::Packed::<f64>::product::<false, false>((&p, 0), link),
            (Some(p), false) => G::Packed::<f64>::product::<false, true>((&p, 0), link),
        });
    }
    prod.expect("a path has at least one step")
}

/// Sum over sites x and the direction pairs (mu, nu) of `pairs` of Re tr of the loop
/// `loop_at(x, mu, nu)` (packed: all lanes of x): per site the sum over the pairs, the sites
/// summed exactly over all ranks (bit-identical for any number of threads and ranks).
fn loop_re_tr_sum<G: PackedGroup>(
    u: &GaugeField<G>,
    pairs: &[(usize, usize)],
    re_tr_at: impl Fn(PackedSite, usize, usize) -> Lanes + Sync,
) -> f64 {
    u.assert_halo_fresh();
    let [sum] = global_sums(u.lattice().comm().as_ref(), u.lattice().outer_volume(), |outer, [sum]| {
        let x = PackedSite { outer, mask: 0 };
        let mut site = [0.0; LANES];
        for &(mu, nu) in pairs {
            site.iter_mut().zip(re_tr_at(x, mu, nu)).for_each(|(s, t)| *s += t);
        }
        sum.add_all(&site);
    });
    sum.value()
}

/// Sum over sites and planes mu < nu of Re tr P_{mu nu}(x).
pub fn plaquette_re_tr_sum<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    let d = u.lattice().ndim();
    let planes: Vec<_> = (0..d).flat_map(|mu| (mu + 1..d).map(move |nu| (mu, nu))).collect();
    // Re tr P = Re tr(lower upper^dagger) without the third product
    loop_re_tr_sum(u, &planes, |x, mu, nu| {
        let (lower, upper) = plaquette_halves(u, x, mu, nu);
        lower.re_tr_mul_adj(&upper)
    })
}

/// Sum over sites and ordered pairs mu != nu of Re tr R_{mu nu}(x): every 1x2 rectangle once.
pub fn rectangle_re_tr_sum<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    let d = u.lattice().ndim();
    let pairs: Vec<_> =
        (0..d).flat_map(|mu| (0..d).filter(move |&nu| nu != mu).map(move |nu| (mu, nu))).collect();
    loop_re_tr_sum(u, &pairs, |x, mu, nu| {
        G::packed_re_trace(&path_product_packed(u, x, &rectangle_path(mu, nu)))
    })
}

/// The paths, from x and back, of the space-like loops whose first step is the link U_mu(x):
/// for each space direction nu != mu (time is the last direction) and side, the plaquette and,
/// with `rectangles`, the three 1x2 rectangles through that link (long in mu with the link
/// first or second, long in nu). Every such loop in the time slice of x appears once.
pub fn spatial_loops_through(d: usize, mu: usize, rectangles: bool) -> Vec<Vec<Step>> {
    let mut paths = Vec::new();
    let (m, mb) = (Step::up(mu), Step::down(mu));
    for nu in (0..d - 1).filter(|&nu| nu != mu) {
        for side in [true, false] {
            let (n, nb) = (Step::signed(nu, side), Step::signed(nu, !side));
            paths.push(vec![m, n, mb, nb]);
            if rectangles {
                paths.push(vec![m, m, n, mb, mb, nb]);
                paths.push(vec![m, n, mb, mb, nb, m]);
                paths.push(vec![m, n, n, mb, nb, nb]);
            }
        }
    }
    paths
}

/// Sums of Re tr L over the space-like plaquettes (first) and, with `rectangles`, 1x2
/// rectangles (second; else 0) based at the sites of the boundary slices x0 = 0 and N0-1 of a
/// lattice open in time, the loops openQCD weights with c_G / 2 (zero on a periodic lattice);
/// exact over ranks. There are [`boundary_loop_counts`] of them.
pub fn boundary_loop_re_tr_sums<G: PackedGroup>(u: &GaugeField<G>, rectangles: bool) -> [f64; 2] {
    let lat = u.lattice();
    if !lat.is_open_in_time() {
        return [0.0, 0.0];
    }
    u.assert_halo_fresh();
    let d = lat.ndim();
    let sites = lat.boundary_sites();
    let planes: Vec<(usize, usize)> = (0..d - 1).flat_map(|i| (i + 1..d - 1).map(move |j| (i, j))).collect();
    let re_tr = |x: usize, path: &[Step]| path_product(u, x, path).0.trace().re;
    let sums = global_sums(lat.comm().as_ref(), sites.len(), |k, [plaquette_sum, rectangle_sum]| {
        let x = sites[k];
        for &(i, j) in &planes {
            plaquette_sum.add(re_tr(x, &[Step::up(i), Step::up(j), Step::down(i), Step::down(j)]));
            if rectangles {
                rectangle_sum.add(re_tr(x, &rectangle_path(i, j)) + re_tr(x, &rectangle_path(j, i)));
            }
        }
    });
    sums.map(|s| s.value())
}

/// The numbers of loops [`boundary_loop_re_tr_sums`] sums: 2 V3 (D-1)(D-2)/2 plaquettes and
/// twice as many rectangles on a lattice open in time, V3 the global volume of a time slice;
/// none on a periodic lattice.
pub fn boundary_loop_counts(lat: &crate::geometry::Lattice) -> [usize; 2] {
    if !lat.is_open_in_time() {
        return [0, 0];
    }
    let d = lat.ndim();
    let slice = lat.global_volume() / lat.global_dims()[d - 1];
    let plaquettes = 2 * slice * (d - 1) * (d - 2) / 2;
    [plaquettes, 2 * plaquettes]
}

/// The plaquettes P_{mu nu}(x) of the LANES sites of `x`.
#[inline]
pub fn packed_plaquette<G: PackedGroup>(
    u: &GaugeField<G>,
    x: PackedSite,
    mu: usize,
    nu: usize,
) -> G::Packed<f64> {
    let (lower, upper) = plaquette_halves(u, x, mu, nu);
    lower.mul_adj(&upper)
}

/// The two halves of the plaquettes P_{mu nu}(x) = lower upper^dagger of the LANES sites of
/// `x`: lower = U_mu(x) U_nu(x+mu), upper = U_nu(x) U_mu(x+nu).
#[inline]
fn plaquette_halves<G: PackedGroup>(
    u: &GaugeField<G>,
    x: PackedSite,
    mu: usize,
    nu: usize,
) -> (G::Packed<f64>, G::Packed<f64>) {
    let lat = u.lattice();
    let lower = G::Packed::<f64>::product::<false, false>(
        u.packed_link(x, mu),
        u.packed_link(lat.packed_fwd(x, mu), nu),
    );
    let upper = G::Packed::<f64>::product::<false, false>(
        u.packed_link(x, nu),
        u.packed_link(lat.packed_fwd(x, nu), mu),
    );
    (lower, upper)
}

/// Sum of the 6(D-1) rectangle staples of the links U_mu of the LANES sites of `x`: every
/// 1x2 rectangle containing the link, as the path from x+mu back to x, so that their Re tr
/// sum is Re tr(U_mu(x) A).
pub fn rectangle_staple<G: PackedGroup>(u: &GaugeField<G>, x: PackedSite, mu: usize) -> G::Packed<f64> {
    let lat = u.lattice();
    let start = lat.packed_fwd(x, mu);
    let mut a = G::Packed::<f64>::zero();
    for nu in (0..lat.ndim()).filter(|&nu| nu != mu) {
        for side in [true, false] {
            let (n, nb) = (Step::signed(nu, side), Step::signed(nu, !side));
            let paths = [
                [Step::up(mu), n, Step::down(mu), Step::down(mu), nb],
                [n, Step::down(mu), Step::down(mu), nb, Step::up(mu)],
                [n, n, Step::down(mu), nb, nb],
            ];
            for path in &paths {
                a = a.add(&path_product_packed(u, start, path));
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::Su3;
    use std::sync::Arc;

    #[test]
    fn staples_and_sums_agree_with_scalar_loops() {
        let lat = Arc::new(Lattice::new(&[4, 4, 2, 4]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 3);
        let d = lat.ndim();
        // scalar reference sums from path products
        let (mut plaq_ref, mut rect_ref) = (0.0, 0.0);
        for site in 0..lat.volume() {
            for mu in 0..d {
                for nu in 0..d {
                    if nu > mu {
                        plaq_ref += plaquette(&u, site, mu, nu).trace().re;
                    }
                    if nu != mu {
                        rect_ref += path_product(&u, site, &rectangle_path(mu, nu)).0.trace().re;
                    }
                }
            }
        }
        assert!((plaquette_re_tr_sum(&u) - plaq_ref).abs() < 1e-10);
        assert!((rectangle_re_tr_sum(&u) - rect_ref).abs() < 1e-10);
        // each rectangle has 6 links, and its staples reach all of them
        let mut rect = 0.0;
        for outer in 0..lat.outer_volume() {
            let x = PackedSite { outer, mask: 0 };
            for mu in 0..d {
                let staple = rectangle_staple(&u, x, mu);
                let loops =
                    <Su3 as PackedGroup>::Packed::product::<false, false>(u.packed_link(x, mu), (&staple, 0));
                rect += Su3::packed_re_trace(&loops).iter().sum::<f64>();
            }
        }
        assert!((rect / 6.0 - rect_ref).abs() < 1e-10);
        let p = plaquette(&u, 5, 1, 3);
        let (q, end) = path_product(&u, 5, &[Step::up(1), Step::up(3), Step::down(1), Step::down(3)]);
        assert_eq!(end, 5);
        assert!(p.sub(&q).norm_sqr() < 1e-28);
    }
}
