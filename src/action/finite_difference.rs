//! Test support: forces against finite differences of their actions. A force component is
//! F_a(x, mu) = -dS/dw at w = 0 for U_mu(x) -> exp(w T_a) U_mu(x) (the convention of
//! [`super::Monomial::add_force`]); it is checked against the fourth-order central difference
//! -(8 (S(e) - S(-e)) - (S(2e) - S(-2e))) / (12 e) of the action.

use crate::backend::cpu::PackedGroup;
use crate::field::{GaugeField, MomentumField};
use crate::group::LinkMatrix;

/// Asserts that the force `force` on `u` matches finite differences (step `eps`) of `action`
/// at every (site, mu, generator) of `components`, within 1e-6 of the largest force component;
/// `label` names the term in the message.
pub fn assert_force_matches<G: PackedGroup>(
    u: &GaugeField<G>,
    force: &MomentumField<G>,
    components: impl IntoIterator<Item = (usize, usize, usize)>,
    eps: f64,
    action: impl Fn(&GaugeField<G>) -> f64,
    label: &str,
) {
    let lat = u.lattice();
    let scale = force.components().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 0.0, "{label}: no force");
    for (site, mu, a) in components {
        let mut t = G::Alg::default();
        t.as_mut()[a] = 1.0;
        let shifted = |w: f64| {
            let mut v = u.clone();
            v.set_link(site, mu, &G::exp(&t, w).mul(&u.link(site, mu)));
            action(&v)
        };
        let fd = -(8.0 * (shifted(eps) - shifted(-eps)) - (shifted(2.0 * eps) - shifted(-2.0 * eps)))
            / (12.0 * eps);
        let got = force.at(lat, site, mu).as_ref()[a];
        assert!(
            (fd - got).abs() < 1e-6 * scale,
            "{label}: link ({site}, {mu}) a {a}: force {got}, finite difference {fd} (largest {scale})"
        );
    }
}

/// The links (site, mu) the fermion force checks sample on `lat`, each with the first and the
/// last generator: the first and last site, one in the middle, and site 5 in time.
pub fn sample_components(lat: &crate::geometry::Lattice, algebra: usize) -> Vec<(usize, usize, usize)> {
    let d = lat.ndim();
    [(0, 0), (lat.volume() - 1, d - 1), (lat.volume() / 2 + 1, 1), (5, d - 1)]
        .into_iter()
        .flat_map(|(site, mu)| [(site, mu, 0), (site, mu, algebra - 1)])
        .collect()
}
