//! Colour vectors of LANES sites packed lane-wise (the colour part of a spinor): N complex
//! numbers per site, each a pair of lane vectors, N = 1 for U(1) and 3 for SU(3).

use super::packed::{LANES, Lanes, Real, fma, permute_lanes};
use num_complex::Complex64;

/// N complex entries per lane in precision R: entry c is (re, im) lane vectors. Aligned to 32
/// bytes (one AVX register; the size is a multiple of it in both precisions), so that no lane
/// vector of a field straddles a cache line whatever address the allocator returns.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
pub struct ColorLanes<const N: usize, R: Real = f64> {
    /// Real parts of the entries.
    pub re: [Lanes<R>; N],
    /// Imaginary parts of the entries.
    pub im: [Lanes<R>; N],
}

/// Arithmetic on packed colour vectors that the Dirac operators and solvers use.
pub trait ColorVector: Copy + Send + Sync + std::fmt::Debug + PartialEq + 'static {
    /// The floating-point type of the lanes.
    type Real: Real;
    /// Number of colours N.
    const COLORS: usize;
    /// All lanes zero.
    fn zero() -> Self;
    /// a + b.
    fn add(&self, b: &Self) -> Self;
    /// a - b.
    fn sub(&self, b: &Self) -> Self;
    /// i a.
    fn times_i(&self) -> Self;
    /// -a.
    fn neg(&self) -> Self;
    /// Lane l of the result is lane l ^ mask of self (a packed-layout hop).
    fn permute(&self, mask: usize) -> Self;
    /// Every lane l multiplied by the complex number `(re[l], im[l])`.
    fn mul_lanes(&self, re: &Lanes<Self::Real>, im: &Lanes<Self::Real>) -> Self;
    /// self + z x for a complex z, the same in every lane (rounded to the lanes' precision).
    fn add_scaled(&self, z: Complex64, x: &Self) -> Self;
    /// self + c x for a real c (half the multiplications of `add_scaled`).
    fn add_scaled_real(&self, c: f64, x: &Self) -> Self;
    /// sum over colours of conj(a_c) b_c, per lane.
    fn dot_lanes(&self, b: &Self) -> (Lanes<Self::Real>, Lanes<Self::Real>);
    /// Entry c of lane l.
    fn get(&self, lane: usize, c: usize) -> Complex64;
    /// Sets entry c of lane l (rounded to the lanes' precision).
    fn set(&mut self, lane: usize, c: usize, z: Complex64);
}

/// Lane-wise map of one or two colour vectors.
macro_rules! lanewise {
    (|$l:ident, $c:ident| $re:expr, $im:expr) => {
        ColorLanes {
            re: std::array::from_fn(|$c| std::array::from_fn(|$l| $re)),
            im: std::array::from_fn(|$c| std::array::from_fn(|$l| $im)),
        }
    };
}

impl<const N: usize, R: Real> ColorVector for ColorLanes<N, R> {
    type Real = R;
    const COLORS: usize = N;

    #[inline(always)]
    fn zero() -> Self {
        ColorLanes { re: [[R::ZERO; LANES]; N], im: [[R::ZERO; LANES]; N] }
    }
    #[inline(always)]
    fn add(&self, b: &Self) -> Self {
        lanewise!(|l, c| self.re[c][l] + b.re[c][l], self.im[c][l] + b.im[c][l])
    }
    #[inline(always)]
    fn sub(&self, b: &Self) -> Self {
        lanewise!(|l, c| self.re[c][l] - b.re[c][l], self.im[c][l] - b.im[c][l])
    }
    #[inline(always)]
    fn times_i(&self) -> Self {
        lanewise!(|l, c| -self.im[c][l], self.re[c][l])
    }
    #[inline(always)]
    fn neg(&self) -> Self {
        lanewise!(|l, c| -self.re[c][l], -self.im[c][l])
    }
    #[inline(always)]
    fn permute(&self, mask: usize) -> Self {
        if mask == 0 {
            return *self;
        }
        ColorLanes {
            re: self.re.map(|v| permute_lanes(&v, mask)),
            im: self.im.map(|v| permute_lanes(&v, mask)),
        }
    }
    #[inline(always)]
    fn mul_lanes(&self, re: &Lanes<R>, im: &Lanes<R>) -> Self {
        lanewise!(
            |l, c| fma(self.re[c][l], re[l], -self.im[c][l] * im[l]),
            fma(self.re[c][l], im[l], self.im[c][l] * re[l])
        )
    }
    #[inline(always)]
    fn add_scaled(&self, z: Complex64, x: &Self) -> Self {
        let (zr, zi) = (R::from_f64(z.re), R::from_f64(z.im));
        lanewise!(
            |l, c| fma(zr, x.re[c][l], fma(-zi, x.im[c][l], self.re[c][l])),
            fma(zr, x.im[c][l], fma(zi, x.re[c][l], self.im[c][l]))
        )
    }
    #[inline(always)]
    fn add_scaled_real(&self, c: f64, x: &Self) -> Self {
        let c = R::from_f64(c);
        lanewise!(|l, k| fma(c, x.re[k][l], self.re[k][l]), fma(c, x.im[k][l], self.im[k][l]))
    }
    #[inline(always)]
    fn dot_lanes(&self, b: &Self) -> (Lanes<R>, Lanes<R>) {
        let (mut re, mut im) = ([R::ZERO; LANES], [R::ZERO; LANES]);
        for c in 0..N {
            for l in 0..LANES {
                re[l] = fma(self.re[c][l], b.re[c][l], fma(self.im[c][l], b.im[c][l], re[l]));
                im[l] = fma(self.re[c][l], b.im[c][l], fma(-self.im[c][l], b.re[c][l], im[l]));
            }
        }
        (re, im)
    }
    fn get(&self, lane: usize, c: usize) -> Complex64 {
        Complex64::new(self.re[c][lane].to_f64(), self.im[c][lane].to_f64())
    }
    fn set(&mut self, lane: usize, c: usize, z: Complex64) {
        self.re[c][lane] = R::from_f64(z.re);
        self.im[c][lane] = R::from_f64(z.im);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: f64) -> ColorLanes<3> {
        lanewise!(
            |l, c| (seed + 1.3 * l as f64 - 0.7 * c as f64).sin(),
            (seed * 0.5 + l as f64 + 2.0 * c as f64).cos()
        )
    }

    #[test]
    fn lane_arithmetic_matches_complex_numbers() {
        let (a, b) = (sample(0.3), sample(1.9));
        let z = Complex64::new(0.4, -1.1);
        let phase = ([0.6, -0.8, 1.0, 0.0], [0.8, 0.6, 0.0, -1.0]);
        let (dre, dim) = a.dot_lanes(&b);
        for l in 0..LANES {
            let mut dot = Complex64::new(0.0, 0.0);
            for c in 0..3 {
                let (x, y) = (a.get(l, c), b.get(l, c));
                assert_eq!(a.add(&b).get(l, c), x + y);
                assert_eq!(a.sub(&b).get(l, c), x - y);
                assert_eq!(a.times_i().get(l, c), Complex64::i() * x);
                assert_eq!(a.neg().get(l, c), -x);
                assert_eq!(a.permute(2).get(l, c), a.get(l ^ 2, c));
                assert!((a.add_scaled(z, &b).get(l, c) - (x + z * y)).norm() < 1e-15);
                assert!((a.add_scaled_real(z.im, &b).get(l, c) - (x + z.im * y)).norm() < 1e-15);
                let p = Complex64::new(phase.0[l], phase.1[l]);
                assert!((a.mul_lanes(&phase.0, &phase.1).get(l, c) - p * x).norm() < 1e-15);
                dot += x.conj() * y;
            }
            assert!((Complex64::new(dre[l], dim[l]) - dot).norm() < 1e-14);
        }
    }
}
