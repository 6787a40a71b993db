//! Wilson loops of batched gauge fields, shared by the batched U(1) and SU(3) actions.
//!
//! A closed path is a list of steps (mu, forward?) from a site x; the loop is the ordered
//! product of the links it crosses, U_mu(y) for a forward step from y and U_mu(y - mu)^dagger
//! for a backward step from y. Batched link fields are tensors [batch, 1, L_{D-1}, ..., L_0, ...]
//! of one direction each (direction mu is dimension 1 + D - mu), so "the link at x + offset" of
//! every site is a periodic shift of the whole tensor.

use super::stripes::planes;
use crate::action::GaugeAction;
use candle_core::{Result, Tensor};

/// One link of a closed path: U_mu at x + offset, crossed forward (U) or backward (U^dagger).
#[derive(Clone, Debug, PartialEq)]
pub struct PathLink {
    /// The direction of the link.
    pub mu: usize,
    /// Where the link sits, relative to the starting site of the path.
    pub offset: Vec<i32>,
    /// Whether the path crosses it forward.
    pub forward: bool,
}

/// The links that `path` (steps (direction, forward?) on a D-dimensional lattice) crosses from
/// its starting site, in order.
pub fn path_links(d: usize, path: &[(usize, bool)]) -> Vec<PathLink> {
    let mut at = vec![0i32; d];
    path.iter()
        .map(|&(mu, forward)| {
            if !forward {
                at[mu] -= 1;
            }
            let link = PathLink { mu, offset: at.clone(), forward };
            if forward {
                at[mu] += 1;
            }
            link
        })
        .collect()
}

/// The batched tensor `t` ([batch, 1, L_{D-1}, ..., L_0, ...]) shifted so that every site x
/// holds the value at x + offset (periodic).
pub fn shifted(t: &Tensor, offset: &[i32]) -> Result<Tensor> {
    let d = offset.len();
    offset
        .iter()
        .enumerate()
        .try_fold(t.clone(), |t, (mu, &o)| if o == 0 { Ok(t) } else { t.roll(-o, 1 + d - mu) })
}

/// The closed paths of a gauge action in D dimensions with their coefficients: the plaquette
/// of every plane (a, b), a < b, as (a+, b+, a-, b-) with c0, and, when c1 != 0, the 2 x 1
/// rectangles of both orientations (mu+, mu+, nu+, mu-, mu-, nu-) with c1.
pub fn action_loops(d: usize, (c0, c1): (f64, f64)) -> Vec<(Vec<(usize, bool)>, f64)> {
    let mut loops = Vec::new();
    for [a, b] in planes(d) {
        loops.push((vec![(a, true), (b, true), (a, false), (b, false)], c0));
        if c1 != 0.0 {
            for (mu, nu) in [(a, b), (b, a)] {
                loops.push((
                    vec![(mu, true), (mu, true), (nu, true), (mu, false), (mu, false), (nu, false)],
                    c1,
                ));
            }
        }
    }
    loops
}

/// S = beta sum_loops c (1 - Re tr W / N) of each field of a batch on a D-dimensional lattice
/// (shape \[batch\]), summed over the loops of [`action_loops`] started at every site, where
/// `re_trace(path)` gives Re tr W / N of the loop along `path` at every site
/// ([batch, 1, L_{D-1}, ..., L_0]). This is the value of [`GaugeAction::value`].
pub fn batch_loop_action(
    action: &GaugeAction,
    d: usize,
    re_trace: impl Fn(&[(usize, bool)]) -> Result<Tensor>,
) -> Result<Tensor> {
    let sites: Vec<usize> = (1..d + 2).collect();
    let mut total: Option<Tensor> = None;
    for (path, c) in action_loops(d, action.coefficients()) {
        let term = ((1.0 - re_trace(&path)?)? * c)?.sum(sites.as_slice())?;
        total = Some(match total {
            None => term,
            Some(t) => (t + term)?,
        });
    }
    let total =
        total.ok_or_else(|| candle_core::Error::Msg(format!("a gauge action in {d}D has no loops")))?;
    total * action.beta()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plaquette_crosses_its_four_links_at_the_right_sites() {
        let links = path_links(3, &[(0, true), (2, true), (0, false), (2, false)]);
        let expected =
            [(0, [0, 0, 0], true), (2, [1, 0, 0], true), (0, [0, 0, 1], false), (2, [0, 0, 0], false)];
        assert_eq!(links.len(), 4);
        for (link, (mu, offset, forward)) in links.iter().zip(expected) {
            assert_eq!(link, &PathLink { mu, offset: offset.to_vec(), forward });
        }
    }

    #[test]
    fn actions_have_one_plaquette_per_plane_and_two_rectangles_with_c1() {
        let wilson = action_loops(4, (1.0, 0.0));
        assert_eq!(wilson.len(), 6);
        assert!(wilson.iter().all(|(path, c)| path.len() == 4 && *c == 1.0));
        let improved = action_loops(4, (3.0, -0.25));
        assert_eq!(improved.len(), 18);
        assert_eq!(improved.iter().filter(|(path, c)| path.len() == 6 && *c == -0.25).count(), 12);
        // every loop closes
        for (path, _) in &improved {
            let mut at = [0i32; 4];
            for &(mu, forward) in path {
                at[mu] += if forward { 1 } else { -1 };
            }
            assert_eq!(at, [0; 4]);
        }
    }
}
