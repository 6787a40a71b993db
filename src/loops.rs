//! Wilson loops built from links: plaquettes, 1x2 rectangles, staples and general paths.
//!
//! Orientation: the plaquette P_{mu nu}(x) = U_mu(x) U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger;
//! the rectangle R_{mu nu}(x) is the 2x1 loop that is long in mu, traversed x -> x+2mu ->
//! x+2mu+nu -> x+nu -> x.

use crate::field::GaugeField;
use crate::group::{Group, LinkMatrix};
use crate::parallel::deterministic_sum;

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
pub fn path_product<G: Group>(u: &GaugeField<G>, start: usize, path: &[Step]) -> (G::Elem, usize) {
    let lat = u.lattice();
    let mut site = start;
    let mut prod = G::Elem::identity();
    for step in path {
        if step.forward {
            prod = prod.mul(u.link(site, step.mu));
            site = lat.fwd(site, step.mu);
        } else {
            site = lat.bwd(site, step.mu);
            prod = prod.mul_adj(u.link(site, step.mu));
        }
    }
    (prod, site)
}

/// The plaquette matrix P_{mu nu}(x).
#[inline]
pub fn plaquette<G: Group>(u: &GaugeField<G>, site: usize, mu: usize, nu: usize) -> G::Elem {
    let lat = u.lattice();
    let lower = u.link(site, mu).mul(u.link(lat.fwd(site, mu), nu));
    let upper = u.link(site, nu).mul(u.link(lat.fwd(site, nu), mu));
    lower.mul_adj(&upper)
}

/// Sum over sites and planes mu < nu of Re tr P_{mu nu}(x).
pub fn plaquette_re_tr_sum<G: Group>(u: &GaugeField<G>) -> f64 {
    let d = u.lattice().ndim();
    deterministic_sum(u.lattice().volume(), |site| {
        let mut s = 0.0;
        for mu in 0..d {
            for nu in mu + 1..d {
                let lat = u.lattice();
                let lower = u.link(site, mu).mul(u.link(lat.fwd(site, mu), nu));
                let upper = u.link(site, nu).mul(u.link(lat.fwd(site, nu), mu));
                s += lower.re_tr_mul(&upper.adj());
            }
        }
        s
    })
}

/// Path of the rectangle R_{mu nu}(x) (long in mu).
pub fn rectangle_path(mu: usize, nu: usize) -> [Step; 6] {
    [
        Step::up(mu),
        Step::up(mu),
        Step::up(nu),
        Step::down(mu),
        Step::down(mu),
        Step::down(nu),
    ]
}

/// Sum over sites and ordered pairs mu != nu of Re tr R_{mu nu}(x): every 1x2 rectangle once.
pub fn rectangle_re_tr_sum<G: Group>(u: &GaugeField<G>) -> f64 {
    let d = u.lattice().ndim();
    deterministic_sum(u.lattice().volume(), |site| {
        let mut s = 0.0;
        for mu in 0..d {
            for nu in (0..d).filter(|&nu| nu != mu) {
                s += path_product(u, site, &rectangle_path(mu, nu)).0.trace().re;
            }
        }
        s
    })
}

/// Sum of the 2(D-1) plaquette staples of link (x, mu): the matrix A with
/// sum of Re tr of the plaquettes containing U_mu(x) = Re tr(U_mu(x) A).
#[inline]
pub fn plaquette_staple<G: Group>(u: &GaugeField<G>, site: usize, mu: usize) -> G::Elem {
    let lat = u.lattice();
    let x_mu = lat.fwd(site, mu);
    let mut a = G::Elem::zero();
    for nu in (0..lat.ndim()).filter(|&nu| nu != mu) {
        // up: U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger
        let up = u
            .link(x_mu, nu)
            .mul_adj(u.link(lat.fwd(site, nu), mu))
            .mul_adj(u.link(site, nu));
        // down: U_nu(x+mu-nu)^dagger U_mu(x-nu)^dagger U_nu(x-nu)
        let x_m_nu = lat.bwd(site, nu);
        let down = u
            .link(x_m_nu, mu)
            .mul(u.link(lat.bwd(x_mu, nu), nu))
            .adj_mul(u.link(x_m_nu, nu));
        a = a.add(&up).add(&down);
    }
    a
}

/// Sum of the 6(D-1) rectangle staples of link (x, mu): every 1x2 rectangle containing the
/// link, as the path from x+mu back to x, so that their Re tr sum is Re tr(U_mu(x) A).
pub fn rectangle_staple<G: Group>(u: &GaugeField<G>, site: usize, mu: usize) -> G::Elem {
    let lat = u.lattice();
    let start = lat.fwd(site, mu);
    let mut a = G::Elem::zero();
    for nu in (0..lat.ndim()).filter(|&nu| nu != mu) {
        for side in [true, false] {
            let (n, nb) = (Step::signed(nu, side), Step::signed(nu, !side));
            let paths = [
                [Step::up(mu), n, Step::down(mu), Step::down(mu), nb],
                [n, Step::down(mu), Step::down(mu), nb, Step::up(mu)],
                [n, n, Step::down(mu), nb, nb],
            ];
            for path in &paths {
                a = a.add(&path_product(u, start, path).0);
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
    fn staples_reproduce_the_loop_sums() {
        let lat = Arc::new(Lattice::new(&[4, 4, 2, 4]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 3);
        let d = lat.ndim();
        let (mut plaq, mut rect) = (0.0, 0.0);
        for site in 0..lat.volume() {
            for mu in 0..d {
                plaq += u.link(site, mu).re_tr_mul(&plaquette_staple(&u, site, mu));
                rect += u.link(site, mu).re_tr_mul(&rectangle_staple(&u, site, mu));
            }
        }
        // each plaquette has 4 links, each rectangle 6
        assert!((plaq / 4.0 - plaquette_re_tr_sum(&u)).abs() < 1e-10);
        assert!((rect / 6.0 - rectangle_re_tr_sum(&u)).abs() < 1e-10);
        let p = plaquette(&u, 5, 1, 3);
        let (q, end) = path_product(
            &u,
            5,
            &[Step::up(1), Step::up(3), Step::down(1), Step::down(3)],
        );
        assert_eq!(end, 5);
        assert!(p.sub(&q).norm_sqr() < 1e-28);
    }
}
