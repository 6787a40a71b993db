//! The masking pattern of the gauge-equivariant coupling layers, on lattices of any dimension
//! D >= 2 (arXiv 2003.06413 in 2D; its extension to D dimensions as in arXiv 2305.02402).
//!
//! Layer i updates the links of direction mu = i % D on the hyperplanes x_nu = off (mod 4),
//! off = (i / D) % 4, where nu is the k-th direction after mu (cyclically), k = (i / 4D) % (D - 1);
//! in 2D, nu = 1 - mu. Each updated link U_mu(x) is the only updated link of the plaquette
//! of the (mu, nu) plane at its own site (the "active" plaquettes, x_nu = off). Every
//! plaquette that holds no updated link is "frozen" and conditions the layer: in the (mu, nu)
//! plane those at x_nu = off + 1, off + 2; in the other planes through mu those at
//! x_nu != off; all plaquettes of the planes without mu. The remaining plaquettes change as a
//! consequence ("passive"). 4D layers update every link once; layers come in multiples of 4D.

use crate::geometry::Lattice;
use candle_core::{DType, Device, Result, Tensor};

/// Checks that `dims` is a lattice the pattern tiles (D >= 2, extents divisible by 4) and that
/// `layers` is a positive multiple of 4D; the message names the offending value.
pub fn validate(layers: usize, dims: &[usize], model: &str) -> std::result::Result<(), String> {
    if dims.len() < 2 || dims.iter().any(|l| *l == 0 || !l.is_multiple_of(4)) {
        return Err(format!(
            "dims {dims:?}: the {model} flow acts on lattices of 2 or more dimensions with extents divisible by 4"
        ));
    }
    let period = 4 * dims.len();
    if layers == 0 || !layers.is_multiple_of(period) {
        return Err(format!(
            "layers = {layers}: need a positive multiple of {period} (4 per direction) on a {}D lattice",
            dims.len()
        ));
    }
    Ok(())
}

/// The planes (a, b), a < b, of a D-dimensional lattice, in the order (0, 1), (0, 2), ...,
/// (1, 2), ...: the channel order of plaquette tensors.
pub fn planes(d: usize) -> Vec<[usize; 2]> {
    (0..d).flat_map(|a| (a + 1..d).map(move |b| [a, b])).collect()
}

/// The stripes of one layer.
#[derive(Clone, Copy, Debug)]
pub struct Stripes {
    /// The direction of the updated links.
    pub mu: usize,
    /// The direction across the stripes: the other direction of the active plaquettes.
    pub nu: usize,
    /// The residue mod 4 of x_nu of the updated links.
    pub off: usize,
}

impl Stripes {
    /// The pattern of layer `layer` on a `d`-dimensional lattice.
    pub fn of_layer(layer: usize, d: usize) -> Self {
        let mu = layer % d;
        let k = (layer / (4 * d)) % (d - 1);
        Stripes { mu, nu: (mu + 1 + k) % d, off: (layer / d) % 4 }
    }

    /// Whether the layer updates the link U_direction(site).
    pub fn updates(&self, lattice: &Lattice, site: usize, direction: usize) -> bool {
        direction == self.mu && lattice.coord(site, self.nu) % 4 == self.off
    }

    /// The index in [`planes`] of the plane of the active plaquettes, and the sign (+1 or -1)
    /// with which the angle of U_mu(x) enters their plaquette angle.
    pub fn active_plane(&self, d: usize) -> (usize, f64) {
        let plane = [self.mu.min(self.nu), self.mu.max(self.nu)];
        let index = planes(d).iter().position(|p| *p == plane).expect("mu != nu");
        (index, if self.mu < self.nu { 1.0 } else { -1.0 })
    }

    /// Whether the plaquette of `plane` at `site` holds none of the updated links.
    pub fn is_frozen(&self, lattice: &Lattice, [a, b]: [usize; 2], site: usize) -> bool {
        let links = [(site, a), (lattice.fwd(site, a), b), (lattice.fwd(site, b), a), (site, b)];
        !links.iter().any(|&(s, direction)| self.updates(lattice, s, direction))
    }

    /// The sites (lexicographic, x fastest) of the active plaquettes, which are the sites of
    /// the updated links.
    pub fn active_sites(&self, lattice: &Lattice) -> Vec<u32> {
        (0..lattice.volume()).filter(|&s| self.updates(lattice, s, self.mu)).map(|s| s as u32).collect()
    }

    /// Whether each site is that of an active plaquette (its link in direction mu is updated).
    pub fn active_flags(&self, lattice: &Lattice) -> Vec<bool> {
        (0..lattice.volume()).map(|s| self.updates(lattice, s, self.mu)).collect()
    }

    /// A mask [1, sites, 1] that is 1 on the sites of the active plaquettes.
    pub fn active_mask(&self, lattice: &Lattice, dtype: DType, device: &Device) -> Result<Tensor> {
        let values: Vec<f64> =
            self.active_flags(lattice).into_iter().map(|a| f64::from(u8::from(a))).collect();
        Tensor::from_vec(values, (1, lattice.volume(), 1), device)?.to_dtype(dtype)
    }

    /// A mask [planes * repeat, sites, 1] that is 1 on the frozen plaquettes, each plane's row
    /// repeated `repeat` times in a row (for plaquette tensors with `repeat` channels per plane).
    pub fn frozen_mask(
        &self,
        lattice: &Lattice,
        repeat: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let planes = planes(lattice.ndim());
        let values: Vec<f64> = planes
            .iter()
            .flat_map(|&plane| {
                let row: Vec<f64> = (0..lattice.volume())
                    .map(|s| f64::from(u8::from(self.is_frozen(lattice, plane, s))))
                    .collect();
                std::iter::repeat_n(row, repeat).flatten()
            })
            .collect();
        Tensor::from_vec(values, (planes.len() * repeat, lattice.volume(), 1), device)?.to_dtype(dtype)
    }
}

/// Index tensors of the neighbour x + mu of every site x, one per direction mu.
pub fn forward_neighbours(lattice: &Lattice, device: &Device) -> Result<Vec<Tensor>> {
    (0..lattice.ndim())
        .map(|mu| {
            let index: Vec<u32> = (0..lattice.volume()).map(|s| lattice.fwd(s, mu) as u32).collect();
            Tensor::from_vec(index, lattice.volume(), device)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In 2D, 3D and 4D: every active plaquette holds exactly one updated link (its own), every
    /// updated link lies in exactly one active plaquette, frozen plaquettes hold none, and one
    /// period of 4D layers updates every link once.
    #[test]
    fn masks_separate_updated_frozen_and_active_loops() {
        for dims in [vec![8, 4], vec![4, 8, 4], vec![4, 4, 4, 8]] {
            let lattice = Lattice::new(&dims).unwrap();
            let d = dims.len();
            let mut updates = vec![0; lattice.volume() * d];
            for layer in 0..4 * d {
                let stripes = Stripes::of_layer(layer, d);
                assert_ne!(stripes.mu, stripes.nu);
                let (plane_index, _) = stripes.active_plane(d);
                let plane = planes(d)[plane_index];
                for s in 0..lattice.volume() {
                    for direction in 0..d {
                        if stripes.updates(&lattice, s, direction) {
                            updates[s * d + direction] += 1;
                        }
                    }
                    if stripes.updates(&lattice, s, stripes.mu) {
                        assert!(!stripes.is_frozen(&lattice, plane, s));
                        // of the active plaquette's links only U_mu(s) is updated
                        let [a, b] = plane;
                        let links = [(s, a), (lattice.fwd(s, a), b), (lattice.fwd(s, b), a), (s, b)];
                        let updated: usize = links
                            .iter()
                            .filter(|&&(t, direction)| stripes.updates(&lattice, t, direction))
                            .count();
                        assert_eq!(updated, 1, "{dims:?} layer {layer} site {s}");
                        // the updated link's other plaquette in the plane is not active
                        let below = lattice.bwd(s, stripes.nu);
                        assert!(!stripes.updates(&lattice, below, stripes.mu));
                    }
                }
                let frozen = stripes.frozen_mask(&lattice, 1, DType::F64, &Device::Cpu).unwrap();
                let frozen: Vec<f64> = frozen.flatten_all().unwrap().to_vec1().unwrap();
                let total: f64 = frozen.iter().sum();
                assert!(total > 0.0 && total < (planes(d).len() * lattice.volume()) as f64);
            }
            assert!(updates.iter().all(|&n| n == 1), "{dims:?}: every link once per period");
        }
    }

    #[test]
    fn the_2d_pattern_is_that_of_the_tutorial() {
        for layer in 0..16 {
            let s = Stripes::of_layer(layer, 2);
            assert_eq!((s.mu, s.nu, s.off), (layer % 2, 1 - layer % 2, (layer / 2) % 4));
        }
        assert!(validate(16, &[8, 8], "U(1)").is_ok());
        assert!(validate(12, &[8, 8], "U(1)").unwrap_err().contains("multiple of 8"));
        assert!(validate(16, &[4, 4, 4, 4], "U(1)").is_ok());
        assert!(validate(8, &[4, 4, 4, 4], "U(1)").unwrap_err().contains("multiple of 16"));
        assert!(validate(16, &[6, 8], "U(1)").unwrap_err().contains("divisible by 4"));
    }
}
