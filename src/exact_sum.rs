//! Exact sums of f64 values: the result is the exact sum rounded once to the nearest f64 (ties
//! to even), so it does not depend on the order in which the terms arrive. Chains are therefore
//! bit-identical for any thread count and any process grid: every global sum (actions, dot
//! products, observables) adds per-site values, each computed the same way on any layout, into
//! an [`ExactSum`], and the partial sums of threads and ranks are merged exactly.
//!
//! Representation: a fixed-point integer in units of 2^-1074 (the smallest subnormal), held in
//! [`LIMBS`] signed 64-bit limbs of 32 payload bits each (limb k weighs 2^(32 k - 1074)). A
//! term adds its 53-bit mantissa, shifted into place, to three limbs; the upper 32 bits of each
//! limb absorb carries, so the limbs are normalized (carries propagated) only every 2^30 terms.
//! Most terms of a sum have similar sizes; they take a fast path into a 128-bit integer window
//! placed by the first term, which is emptied into the limbs every 1024 terms. A sum that never
//! left the window is converted with one rounding of the integer.
//! Infinities and NaNs bypass the integer and are added in floating point, so inf - inf is NaN
//! and a NaN term makes the sum NaN, as in plain addition.

/// Limbs of the accumulator: 67 x 32 = 2144 bits cover the 2098 bits of the f64 range with
/// room for the carries of 2^40 terms of the largest magnitude.
pub const LIMBS: usize = 67;

/// Payload bits per limb.
const LIMB_BITS: u32 = 32;

/// Terms between normalizations: each adds less than 2^32 to a limb, so 2^30 of them stay far
/// from the 2^63 range of an i64.
const NORMALIZE_EVERY: u32 = 1 << 30;

/// Largest shift of a mantissa into the window: 53 + 63 bits times fewer than 2^11 terms
/// (a full window and one more [`ExactSum::add_all`]) stay below 2^127.
const WINDOW_MAX_SHIFT: u32 = 63;

/// Terms the window takes before it is flushed into the limbs.
const WINDOW_TERMS: u32 = 1 << 10;

/// The window has no position yet.
const WINDOW_UNSET: u32 = u32::MAX;

/// An exact accumulator of f64 terms (see the module docs). Terms whose bits fall into a
/// 128-bit window (placed by the first term: from 2^32 below it to 2^32 above) take a fast
/// path, one wide integer addition; the others, and the window every 1024 terms,
/// go into the limbs.
#[derive(Clone, Copy, Debug)]
pub struct ExactSum {
    limbs: [i64; LIMBS],
    /// Terms added to the limbs since the last normalization.
    pending: u32,
    /// The sum of the infinite and NaN terms (0 when there were none).
    special: f64,
    /// The fast window: an integer in units of 2^(32 window_limb - 1074).
    window: i128,
    /// The limb at which the window starts ([`WINDOW_UNSET`] before the first term).
    window_limb: u32,
    /// Terms in the window since its last flush.
    window_terms: u32,
    /// Whether the limbs hold anything (else the sum is the window's integer).
    in_limbs: bool,
}

impl Default for ExactSum {
    fn default() -> Self {
        Self::new()
    }
}

impl ExactSum {
    /// The empty sum, 0.
    pub const fn new() -> Self {
        ExactSum {
            limbs: [0; LIMBS],
            pending: 0,
            special: 0.0,
            window: 0,
            window_limb: WINDOW_UNSET,
            window_terms: 0,
            in_limbs: false,
        }
    }

    /// Adds the term x exactly.
    #[inline(always)]
    pub fn add(&mut self, x: f64) {
        self.add_all(&[x]);
    }

    /// Adds the terms xs exactly (at most 1024 of them; a few, such as the sites of
    /// a packed element, add faster together than one by one: their window terms are summed in
    /// a register first).
    #[inline(always)]
    pub fn add_all(&mut self, xs: &[f64]) {
        debug_assert!(xs.len() <= WINDOW_TERMS as usize);
        let (mut local, mut count) = (0i128, 0u32);
        for &x in xs {
            let bits = x.to_bits();
            let biased = ((bits >> 52) & 0x7ff) as u32;
            if biased == 0x7ff {
                self.special += x;
                continue;
            }
            // |x| = mantissa * 2^(offset - 1074), with the implicit bit of normal numbers
            let normal = u32::from(biased != 0);
            let mantissa = bits & ((1 << 52) - 1) | u64::from(normal) << 52;
            let offset = biased - normal;
            if self.window_limb == WINDOW_UNSET {
                self.window_limb = (offset / LIMB_BITS).saturating_sub(1);
            }
            let window_shift = offset.wrapping_sub(self.window_limb * LIMB_BITS);
            if window_shift <= WINDOW_MAX_SHIFT {
                let v = i128::from(mantissa) << window_shift;
                let sign = -((bits >> 63) as i128);
                local += (v ^ sign) - sign;
                count += 1;
            } else {
                self.add_to_limbs(mantissa, offset, bits >> 63 == 1);
            }
        }
        self.window += local;
        self.window_terms += count;
        if self.window_terms >= WINDOW_TERMS {
            self.flush_window();
        }
    }

    /// Adds -+mantissa * 2^(offset - 1074) to the limbs (three of them, no carries).
    fn add_to_limbs(&mut self, mantissa: u64, offset: u32, negative: bool) {
        self.in_limbs = true;
        let (k, shift) = ((offset / LIMB_BITS) as usize, offset % LIMB_BITS);
        let v = u128::from(mantissa) << shift;
        // negation without a branch: (p ^ sign) - sign is p for sign 0 and -p for sign -1
        let sign = -i64::from(negative);
        let signed = |p: i64| (p ^ sign) - sign;
        let limbs = &mut self.limbs[k..k + 3];
        limbs[0] += signed(v as u32 as i64);
        limbs[1] += signed((v >> 32) as u32 as i64);
        limbs[2] += signed((v >> 64) as i64);
        self.pending += 1;
        if self.pending >= NORMALIZE_EVERY {
            self.normalize();
        }
    }

    /// Moves the window's integer into the limbs: three unsigned 32-bit chunks and a signed
    /// top chunk (two's complement), each below 2^32 in size.
    fn window_into_limbs(&mut self) {
        if self.window_terms == 0 {
            return;
        }
        let (w, k) = (self.window, self.window_limb as usize);
        let chunks = [w as u32 as i64, (w >> 32) as u32 as i64, (w >> 64) as u32 as i64, (w >> 96) as i64];
        self.limbs[k..k + 4].iter_mut().zip(chunks).for_each(|(l, c)| *l += c);
        (self.window, self.window_terms, self.in_limbs) = (0, 0, true);
    }

    /// Empties a full window into the limbs, counting it as one term of theirs.
    fn flush_window(&mut self) {
        self.window_into_limbs();
        self.pending += 1;
        if self.pending >= NORMALIZE_EVERY {
            self.normalize();
        }
    }

    /// Adds another accumulator's sum exactly.
    pub fn merge(&mut self, other: &ExactSum) {
        self.special += other.special;
        if !self.in_limbs && self.window_terms == 0 {
            // an empty sum takes the other's window position
            self.window_limb = other.window_limb;
        }
        if !self.in_limbs
            && !other.in_limbs
            && (self.window_limb == other.window_limb || other.window_terms == 0)
            && self.window_terms + other.window_terms < WINDOW_TERMS
        {
            // both sums are window integers at one position, and their sum stays in range
            self.window += other.window;
            self.window_terms += other.window_terms;
            return;
        }
        let mut other = *other;
        other.normalize();
        self.normalize();
        self.limbs.iter_mut().zip(other.limbs).for_each(|(l, o)| *l += o);
        (self.pending, self.in_limbs) = (2, true);
    }

    /// Flushes the window and propagates carries so that limbs 0..LIMBS-1 hold 0..2^32 and the
    /// top limb the sign.
    fn normalize(&mut self) {
        self.window_into_limbs();
        for k in 0..LIMBS - 1 {
            let carry = self.limbs[k] >> LIMB_BITS;
            self.limbs[k] -= carry << LIMB_BITS;
            self.limbs[k + 1] += carry;
        }
        self.pending = 0;
    }

    /// The normalized limbs, for sums over ranks: every limb but the last in 0..2^32.
    pub fn limbs(&self) -> [i64; LIMBS] {
        let mut n = *self;
        n.normalize();
        n.limbs
    }

    /// The accumulator holding `limbs` (normalized or not, summed over ranks limb by limb)
    /// and the special terms `special`.
    pub fn from_limbs(limbs: [i64; LIMBS], special: f64) -> Self {
        let mut s = ExactSum { limbs, special, in_limbs: true, ..Self::new() };
        s.normalize();
        s
    }

    /// The sum of the infinite and NaN terms (0 when there were none).
    pub fn special(&self) -> f64 {
        self.special
    }

    /// The sum rounded to the nearest f64 (ties to even; +-inf beyond the f64 range).
    pub fn value(&self) -> f64 {
        if self.special != 0.0 || self.special.is_nan() {
            return self.special;
        }
        if !self.in_limbs {
            // the window integer rounded once by the conversion, then scaled by a power of two
            // (exact unless the result leaves the normal range)
            let rounded = self.window as f64;
            let exponent = LIMB_BITS as i32 * self.window_limb as i32 - 1074;
            if rounded == 0.0 {
                return 0.0;
            }
            if (-1022..=1023).contains(&exponent) {
                let scaled = rounded * f64::from_bits(((exponent + 1023) as u64) << 52);
                if scaled.is_normal() {
                    return scaled;
                }
            }
        }
        let mut n = *self;
        n.normalize();
        let negative = n.limbs[LIMBS - 1] < 0;
        if negative {
            n.limbs.iter_mut().for_each(|l| *l = -*l);
            n.normalize();
        }
        let magnitude = Self::round_magnitude(&n.limbs);
        if negative { -magnitude } else { magnitude }
    }

    /// The non-negative integer `limbs` (normalized) times 2^-1074, rounded to the nearest f64.
    fn round_magnitude(limbs: &[i64; LIMBS]) -> f64 {
        let Some(top) = limbs.iter().rposition(|&l| l != 0) else {
            return 0.0;
        };
        if limbs[top] >> LIMB_BITS != 0 {
            return f64::INFINITY;
        }
        let bits = top as u32 * LIMB_BITS + (LIMB_BITS - (limbs[top] as u32).leading_zeros());
        let window = |lo: u32| -> u64 {
            let (k, shift) = ((lo / LIMB_BITS) as usize, lo % LIMB_BITS);
            let limb = |j: usize| limbs.get(j).map_or(0u128, |&l| l as u128);
            ((limb(k) | limb(k + 1) << 32 | limb(k + 2) << 64) >> shift) as u64
        };
        if bits <= 53 {
            // an integer below 2^53 in units of 2^-1074 is its own f64 bit pattern
            return f64::from_bits(window(0) & ((1 << 53) - 1));
        }
        let shift = bits - 53;
        let mut mantissa = window(shift) & ((1 << 53) - 1);
        let half = shift - 1;
        let round_bit = limbs[(half / LIMB_BITS) as usize] >> (half % LIMB_BITS) & 1 == 1;
        let below = |i: u32| {
            let k = (i / LIMB_BITS) as usize;
            limbs[..k].iter().any(|&l| l != 0) || limbs[k] & ((1 << (i % LIMB_BITS)) - 1) != 0
        };
        let mut biased = u64::from(shift) + 1;
        if round_bit && (mantissa & 1 == 1 || below(half)) {
            mantissa += 1;
            if mantissa == 1 << 53 {
                mantissa >>= 1;
                biased += 1;
            }
        }
        if biased >= 0x7ff {
            return f64::INFINITY;
        }
        f64::from_bits(biased << 52 | (mantissa & ((1 << 52) - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, StreamKey};

    fn sum(terms: &[f64]) -> f64 {
        let mut s = ExactSum::new();
        terms.iter().for_each(|&x| s.add(x));
        s.value()
    }

    #[test]
    fn rounds_the_exact_sum_once() {
        let tiny = f64::from_bits(1);
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[1e300, 1.0, -1e300]), 1.0);
        assert_eq!(sum(&[tiny, tiny, tiny]).to_bits(), 3);
        assert_eq!(sum(&[f64::MIN_POSITIVE, -tiny]), f64::MIN_POSITIVE - tiny);
        assert_eq!(sum(&[-2.5, 0.5]), -2.0);
        // ties to even: 1 + 2^-53 is 1, 1 + 3 * 2^-53 is 1 + 2^-51; a term far below breaks the tie
        let e = f64::EPSILON / 2.0;
        assert_eq!(sum(&[1.0, e]), 1.0);
        assert_eq!(sum(&[1.0, e, e, e]), 1.0 + 4.0 * e);
        assert_eq!(sum(&[1.0, e, 1e-300]), 1.0 + 2.0 * e);
        assert_eq!(sum(&[-1.0, -e, -1e-300]), -1.0 - 2.0 * e);
        assert_eq!(sum(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum(&[f64::MAX, f64::MAX, -f64::MAX]), f64::MAX);
        assert_eq!(sum(&[-f64::MAX, -f64::MAX]), f64::NEG_INFINITY);
        assert!(sum(&[1.0, f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(sum(&[1.0, f64::NAN]).is_nan());
        assert_eq!(sum(&[1.0, f64::INFINITY]), f64::INFINITY);
    }

    /// Random terms of wildly different sizes: the sum equals an exact integer reference (the
    /// terms are integers times 2^-40 below 2^62), does not depend on the order, and merges of
    /// partial sums and limb round trips agree.
    #[test]
    fn any_order_and_any_split_give_the_same_bits() {
        let mut rng = StreamKey::new(3, Purpose::Test, 0).stream(0);
        let terms: Vec<f64> = (0..5000)
            .map(|_| {
                let x = (rng.uniform() - 0.5) * 2f64.powi((rng.uniform() * 60.0) as i32);
                (x * 2f64.powi(40)).round() / 2f64.powi(40)
            })
            .collect();
        let exact: i128 = terms.iter().map(|&x| (x * 2f64.powi(40)) as i128).sum();
        let reference = exact as f64 / 2f64.powi(40);
        let forward = sum(&terms);
        assert_eq!(forward.to_bits(), reference.to_bits());
        let mut reversed = terms.clone();
        reversed.reverse();
        assert_eq!(sum(&reversed).to_bits(), forward.to_bits());
        let naive: f64 = terms.iter().sum();
        assert_ne!(naive.to_bits(), forward.to_bits(), "the test needs terms that plain addition rounds");
        let (mut a, mut b) = (ExactSum::new(), ExactSum::new());
        terms.iter().enumerate().for_each(|(i, &x)| if i % 3 == 0 { a.add(x) } else { b.add(x) });
        let mut merged = ExactSum::from_limbs(a.limbs(), a.special());
        merged.merge(&b);
        assert_eq!(merged.value().to_bits(), forward.to_bits());
        // small sums that stay in the window, merged in pieces or added in groups
        let few = &terms[..300];
        let mut pieces = ExactSum::new();
        for chunk in few.chunks(7) {
            let mut piece = ExactSum::new();
            piece.add_all(chunk);
            pieces.merge(&piece);
        }
        assert_eq!(pieces.value().to_bits(), sum(few).to_bits());
        let mut reversed = few.to_vec();
        reversed.reverse();
        assert_eq!(sum(&reversed).to_bits(), sum(few).to_bits());
    }
}
