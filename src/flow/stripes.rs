//! The masking pattern of the 2D gauge-equivariant coupling layers (arXiv 2003.06413): layer
//! i updates the links of direction mu = i % 2 on the lines x_nu = off (mod 4), nu = 1 - mu,
//! off = (i / 2) % 4. Each such link is the only updated link of the plaquette at its own
//! site (the "active" plaquettes, x_nu = off); the plaquettes at x_nu = off + 1, off + 2
//! hold no updated link ("frozen") and condition the layer; those at x_nu = off + 3 change
//! as a consequence ("passive"). Eight layers update every link once.

use candle_core::{DType, Device, Result, Tensor};

/// Checks that `dims` is a 2D lattice the pattern tiles (extents divisible by 4) and that
/// `layers` is a positive multiple of 8; the message names the offending value.
pub fn validate(layers: usize, dims: &[usize], model: &str) -> std::result::Result<(), String> {
    if layers == 0 || !layers.is_multiple_of(8) {
        return Err(format!("layers = {layers}: need a positive multiple of 8"));
    }
    if dims.len() != 2 || dims.iter().any(|l| !l.is_multiple_of(4)) {
        return Err(format!(
            "dims {dims:?}: the {model} flow acts on 2D lattices with extents divisible by 4"
        ));
    }
    Ok(())
}

/// The stripes of layer `layer`.
#[derive(Clone, Copy, Debug)]
pub struct Stripes {
    /// The direction of the updated links.
    pub mu: usize,
    /// The residue mod 4 of x_nu of the updated links.
    pub off: usize,
}

impl Stripes {
    /// The pattern of layer `layer`.
    pub fn of_layer(layer: usize) -> Self {
        Stripes { mu: layer % 2, off: (layer / 2) % 4 }
    }

    /// The other direction.
    pub fn nu(&self) -> usize {
        1 - self.mu
    }

    /// The residues mod 4 of x_nu of the frozen plaquettes.
    pub fn frozen(&self) -> [usize; 2] {
        [(self.off + 1) % 4, (self.off + 2) % 4]
    }

    /// The sites (lexicographic, x fastest) of the active plaquettes on `dims` = [L_x, L_y].
    pub fn active_sites(&self, dims: [usize; 2]) -> Vec<u32> {
        (0..dims[0] * dims[1])
            .filter(|&s| coordinate(dims, s, self.nu()) % 4 == self.off)
            .map(|s| s as u32)
            .collect()
    }
}

/// Coordinate `nu` of site `s` on `dims` = [L_x, L_y].
fn coordinate(dims: [usize; 2], s: usize, nu: usize) -> usize {
    if nu == 0 { s % dims[0] } else { s / dims[0] }
}

/// A mask [channels, sites, 1] that is 1 in `channel` on the sites whose coordinate `nu` is
/// one of `residues` mod 4.
pub fn stripe_mask(
    dims: [usize; 2],
    (channels, channel): (usize, usize),
    nu: usize,
    residues: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let sites = dims[0] * dims[1];
    let values: Vec<f64> = (0..channels * sites)
        .map(|i| {
            let (c, s) = (i / sites, i % sites);
            f64::from(u8::from(c == channel && residues.contains(&(coordinate(dims, s, nu) % 4))))
        })
        .collect();
    Tensor::from_vec(values, (channels, sites, 1), device)?.to_dtype(dtype)
}

/// Index tensors of the neighbour s + mu of every site s (mu = 0, 1) on an L_x x L_y lattice.
pub fn forward_neighbours(dims: [usize; 2], device: &Device) -> Result<[Tensor; 2]> {
    let [lx, ly] = dims;
    let shifted = |dx: usize, dy: usize| -> Result<Tensor> {
        let index: Vec<u32> =
            (0..lx * ly).map(|s| (((s / lx + dy) % ly) * lx + (s % lx + dx) % lx) as u32).collect();
        Tensor::from_vec(index, lx * ly, device)
    };
    Ok([shifted(1, 0)?, shifted(0, 1)?])
}
