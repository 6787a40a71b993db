//! U(1) in the packed layout: lane-wise packing and the MD drift of LANES links.

use super::group::PackedGroup;
use super::packed::{ComplexLanes, Convert, LANES, Lanes, PackedMatrix, Real};
use crate::group::U1;
use num_complex::Complex64;

impl PackedGroup for U1 {
    type Packed<R: Real> = ComplexLanes<R>;
    fn packed_in<R: Real>(x: &ComplexLanes) -> ComplexLanes<R> {
        x.convert()
    }
    #[inline(always)]
    fn pack(links: [&Complex64; LANES]) -> ComplexLanes {
        ComplexLanes::pack(links)
    }
    #[inline(always)]
    fn lane(x: &ComplexLanes, lane: usize) -> Complex64 {
        Complex64::new(x.re[lane], x.im[lane])
    }
    #[inline(always)]
    fn set_lane(x: &mut ComplexLanes, lane: usize, value: &Complex64) {
        x.re[lane] = value.re;
        x.im[lane] = value.im;
    }
    type AlgLanes = [Lanes; 1];
    fn exp_mul_packed(p: &[Lanes; 1], eps: f64, u: &mut ComplexLanes) {
        let e = ComplexLanes::pack(p[0].map(|p| Complex64::from_polar(1.0, eps * p)).each_ref());
        *u = e.mul(u);
    }
    #[inline(always)]
    fn packed_re_trace(x: &ComplexLanes) -> [f64; LANES] {
        x.re
    }
    #[inline(always)]
    fn packed_re_tr_generators(x: &ComplexLanes) -> [Lanes; 1] {
        [x.im.map(|im| -im)]
    }
}
