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
    /// Two vectors side by side (see [`ColorPair`]).
    type Pair: VectorPair<Single = Self>;
}

/// Two colour vectors side by side, computed on as one (see [`ColorPair`]).
pub trait VectorPair: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// One of the two.
    type Single: ColorVector;
    /// All lanes zero.
    fn zero() -> Self;
    /// `a` and `b` side by side.
    fn join(a: &Self::Single, b: &Self::Single) -> Self;
    /// The two vectors.
    fn split(&self) -> [Self::Single; 2];
    /// a + b.
    fn add(&self, b: &Self) -> Self;
    /// a - b.
    fn sub(&self, b: &Self) -> Self;
    /// The first vector times i^first, the second times i^second (exact: swaps and sign
    /// changes, as [`ColorVector::times_i`] and [`ColorVector::neg`] compute them).
    fn times_phases(&self, first: u8, second: u8) -> Self;
    /// The second vector first.
    fn swap_halves(&self) -> Self;
    /// Both vectors permuted: lane l of each reads its lane l ^ mask.
    fn permute(&self, mask: usize) -> Self;
}

/// Lanes of two packed values side by side: lanes 0..LANES the first value, LANES..2 LANES the
/// second.
pub const PAIR_LANES: usize = 2 * LANES;

/// Two colour vectors of LANES sites side by side, entry c of the first in lanes 0..LANES of
/// `re[c]`, `im[c]`, of the second in the lanes after. The two rows of a 4D spin projection are
/// transported by the same link: as one pair, every instruction acts on both (one 256-bit
/// register of f32 instead of two 128-bit ones). Each lane computes exactly what the same
/// operation on one vector computes (same operations in the same order, so the same bits).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
pub struct ColorPair<const N: usize, R: Real> {
    /// Real parts of the entries.
    pub re: [[R; PAIR_LANES]; N],
    /// Imaginary parts of the entries.
    pub im: [[R; PAIR_LANES]; N],
}

/// Lane-wise map of pairs (loops rather than `from_fn`, which LLVM leaves as calls at this
/// width).
macro_rules! pairwise {
    (|$l:ident, $c:ident| $re:expr, $im:expr) => {{
        let mut out = ColorPair { re: [[R::ZERO; PAIR_LANES]; N], im: [[R::ZERO; PAIR_LANES]; N] };
        for $c in 0..N {
            for $l in 0..PAIR_LANES {
                out.re[$c][$l] = $re;
                out.im[$c][$l] = $im;
            }
        }
        out
    }};
}

impl<const N: usize, R: Real> VectorPair for ColorPair<N, R> {
    type Single = ColorLanes<N, R>;
    #[inline(always)]
    fn zero() -> Self {
        ColorPair { re: [[R::ZERO; PAIR_LANES]; N], im: [[R::ZERO; PAIR_LANES]; N] }
    }
    #[inline(always)]
    fn join(a: &ColorLanes<N, R>, b: &ColorLanes<N, R>) -> Self {
        let half = |l: usize| (l >= LANES, l % LANES);
        pairwise!(
            |l, c| match half(l) {
                (false, k) => a.re[c][k],
                (true, k) => b.re[c][k],
            },
            match half(l) {
                (false, k) => a.im[c][k],
                (true, k) => b.im[c][k],
            }
        )
    }
    #[inline(always)]
    fn split(&self) -> [ColorLanes<N, R>; 2] {
        let mut out = [ColorLanes::<N, R>::zero(); 2];
        for (h, v) in out.iter_mut().enumerate() {
            for c in 0..N {
                for k in 0..LANES {
                    v.re[c][k] = self.re[c][h * LANES + k];
                    v.im[c][k] = self.im[c][h * LANES + k];
                }
            }
        }
        out
    }
    #[inline(always)]
    fn add(&self, b: &Self) -> Self {
        pairwise!(|l, c| self.re[c][l] + b.re[c][l], self.im[c][l] + b.im[c][l])
    }
    #[inline(always)]
    fn sub(&self, b: &Self) -> Self {
        pairwise!(|l, c| self.re[c][l] - b.re[c][l], self.im[c][l] - b.im[c][l])
    }
    #[inline(always)]
    fn times_phases(&self, first: u8, second: u8) -> Self {
        let k = |l: usize| if l < LANES { first % 4 } else { second % 4 };
        pairwise!(
            |l, c| match k(l) {
                0 => self.re[c][l],
                1 => -self.im[c][l],
                2 => -self.re[c][l],
                _ => self.im[c][l],
            },
            match k(l) {
                0 => self.im[c][l],
                1 => self.re[c][l],
                2 => -self.im[c][l],
                _ => -self.re[c][l],
            }
        )
    }
    #[inline(always)]
    fn swap_halves(&self) -> Self {
        let from = |l: usize| (l + LANES) % PAIR_LANES;
        pairwise!(|l, c| self.re[c][from(l)], self.im[c][from(l)])
    }
    #[inline(always)]
    fn permute(&self, mask: usize) -> Self {
        if mask == 0 {
            return *self;
        }
        let p = R::lane_permutation(mask);
        ColorPair { re: self.re.map(|v| R::permute_pair(&v, p)), im: self.im.map(|v| R::permute_pair(&v, p)) }
    }
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
    type Pair = ColorPair<N, R>;
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

    /// Every pair operation computes in each half exactly (bit for bit) what the single-vector
    /// operation computes, in f32 (whose pairs take the vectorised paths) and f64.
    fn check_pair_ops<R: Real>() {
        use super::super::packed::{ComplexLanes, PackedMatrix, Su3Lanes};
        let round = |v: ColorLanes<3>| -> ColorLanes<3, R> {
            ColorLanes { re: v.re.map(|x| x.map(R::from_f64)), im: v.im.map(|x| x.map(R::from_f64)) }
        };
        let (a, b, x) = (round(sample(0.3)), round(sample(1.9)), round(sample(-0.8)));
        let times = |v: &ColorLanes<3, R>, k: u8| match k {
            0 => *v,
            1 => v.times_i(),
            2 => v.neg(),
            _ => v.times_i().neg(),
        };
        let pair = ColorPair::join(&a, &b);
        assert_eq!(pair.split(), [a, b]);
        let other = ColorPair::join(&x, &a);
        assert_eq!(pair.add(&other).split(), [a.add(&x), b.add(&a)]);
        assert_eq!(pair.sub(&other).split(), [a.sub(&x), b.sub(&a)]);
        assert_eq!(pair.swap_halves().split(), [b, a]);
        for mask in 0..LANES {
            assert_eq!(pair.permute(mask).split(), [a.permute(mask), b.permute(mask)]);
        }
        for (j, k) in [(0, 1), (1, 3), (2, 0), (3, 2), (1, 1)] {
            assert_eq!(pair.times_phases(j, k).split(), [times(&a, j), times(&b, k)]);
        }
        let u = Su3Lanes::<R> {
            re: std::array::from_fn(|e| {
                std::array::from_fn(|l| R::from_f64((0.7 * e as f64 - l as f64).sin()))
            }),
            im: std::array::from_fn(|e| {
                std::array::from_fn(|l| R::from_f64((1.3 * e as f64 + l as f64).cos()))
            }),
        };
        let product = u.mat_vec_pair(&pair).split();
        assert_eq!(
            product,
            [Su3Lanes::mat_vec::<false>((&u, 0), &a), Su3Lanes::mat_vec::<false>((&u, 0), &b)]
        );
        // U(1): one colour
        let one = |v: &ColorLanes<3, R>| ColorLanes::<1, R> { re: [v.re[1]], im: [v.im[2]] };
        let z = ComplexLanes::<R> { re: u.re[4], im: u.im[7] };
        let (a1, b1) = (one(&a), one(&b));
        let product = z.mat_vec_pair(&ColorPair::join(&a1, &b1)).split();
        assert_eq!(
            product,
            [ComplexLanes::mat_vec::<false>((&z, 0), &a1), ComplexLanes::mat_vec::<false>((&z, 0), &b1)]
        );
    }

    #[test]
    fn pair_operations_equal_the_single_ones_bit_for_bit() {
        check_pair_ops::<f32>();
        check_pair_ops::<f64>();
    }
}
