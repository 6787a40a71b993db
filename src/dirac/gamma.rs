//! Euclidean gamma matrices: the internal chiral bases and conversions to host bases.
//!
//! Every internal basis is chiral, gamma5 = diag(1, .., 1, -1, .., -1), and each gamma_mu is
//! off-diagonal in blocks, gamma_mu = [[0, A_mu], [A_mu^dagger, 0]], with A_mu a permutation
//! matrix times phases in {1, i, -1, -i}. The spin projections (1 -+ gamma_mu) psi of the
//! hopping term then need only the S/2 components h = psi_up -+ A_mu psi_down, and the lower
//! half is recovered as -+ A_mu^dagger h.
//!
//! - 2D (S = 2): gamma_x = sigma_1, gamma_t = sigma_2, gamma5 = -i gamma_x gamma_t = sigma_3.
//! - 4D (S = 4): the DeGrand-Rossi basis of Chroma, QDP++, QUDA and MILC, directions x, y, z, t:
//!   A_x = i sigma_1, A_y = -i sigma_2, A_z = i sigma_3, A_t = 1, and
//!   gamma5 = gamma_x gamma_y gamma_z gamma_t = diag(1, 1, -1, -1).
//!
//! openQCD (and tmLQCD) use gamma_0 = [[0, -1], [-1, 0]] (time) and
//! gamma_k = [[0, -i sigma_k], [i sigma_k, 0]]; their gamma5 = gamma_0 gamma_1 gamma_2 gamma_3 is
//! diag(1, 1, -1, -1) too, but the same-direction map from DeGrand-Rossi takes our gamma5 to
//! minus theirs: psi_openQCD = S psi with S = [[0, sigma_2], [-sigma_2, 0]] (see [`SpinBasis`]).

use num_complex::Complex64;

/// A phase i^k, k = 0..3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase(pub u8);

impl Phase {
    /// The phase as a complex number.
    pub fn value(self) -> Complex64 {
        [
            Complex64::new(1.0, 0.0),
            Complex64::new(0.0, 1.0),
            Complex64::new(-1.0, 0.0),
            Complex64::new(0.0, -1.0),
        ][usize::from(self.0 % 4)]
    }
    /// The complex conjugate phase.
    pub fn conj(self) -> Phase {
        Phase((4 - self.0 % 4) % 4)
    }
}

/// The block A_mu of gamma_mu = [[0, A], [A^dagger, 0]]: row r of A has the phase `phase[r]`
/// in column `column[r]`. Only the first S/2 rows are used (one in 2D, two in 4D).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GammaBlock {
    /// Column of the nonzero entry of each row.
    pub column: [usize; 2],
    /// The nonzero entry of each row.
    pub phase: [Phase; 2],
}

const fn block(column: [usize; 2], phase: [u8; 2]) -> GammaBlock {
    GammaBlock { column, phase: [Phase(phase[0]), Phase(phase[1])] }
}

/// A_mu for 2D (sigma_1 and sigma_2: A_x = 1, A_t = -i).
pub const BLOCKS_2D: [GammaBlock; 2] = [block([0, 0], [0, 0]), block([0, 0], [3, 0])];

/// A_mu for 4D in the DeGrand-Rossi basis, mu = x, y, z, t.
pub const BLOCKS_4D: [GammaBlock; 4] = [
    block([1, 0], [1, 1]), // i sigma_1
    block([1, 0], [2, 0]), // -i sigma_2 = [[0, -1], [1, 0]]
    block([0, 1], [1, 3]), // i sigma_3
    block([0, 1], [0, 0]), // 1
];

/// The blocks of a lattice with `spins` spin components (2 in 2D, 4 in 4D).
pub const fn blocks(spins: usize) -> &'static [GammaBlock] {
    if spins == 2 { &BLOCKS_2D } else { &BLOCKS_4D }
}

/// A dense spin matrix, row-major.
pub type SpinMatrix = Vec<Vec<Complex64>>;

/// gamma_mu as a dense matrix in the internal basis of `spins` components.
pub fn gamma(spins: usize, mu: usize) -> SpinMatrix {
    let h = spins / 2;
    let b = blocks(spins)[mu];
    let mut g = vec![vec![Complex64::new(0.0, 0.0); spins]; spins];
    for r in 0..h {
        let z = b.phase[r].value();
        g[r][h + b.column[r]] = z;
        g[h + b.column[r]][r] = z.conj();
    }
    g
}

/// gamma5 = diag(1, .., -1, ..) in the internal basis of `spins` components.
pub fn gamma5(spins: usize) -> SpinMatrix {
    (0..spins)
        .map(|r| {
            (0..spins)
                .map(|c| {
                    Complex64::new(
                        if r != c {
                            0.0
                        } else if r < spins / 2 {
                            1.0
                        } else {
                            -1.0
                        },
                        0.0,
                    )
                })
                .collect()
        })
        .collect()
}

/// Gamma bases a 4D host code may use for its spinors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpinBasis {
    /// DeGrand-Rossi (Chroma, QDP++, QUDA, MILC): the internal basis.
    DegrandRossi,
    /// openQCD's (and tmLQCD's) chiral basis, time direction first in its numbering.
    OpenQcd,
}

impl SpinBasis {
    /// The unitary S with psi_host = S psi_internal and gamma_mu^host = S gamma_mu S^dagger for
    /// every direction (host direction numbering aside).
    pub fn from_internal(self) -> SpinMatrix {
        let z = Complex64::new(0.0, 0.0);
        let i = Complex64::new(0.0, 1.0);
        match self {
            SpinBasis::DegrandRossi => (0..4)
                .map(|r| (0..4).map(|c| if r == c { Complex64::new(1.0, 0.0) } else { z }).collect())
                .collect(),
            // [[0, sigma_2], [-sigma_2, 0]] with sigma_2 = [[0, -i], [i, 0]]
            SpinBasis::OpenQcd => {
                vec![vec![z, z, z, -i], vec![z, z, i, z], vec![z, i, z, z], vec![-i, z, z, z]]
            }
        }
    }

    /// Converts one spin vector from the internal basis to this basis.
    pub fn to_host(self, psi: &[Complex64; 4]) -> [Complex64; 4] {
        let s = self.from_internal();
        std::array::from_fn(|r| (0..4).map(|c| s[r][c] * psi[c]).sum())
    }

    /// Converts one spin vector from this basis to the internal one.
    pub fn from_host(self, psi: &[Complex64; 4]) -> [Complex64; 4] {
        let s = self.from_internal();
        std::array::from_fn(|r| (0..4).map(|c| s[c][r].conj() * psi[c]).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mul(a: &SpinMatrix, b: &SpinMatrix) -> SpinMatrix {
        let n = a.len();
        (0..n).map(|r| (0..n).map(|c| (0..n).map(|k| a[r][k] * b[k][c]).sum()).collect()).collect()
    }

    fn adj(a: &SpinMatrix) -> SpinMatrix {
        let n = a.len();
        (0..n).map(|r| (0..n).map(|c| a[c][r].conj()).collect()).collect()
    }

    fn close(a: &SpinMatrix, b: &SpinMatrix) -> bool {
        a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).norm() < 1e-14)
    }

    fn identity(n: usize) -> SpinMatrix {
        (0..n).map(|r| (0..n).map(|c| Complex64::new(f64::from(u8::from(r == c)), 0.0)).collect()).collect()
    }

    #[test]
    fn gammas_form_a_clifford_algebra_with_the_documented_gamma5() {
        for (spins, d) in [(2, 2), (4, 4)] {
            for mu in 0..d {
                let g = gamma(spins, mu);
                assert!(close(&g, &adj(&g)), "gamma_{mu} Hermitian");
                for nu in 0..d {
                    let anti: SpinMatrix = mul(&g, &gamma(spins, nu))
                        .iter()
                        .zip(mul(&gamma(spins, nu), &g))
                        .map(|(a, b)| a.iter().zip(&b).map(|(x, y)| x + y).collect())
                        .collect();
                    let expected: SpinMatrix = identity(spins)
                        .iter()
                        .map(|row| row.iter().map(|x| x * (2.0 * f64::from(u8::from(mu == nu)))).collect())
                        .collect();
                    assert!(close(&anti, &expected), "{{gamma_{mu}, gamma_{nu}}}");
                }
                let g5 = gamma5(spins);
                assert!(close(
                    &mul(&g5, &g),
                    &mul(&g, &g5).iter().map(|r| r.iter().map(|x| -x).collect()).collect()
                ));
            }
        }
        // gamma5 as the product of the gammas
        let prod4 = (1..4).fold(gamma(4, 0), |acc, mu| mul(&acc, &gamma(4, mu)));
        assert!(close(&prod4, &gamma5(4)));
        let minus_i = Complex64::new(0.0, -1.0);
        let prod2: SpinMatrix =
            mul(&gamma(2, 0), &gamma(2, 1)).iter().map(|r| r.iter().map(|x| minus_i * x).collect()).collect();
        assert!(close(&prod2, &gamma5(2)));
    }

    #[test]
    fn openqcd_conversion_maps_the_gammas_and_round_trips() {
        let (z, o, i) = (Complex64::new(0.0, 0.0), Complex64::new(1.0, 0.0), Complex64::new(0.0, 1.0));
        // openQCD: gamma_0 = [[0, -1], [-1, 0]], gamma_k = [[0, -i sigma_k], [i sigma_k, 0]]
        let sigma = [[[z, o], [o, z]], [[z, -i], [i, z]], [[o, z], [z, -o]]];
        let offdiag = |a: [[Complex64; 2]; 2], b: [[Complex64; 2]; 2]| -> SpinMatrix {
            (0..4)
                .map(|r| {
                    (0..4)
                        .map(|c| match (r < 2, c < 2) {
                            (true, false) => a[r][c - 2],
                            (false, true) => b[r - 2][c],
                            _ => z,
                        })
                        .collect()
                })
                .collect()
        };
        let scale = |m: [[Complex64; 2]; 2], f: Complex64| m.map(|row| row.map(|x| x * f));
        let mut openqcd: Vec<SpinMatrix> =
            sigma.iter().map(|&s| offdiag(scale(s, -i), scale(s, i))).collect();
        openqcd.push(offdiag([[-o, z], [z, -o]], [[-o, z], [z, -o]]));
        let s = SpinBasis::OpenQcd.from_internal();
        assert!(close(&mul(&s, &adj(&s)), &identity(4)));
        for (mu, theirs) in openqcd.iter().enumerate() {
            assert!(close(&mul(&mul(&s, &gamma(4, mu)), &adj(&s)), theirs), "direction {mu}");
        }
        let psi = [
            Complex64::new(0.3, -1.0),
            Complex64::new(2.0, 0.5),
            Complex64::new(-0.7, 0.1),
            Complex64::new(0.0, 1.5),
        ];
        for basis in [SpinBasis::DegrandRossi, SpinBasis::OpenQcd] {
            let back = basis.from_host(&basis.to_host(&psi));
            assert!(back.iter().zip(&psi).all(|(a, b)| (a - b).norm() < 1e-15));
        }
        assert_eq!(SpinBasis::DegrandRossi.to_host(&psi), psi);
    }
}
