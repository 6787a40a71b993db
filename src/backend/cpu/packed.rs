//! Link matrices of LANES sites packed lane-wise, so that one instruction acts on all lanes
//! (the vector units see `[f64; LANES]` operands). Hot kernels gather the links of LANES sites
//! into a packed matrix, compute, and scatter the results.

pub use super::color::{ColorLanes, ColorPair, ColorVector, PAIR_LANES, VectorPair};
use num_complex::Complex64;

/// Sites processed together by the packed kernels (one AVX register of f64).
pub const LANES: usize = 4;

/// One real number per lane, in precision R (f64 unless named).
pub type Lanes<R = f64> = [R; LANES];

/// The floating-point type of packed lanes: f64 everywhere, f32 for the inner solves of
/// mixed-precision solvers (the operator and its fields stored and computed in single
/// precision, half the memory traffic).
pub trait Real:
    Copy
    + Send
    + Sync
    + std::fmt::Debug
    + PartialEq
    + PartialOrd
    + Default
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Neg<Output = Self>
{
    /// 0.
    const ZERO: Self;
    /// "f64" or "f32", for messages and benchmark labels.
    const NAME: &'static str;
    /// The nearest value of this type.
    fn from_f64(x: f64) -> Self;
    /// The value as f64 (exact).
    fn to_f64(self) -> f64;
    /// Bytes of one value in a message.
    const BYTES: usize;
    /// Appends the little-endian bytes of the value.
    fn write_le(self, out: &mut Vec<u8>);
    /// Writes the little-endian bytes of the value to the first `Self::BYTES` bytes of `out`.
    fn store_le(self, out: &mut [u8]);
    /// The value of `Self::BYTES` little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
    /// self * a + b, fused where the CPU has FMA.
    fn fma(self, a: Self, b: Self) -> Self;
    /// A lane exchange prepared once and applied to many lane vectors.
    type LanePermutation: Copy;
    /// The exchange that makes lane l read lane l ^ mask.
    fn lane_permutation(mask: usize) -> Self::LanePermutation;
    /// Applies a prepared lane exchange.
    fn permute(v: &Lanes<Self>, p: Self::LanePermutation) -> Lanes<Self>;
    /// Applies a prepared lane exchange to both halves of two lane vectors side by side.
    #[inline(always)]
    fn permute_pair(v: &[Self; PAIR_LANES], p: Self::LanePermutation) -> [Self; PAIR_LANES] {
        let (a, b) = v.split_at(LANES);
        let (a, b) =
            (Self::permute(a.try_into().expect("LANES"), p), Self::permute(b.try_into().expect("LANES"), p));
        std::array::from_fn(|l| if l < LANES { a[l] } else { b[l - LANES] })
    }
    /// Whether two lane vectors side by side fill one 256-bit register (f32), so that the Dirac
    /// kernels transport both rows of a spin projection as one [`ColorPair`] (for f64 one lane
    /// vector fills the register already).
    const PAIR_ROWS: bool;
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const PAIR_ROWS: bool = false;
    const BYTES: usize = 8;
    #[inline(always)]
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline(always)]
    fn store_le(self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.to_le_bytes());
    }
    #[inline(always)]
    fn read_le(bytes: &[u8]) -> f64 {
        f64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fma(self, a: f64, b: f64) -> f64 {
        #[cfg(target_feature = "fma")]
        {
            self.mul_add(a, b)
        }
        #[cfg(not(target_feature = "fma"))]
        {
            self * a + b
        }
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    type LanePermutation = std::arch::x86_64::__m256i;
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    type LanePermutation = usize;
    #[inline(always)]
    fn lane_permutation(mask: usize) -> Self::LanePermutation {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        {
            // each f64 lane is a pair of f32 words: lane l reads words 2(l^m), 2(l^m)+1
            let w = |l: usize| (2 * (l ^ mask)) as i32;
            // SAFETY: AVX2 is enabled at compile time (cfg above).
            unsafe {
                std::arch::x86_64::_mm256_setr_epi32(
                    w(0),
                    w(0) + 1,
                    w(1),
                    w(1) + 1,
                    w(2),
                    w(2) + 1,
                    w(3),
                    w(3) + 1,
                )
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        mask
    }
    #[inline(always)]
    fn permute(v: &Lanes<f64>, p: Self::LanePermutation) -> Lanes<f64> {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        {
            use std::arch::x86_64::{_mm256_loadu_ps, _mm256_permutevar8x32_ps, _mm256_storeu_ps};
            let mut out = [0.0f64; LANES];
            // SAFETY: AVX2 is enabled at compile time; the loads and stores cover exactly the
            // 32 bytes of a [f64; 4], read and written as eight f32 words without
            // interpretation (one `vpermps`).
            unsafe {
                let x = _mm256_loadu_ps(v.as_ptr().cast());
                _mm256_storeu_ps(out.as_mut_ptr().cast(), _mm256_permutevar8x32_ps(x, p));
            }
            out
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        std::array::from_fn(|l| v[l ^ p])
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const BYTES: usize = 4;
    #[inline(always)]
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline(always)]
    fn store_le(self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.to_le_bytes());
    }
    #[inline(always)]
    fn read_le(bytes: &[u8]) -> f32 {
        f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
    }
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn fma(self, a: f32, b: f32) -> f32 {
        #[cfg(target_feature = "fma")]
        {
            self.mul_add(a, b)
        }
        #[cfg(not(target_feature = "fma"))]
        {
            self * a + b
        }
    }
    const PAIR_ROWS: bool = true;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    type LanePermutation = std::arch::x86_64::__m256i;
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    type LanePermutation = usize;
    #[inline(always)]
    fn lane_permutation(mask: usize) -> Self::LanePermutation {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        {
            // `vpermilps` controls: lane l of each 128-bit half reads lane l ^ mask of that half
            let w = |l: i32| l ^ mask as i32;
            // SAFETY: AVX2 is enabled at compile time (cfg above).
            unsafe { std::arch::x86_64::_mm256_setr_epi32(w(0), w(1), w(2), w(3), w(0), w(1), w(2), w(3)) }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        mask
    }
    #[inline(always)]
    fn permute(v: &Lanes<f32>, p: Self::LanePermutation) -> Lanes<f32> {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        {
            use std::arch::x86_64::{_mm_loadu_ps, _mm_permutevar_ps, _mm_storeu_ps, _mm256_castsi256_si128};
            let mut out = [0.0f32; LANES];
            // SAFETY: AVX2 is enabled at compile time; the load and store cover exactly the 16
            // bytes of a [f32; 4] (one `vpermilps`).
            unsafe {
                let x = _mm_loadu_ps(v.as_ptr());
                _mm_storeu_ps(out.as_mut_ptr(), _mm_permutevar_ps(x, _mm256_castsi256_si128(p)));
            }
            out
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        std::array::from_fn(|l| v[l ^ p])
    }
    #[inline(always)]
    fn permute_pair(v: &[f32; PAIR_LANES], p: Self::LanePermutation) -> [f32; PAIR_LANES] {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        {
            use std::arch::x86_64::{_mm256_loadu_ps, _mm256_permutevar_ps, _mm256_storeu_ps};
            let mut out = [0.0f32; PAIR_LANES];
            // SAFETY: AVX2 is enabled at compile time; the load and store cover exactly the 32
            // bytes of a [f32; 8] (one `vpermilps`, within each 128-bit half).
            unsafe {
                let x = _mm256_loadu_ps(v.as_ptr());
                _mm256_storeu_ps(out.as_mut_ptr(), _mm256_permutevar_ps(x, p));
            }
            out
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        std::array::from_fn(|l| v[(l & !(LANES - 1)) | ((l & (LANES - 1)) ^ p)])
    }
}

/// a * b + c per lane, fused where the CPU has FMA.
#[inline(always)]
pub fn fma<R: Real>(a: R, b: R, c: R) -> R {
    a.fma(b, c)
}

/// Reads lane vectors of a packed operand, lane l taking lane l ^ mask (a packed-layout hop).
/// The identity reader loads directly; the permuting one shuffles each vector as it is loaded,
/// so a fetched neighbour is never copied.
trait LaneReader<R: Real>: Copy {
    fn read(&self, v: &Lanes<R>) -> Lanes<R>;
}

#[derive(Clone, Copy)]
struct Direct;

impl<R: Real> LaneReader<R> for Direct {
    #[inline(always)]
    fn read(&self, v: &Lanes<R>) -> Lanes<R> {
        *v
    }
}

#[derive(Clone, Copy)]
struct Permuted<R: Real>(R::LanePermutation);

impl<R: Real> Permuted<R> {
    #[inline(always)]
    fn new(mask: usize) -> Self {
        Permuted(R::lane_permutation(mask))
    }
}

impl<R: Real> LaneReader<R> for Permuted<R> {
    #[inline(always)]
    fn read(&self, v: &Lanes<R>) -> Lanes<R> {
        R::permute(v, self.0)
    }
}

/// The lane vector with lane l taken from lane l ^ mask of `v`.
#[inline(always)]
pub fn permute_lanes<R: Real>(v: &Lanes<R>, mask: usize) -> Lanes<R> {
    if mask == 0 { *v } else { Permuted::<R>::new(mask).read(v) }
}

/// A packed operand: the stored element and the lane mask to read it with.
pub type Operand<'a, P> = (&'a P, usize);

/// Products and sums of packed link matrices, in the precision `Real`.
pub trait PackedMatrix: Copy + Send + Sync + std::fmt::Debug + PartialEq + 'static {
    /// The floating-point type of the lanes.
    type Real: Real;
    /// The packed colour vectors these matrices act on.
    type Vector: ColorVector<Real = Self::Real> + super::halo::LaneArray<Scalar = Self::Real>;
    /// All lanes zero.
    fn zero() -> Self;
    /// op(a) v per lane, op the adjoint where ADJ is set, a read through its lane mask.
    fn mat_vec<const ADJ: bool>(a: Operand<Self>, v: &Self::Vector) -> Self::Vector;
    /// a v for two vectors side by side, lane l of both halves reading lane l of a: per lane
    /// the operations of `mat_vec::<false>` with mask 0, in the same order (the same bits).
    fn mat_vec_pair(&self, v: &<Self::Vector as ColorVector>::Pair) -> <Self::Vector as ColorVector>::Pair;
    /// acc + a b^dagger per lane (outer product of colour vectors).
    fn outer_add(acc: &Self, a: &Self::Vector, b: &Self::Vector) -> Self;
    /// Every lane l multiplied by the complex number `(re[l], im[l])`.
    fn mul_lanes(&self, re: &Lanes<Self::Real>, im: &Lanes<Self::Real>) -> Self;
    /// acc + op(a) op(b) per lane, op the adjoint where ADJ_A / ADJ_B is set, each operand
    /// read through its lane mask.
    fn product_add<const ADJ_A: bool, const ADJ_B: bool>(
        acc: &Self,
        a: Operand<Self>,
        b: Operand<Self>,
    ) -> Self;
    /// op(a) op(b) per lane (see [`PackedMatrix::product_add`]).
    #[inline(always)]
    fn product<const ADJ_A: bool, const ADJ_B: bool>(a: Operand<Self>, b: Operand<Self>) -> Self {
        Self::product_add::<ADJ_A, ADJ_B>(&Self::zero(), a, b)
    }
    /// a + b per lane.
    fn add(&self, b: &Self) -> Self;
    /// a^dagger per lane.
    fn adj(&self) -> Self;
    /// Lane l of the result is lane l ^ mask of self.
    fn permute(&self, mask: usize) -> Self;

    /// a * b per lane.
    #[inline(always)]
    fn mul(&self, b: &Self) -> Self {
        Self::product::<false, false>((self, 0), (b, 0))
    }
    /// a * b^dagger per lane.
    #[inline(always)]
    fn mul_adj(&self, b: &Self) -> Self {
        Self::product::<false, true>((self, 0), (b, 0))
    }
    /// a^dagger * b per lane.
    #[inline(always)]
    fn adj_mul(&self, b: &Self) -> Self {
        Self::product::<true, false>((self, 0), (b, 0))
    }
    /// Re tr(a b^dagger) per lane, sum_ij Re(a_ij conj(b_ij)), without forming the product.
    fn re_tr_mul_adj(&self, b: &Self) -> Lanes<Self::Real>;
}

/// The same packed matrix type in another precision, and the conversion to it.
pub trait Convert<R: Real>: PackedMatrix {
    /// The type with lanes of R.
    type To: PackedMatrix<Real = R>;
    /// Every entry rounded to R.
    fn convert(&self) -> Self::To;
}

/// Dispatches a product on whether any operand needs a permutation.
macro_rules! dispatch_readers {
    ($kernel:ident :: <$($flag:tt),*>($acc:expr, $a:expr, $b:expr)) => {{
        let ((a, ma), (b, mb)) = ($a, $b);
        if (ma | mb) == 0 {
            $kernel::<$($flag,)* _, _, _>($acc, a, Direct, b, Direct)
        } else {
            $kernel::<$($flag,)* _, _, _>($acc, a, Permuted::new(ma), b, Permuted::new(mb))
        }
    }};
}

/// +1 or -1 in precision R: the sign of the imaginary parts of an operand read as its adjoint.
#[inline(always)]
fn conj_sign<R: Real>(adjoint: bool) -> R {
    R::from_f64(if adjoint { -1.0 } else { 1.0 })
}

/// LANES complex numbers (packed U(1) links), aligned to 32 bytes like
/// [`ColorLanes`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
pub struct ComplexLanes<R: Real = f64> {
    /// Real parts.
    pub re: Lanes<R>,
    /// Imaginary parts.
    pub im: Lanes<R>,
}

impl ComplexLanes {
    /// Packs LANES complex numbers.
    #[inline(always)]
    pub fn pack(z: [&Complex64; LANES]) -> Self {
        ComplexLanes { re: z.map(|z| z.re), im: z.map(|z| z.im) }
    }
}

impl<R: Real> Convert<R> for ComplexLanes {
    type To = ComplexLanes<R>;
    fn convert(&self) -> ComplexLanes<R> {
        ComplexLanes { re: self.re.map(R::from_f64), im: self.im.map(R::from_f64) }
    }
}

#[inline(always)]
fn complex_product<const AA: bool, const BA: bool, R: Real, RA: LaneReader<R>, RB: LaneReader<R>>(
    acc: &ComplexLanes<R>,
    a: &ComplexLanes<R>,
    ra: RA,
    b: &ComplexLanes<R>,
    rb: RB,
) -> ComplexLanes<R> {
    let (sa, sb) = (conj_sign::<R>(AA), conj_sign::<R>(BA));
    let (ar, ai, br, bi) = (ra.read(&a.re), ra.read(&a.im), rb.read(&b.re), rb.read(&b.im));
    ComplexLanes {
        re: std::array::from_fn(|l| fma(ar[l], br[l], fma(-(sa * ai[l]), sb * bi[l], acc.re[l]))),
        im: std::array::from_fn(|l| fma(ar[l], sb * bi[l], fma(sa * ai[l], br[l], acc.im[l]))),
    }
}

impl<R: Real> PackedMatrix for ComplexLanes<R> {
    type Real = R;
    type Vector = ColorLanes<1, R>;
    fn zero() -> Self {
        ComplexLanes { re: [R::ZERO; LANES], im: [R::ZERO; LANES] }
    }
    #[inline(always)]
    fn re_tr_mul_adj(&self, b: &Self) -> Lanes<R> {
        std::array::from_fn(|l| fma(self.re[l], b.re[l], self.im[l] * b.im[l]))
    }
    #[inline(always)]
    fn outer_add(acc: &Self, a: &ColorLanes<1, R>, b: &ColorLanes<1, R>) -> Self {
        let (ar, ai, br, bi) = (&a.re[0], &a.im[0], &b.re[0], &b.im[0]);
        ComplexLanes {
            re: std::array::from_fn(|l| fma(ar[l], br[l], fma(ai[l], bi[l], acc.re[l]))),
            im: std::array::from_fn(|l| fma(ai[l], br[l], fma(-ar[l], bi[l], acc.im[l]))),
        }
    }
    #[inline(always)]
    fn mul_lanes(&self, re: &Lanes<R>, im: &Lanes<R>) -> Self {
        ComplexLanes {
            re: std::array::from_fn(|l| fma(self.re[l], re[l], -self.im[l] * im[l])),
            im: std::array::from_fn(|l| fma(self.re[l], im[l], self.im[l] * re[l])),
        }
    }
    #[inline(always)]
    fn mat_vec<const ADJ: bool>((a, mask): Operand<Self>, v: &ColorLanes<1, R>) -> ColorLanes<1, R> {
        let (ar, ai) = (permute_lanes(&a.re, mask), permute_lanes(&a.im, mask));
        let s = conj_sign::<R>(ADJ);
        let (vr, vi) = (&v.re[0], &v.im[0]);
        ColorLanes {
            re: [std::array::from_fn(|l| fma(ar[l], vr[l], -(s * ai[l]) * vi[l]))],
            im: [std::array::from_fn(|l| fma(ar[l], vi[l], s * ai[l] * vr[l]))],
        }
    }
    #[inline(always)]
    fn mat_vec_pair(&self, v: &ColorPair<1, R>) -> ColorPair<1, R> {
        let (vr, vi) = (&v.re[0], &v.im[0]);
        let (ar, ai) = (|l: usize| self.re[l % LANES], |l: usize| self.im[l % LANES]);
        let mut out = ColorPair::<1, R>::zero();
        for l in 0..PAIR_LANES {
            out.re[0][l] = fma(ar(l), vr[l], -ai(l) * vi[l]);
            out.im[0][l] = fma(ar(l), vi[l], ai(l) * vr[l]);
        }
        out
    }
    #[inline(always)]
    fn product_add<const AA: bool, const BA: bool>(acc: &Self, a: Operand<Self>, b: Operand<Self>) -> Self {
        dispatch_readers!(complex_product::<AA, BA>(acc, a, b))
    }
    #[inline(always)]
    fn adj(&self) -> Self {
        ComplexLanes { re: self.re, im: self.im.map(|x| -x) }
    }
    #[inline(always)]
    fn permute(&self, mask: usize) -> Self {
        ComplexLanes { re: permute_lanes(&self.re, mask), im: permute_lanes(&self.im, mask) }
    }
    #[inline(always)]
    fn add(&self, b: &Self) -> Self {
        ComplexLanes {
            re: std::array::from_fn(|l| self.re[l] + b.re[l]),
            im: std::array::from_fn(|l| self.im[l] + b.im[l]),
        }
    }
}

/// LANES 3x3 complex matrices, entry k = 3 * row + col, each entry a lane vector, aligned to 32
/// bytes like [`ColorLanes`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
pub struct Su3Lanes<R: Real = f64> {
    /// Real parts of the entries.
    pub re: [Lanes<R>; 9],
    /// Imaginary parts of the entries.
    pub im: [Lanes<R>; 9],
}

impl<R: Real> Convert<R> for Su3Lanes {
    type To = Su3Lanes<R>;
    fn convert(&self) -> Su3Lanes<R> {
        Su3Lanes { re: self.re.map(|v| v.map(R::from_f64)), im: self.im.map(|v| v.map(R::from_f64)) }
    }
}

/// acc(r, c) + sum_k op(A)(r, k) op(B)(k, c) per lane (acc zero if None), op the adjoint
/// where AA / BA is set. With SKIP_RE_DIAG the real parts of the diagonal entries are not
/// computed (left as in acc).
#[inline(always)]
fn su3_product<
    const AA: bool,
    const BA: bool,
    const SKIP_RE_DIAG: bool,
    R: Real,
    RA: LaneReader<R>,
    RB: LaneReader<R>,
>(
    acc: Option<&Su3Lanes<R>>,
    a: &Su3Lanes<R>,
    ra: RA,
    b: &Su3Lanes<R>,
    rb: RB,
) -> Su3Lanes<R> {
    let (sa, sb) = (conj_sign::<R>(AA), conj_sign::<R>(BA));
    let ai = |r: usize, k: usize| if AA { 3 * k + r } else { 3 * r + k };
    let bi = |k: usize, c: usize| if BA { 3 * c + k } else { 3 * k + c };
    let mut out = Su3Lanes::<R>::zero();
    for r in 0..3 {
        // row r of op(A), read once for the three columns
        let row: [(Lanes<R>, Lanes<R>); 3] = std::array::from_fn(|k| {
            let xi = ra.read(&a.im[ai(r, k)]);
            (ra.read(&a.re[ai(r, k)]), xi.map(|v| sa * v))
        });
        for c in 0..3 {
            let rc = 3 * r + c;
            let (mut sr, mut si) = match acc {
                Some(acc) => (acc.re[rc], acc.im[rc]),
                None => ([R::ZERO; LANES], [R::ZERO; LANES]),
            };
            for (k, (xr, xi)) in row.iter().enumerate() {
                let (yr, yi) = (rb.read(&b.re[bi(k, c)]), rb.read(&b.im[bi(k, c)]));
                for l in 0..LANES {
                    let yil = sb * yi[l];
                    if !(SKIP_RE_DIAG && r == c) {
                        sr[l] = fma(xr[l], yr[l], fma(-xi[l], yil, sr[l]));
                    }
                    si[l] = fma(xr[l], yil, fma(xi[l], yr[l], si[l]));
                }
            }
            out.re[rc] = sr;
            out.im[rc] = si;
        }
    }
    out
}

/// op(A) v per lane, op the adjoint where ADJ is set, A read through `ra`.
#[inline(always)]
fn su3_mat_vec<const ADJ: bool, R: Real, RA: LaneReader<R>>(
    a: &Su3Lanes<R>,
    ra: RA,
    v: &ColorLanes<3, R>,
) -> ColorLanes<3, R> {
    let s = conj_sign::<R>(ADJ);
    let mut out = ColorLanes::<3, R>::zero();
    for r in 0..3 {
        let (mut sr, mut si) = ([R::ZERO; LANES], [R::ZERO; LANES]);
        for k in 0..3 {
            let idx = if ADJ { 3 * k + r } else { 3 * r + k };
            let (ur, ui) = (ra.read(&a.re[idx]), ra.read(&a.im[idx]));
            for l in 0..LANES {
                let uil = s * ui[l];
                sr[l] = fma(ur[l], v.re[k][l], fma(-uil, v.im[k][l], sr[l]));
                si[l] = fma(ur[l], v.im[k][l], fma(uil, v.re[k][l], si[l]));
            }
        }
        out.re[r] = sr;
        out.im[r] = si;
    }
    out
}

impl Su3Lanes {
    /// a * b per lane without the real parts of the diagonal (left zero): the entries that
    /// the traceless anti-Hermitian part of the product, and so its generator traces, need.
    #[inline(always)]
    pub fn product_without_re_diagonal(a: &Self, b: &Self) -> Self {
        su3_product::<false, false, true, _, _, _>(None, a, Direct, b, Direct)
    }
}

impl<R: Real> PackedMatrix for Su3Lanes<R> {
    type Real = R;
    type Vector = ColorLanes<3, R>;
    fn zero() -> Self {
        Su3Lanes { re: [[R::ZERO; LANES]; 9], im: [[R::ZERO; LANES]; 9] }
    }
    #[inline(always)]
    fn re_tr_mul_adj(&self, b: &Self) -> Lanes<R> {
        let mut acc = [R::ZERO; LANES];
        for k in 0..9 {
            for (l, a) in acc.iter_mut().enumerate() {
                *a = fma(self.re[k][l], b.re[k][l], fma(self.im[k][l], b.im[k][l], *a));
            }
        }
        acc
    }
    #[inline(always)]
    fn outer_add(acc: &Self, a: &ColorLanes<3, R>, b: &ColorLanes<3, R>) -> Self {
        let mut out = *acc;
        for r in 0..3 {
            for c in 0..3 {
                let k = 3 * r + c;
                for l in 0..LANES {
                    // a_r conj(b_c)
                    out.re[k][l] = fma(a.re[r][l], b.re[c][l], fma(a.im[r][l], b.im[c][l], out.re[k][l]));
                    out.im[k][l] = fma(a.im[r][l], b.re[c][l], fma(-a.re[r][l], b.im[c][l], out.im[k][l]));
                }
            }
        }
        out
    }
    #[inline(always)]
    fn mul_lanes(&self, re: &Lanes<R>, im: &Lanes<R>) -> Self {
        Su3Lanes {
            re: std::array::from_fn(|k| {
                std::array::from_fn(|l| fma(self.re[k][l], re[l], -self.im[k][l] * im[l]))
            }),
            im: std::array::from_fn(|k| {
                std::array::from_fn(|l| fma(self.re[k][l], im[l], self.im[k][l] * re[l]))
            }),
        }
    }
    #[inline(always)]
    fn mat_vec<const ADJ: bool>((a, mask): Operand<Self>, v: &ColorLanes<3, R>) -> ColorLanes<3, R> {
        if mask == 0 {
            su3_mat_vec::<ADJ, _, _>(a, Direct, v)
        } else {
            su3_mat_vec::<ADJ, _, _>(a, Permuted::new(mask), v)
        }
    }
    #[inline(always)]
    fn mat_vec_pair(&self, v: &ColorPair<3, R>) -> ColorPair<3, R> {
        let mut out = ColorPair::<3, R>::zero();
        for r in 0..3 {
            let (mut sr, mut si) = ([R::ZERO; PAIR_LANES], [R::ZERO; PAIR_LANES]);
            for k in 0..3 {
                let (ur, ui) = (&self.re[3 * r + k], &self.im[3 * r + k]);
                for l in 0..PAIR_LANES {
                    let (ur, ui) = (ur[l % LANES], ui[l % LANES]);
                    sr[l] = fma(ur, v.re[k][l], fma(-ui, v.im[k][l], sr[l]));
                    si[l] = fma(ur, v.im[k][l], fma(ui, v.re[k][l], si[l]));
                }
            }
            out.re[r] = sr;
            out.im[r] = si;
        }
        out
    }
    #[inline(always)]
    fn product_add<const AA: bool, const BA: bool>(acc: &Self, a: Operand<Self>, b: Operand<Self>) -> Self {
        dispatch_readers!(su3_product::<AA, BA, false>(Some(acc), a, b))
    }
    #[inline(always)]
    fn product<const AA: bool, const BA: bool>(a: Operand<Self>, b: Operand<Self>) -> Self {
        dispatch_readers!(su3_product::<AA, BA, false>(None, a, b))
    }
    #[inline(always)]
    fn permute(&self, mask: usize) -> Self {
        let r = Permuted::<R>::new(mask);
        Su3Lanes { re: self.re.map(|v| r.read(&v)), im: self.im.map(|v| r.read(&v)) }
    }
    #[inline(always)]
    fn adj(&self) -> Self {
        Su3Lanes {
            re: std::array::from_fn(|k| self.re[3 * (k % 3) + k / 3]),
            im: std::array::from_fn(|k| self.im[3 * (k % 3) + k / 3].map(|x| -x)),
        }
    }
    #[inline(always)]
    fn add(&self, b: &Self) -> Self {
        Su3Lanes {
            re: std::array::from_fn(|k| std::array::from_fn(|l| self.re[k][l] + b.re[k][l])),
            im: std::array::from_fn(|k| std::array::from_fn(|l| self.im[k][l] + b.im[k][l])),
        }
    }
}
