//! Tensor operations the flows need that candle does not provide, or that are fused here
//! because a chain of small candle operations costs more in overhead than in arithmetic. Each
//! has its gradient; all run on the CPU in f32 or f64 (computed in f64, rounded to the input's
//! precision).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use std::f64::consts::TAU;
use std::sync::Arc;

/// The values of a contiguous f32 or f64 operand as f64.
pub(crate) fn values(storage: &CpuStorage, layout: &Layout, op: &str) -> Result<Vec<f64>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: operands must be contiguous")
    };
    match storage {
        CpuStorage::F64(v) => Ok(v[start..end].to_vec()),
        CpuStorage::F32(v) => Ok(v[start..end].iter().map(|&x| f64::from(x)).collect()),
        _ => candle_core::bail!("{op}: needs f32 or f64 tensors"),
    }
}

/// `values` as a tensor of the shape, device and dtype of `like` (a gradient of `like`).
pub(crate) fn tensor_like(values: Vec<f64>, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(values, like.shape(), like.device())?.to_dtype(like.dtype())
}

/// `values` as a storage of the dtype of `like`.
pub(crate) fn storage_like(values: Vec<f64>, like: &CpuStorage) -> CpuStorage {
    match like {
        CpuStorage::F32(_) => CpuStorage::F32(values.into_iter().map(|x| x as f32).collect()),
        _ => CpuStorage::F64(values),
    }
}

/// The values of a tensor as f64 (any layout).
pub(crate) fn tensor_values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1()
}

/// The angle atan2(y, x) in (-pi, pi] of the point (x, y), elementwise, for tensors of the
/// same shape, differentiable: d atan2 = (x dy - y dx) / (x^2 + y^2).
pub fn atan2(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    if y.shape() != x.shape() {
        candle_core::bail!("atan2: shapes {:?} and {:?} differ", y.shape(), x.shape());
    }
    y.contiguous()?.apply_op2(&x.contiguous()?, Atan2)
}

struct Atan2;

impl CustomOp2 for Atan2 {
    fn name(&self) -> &'static str {
        "atan2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, x) = (values(s1, l1, "atan2")?, values(s2, l2, "atan2")?);
        Ok((storage_like(y.iter().zip(&x).map(|(y, x)| y.atan2(*x)).collect(), s1), l1.shape().clone()))
    }

    fn bwd(
        &self,
        y: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let scaled = (grad / (x.sqr()? + y.sqr()?)?)?;
        Ok((Some((&scaled * x)?), Some((&scaled * y)?.neg()?)))
    }
}

/// x mod 2 pi in [0, 2 pi) elementwise (up to the rounding to the input's precision), with
/// the gradient of the identity (the jumps are by constants).
pub fn modulo_tau(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ModuloTau)
}

struct ModuloTau;

impl CustomOp1 for ModuloTau {
    fn name(&self) -> &'static str {
        "modulo_tau"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, "modulo_tau")?;
        Ok((
            storage_like(x.into_iter().map(|x| x.rem_euclid(TAU)).collect(), storage),
            layout.shape().clone(),
        ))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.clone()))
    }
}

/// The sites [`ncp_mixture`] and [`invert_ncp_mixture`] act on (the active plaquettes of a
/// coupling layer); on the others both are the identity.
#[derive(Clone)]
pub struct ActiveSites(Arc<[bool]>);

impl ActiveSites {
    /// The flags, one per site.
    pub fn new(flags: Vec<bool>) -> Self {
        ActiveSites(flags.into())
    }

    /// Whether point j of a [1, sites, batch] tensor with `points` entries lies on an active site.
    fn contains(&self, j: usize, points: usize) -> bool {
        self.0[j / (points / self.0.len())]
    }

    /// Checks `x` [1, sites, batch] and `s` [n, sites, batch] against the flags; the message
    /// names `op`.
    fn check(&self, x: &Tensor, s: &Tensor, op: &str) -> Result<()> {
        let (_, sites, _) = x.dims3()?;
        if x.dim(0)? != 1 || x.dims()[1..] != s.dims()[1..] || self.0.len() != sites {
            candle_core::bail!(
                "{op}: shapes {:?} and {:?} with {} site flags do not match",
                x.dims(),
                s.dims(),
                self.0.len()
            );
        }
        Ok(())
    }
}

/// The mixture of n non-compact projections of the circle (arXiv 2003.06413) and its
/// log-derivative, fused: for angles `x` [1, sites, batch] in [0, 2 pi] and scales `s`
/// [n, sites, batch], the tensor [2, sites, batch] of
///
///   value = (1/n) sum_i g_i(x),   g_i(x) = 2 atan2(e^{s_i} sin(x/2), cos(x/2)),
///   log-derivative = ln (1/n) sum_i g_i'(x),   g_i' = 1 / (e^{-s_i} cos^2(x/2) + e^{s_i} sin^2(x/2)),
///
/// on the `active` sites, and of the identity (value x, log-derivative 0) on the others, which
/// a coupling layer leaves unchanged (computing them there would be three quarters of the
/// work). Differentiable in x and s. |sin(x/2)| is used, so that rounding of x/2 near pi
/// cannot make atan2 jump by 2 pi.
pub fn ncp_mixture(x: &Tensor, s: &Tensor, active: &ActiveSites) -> Result<Tensor> {
    active.check(x, s, "ncp_mixture")?;
    x.contiguous()?.apply_op2(&s.contiguous()?, NcpMixture { active: active.clone() })
}

struct NcpMixture {
    active: ActiveSites,
}

/// |sin(x/2)| and cos(x/2) of an angle x, the two numbers every projection of the mixture
/// is evaluated from.
fn half_angle(x: f64) -> (f64, f64) {
    let (sin, cos) = (0.5 * x).sin_cos();
    (sin.abs(), cos)
}

/// The slope g'(x) = 1 / (cos^2(x/2) / lambda + lambda sin^2(x/2)) of the projection with
/// lambda = e^s, at the half angle (|sin(x/2)|, cos(x/2)).
fn ncp_slope(lambda: f64, (sin, cos): (f64, f64)) -> f64 {
    1.0 / (cos * cos / lambda + lambda * sin * sin)
}

/// The mixture's value (1/n) sum g_i(x) and slope (1/n) sum g_i'(x) at one point, for the n
/// scales `s[0], s[stride], s[2 stride], ...`
fn mixture_at(x: f64, s: &[f64], n: usize, stride: usize) -> (f64, f64) {
    let half = half_angle(x);
    let (value, slope) = (0..n).fold((0.0, 0.0), |(v, d), i| {
        let lambda = s[i * stride].exp();
        (v + 2.0 * (lambda * half.0).atan2(half.1), d + ncp_slope(lambda, half))
    });
    (value / n as f64, slope / n as f64)
}

/// The x in [0, 2 pi] where the mixture of the n scales `s[0], s[stride], ...` takes the value
/// y in [0, 2 pi) (the mixture is increasing, 0 at 0 and 2 pi at 2 pi): Newton iteration
/// safeguarded by bisection, in f64.
fn invert_mixture_at(y: f64, s: &[f64], n: usize, stride: usize) -> f64 {
    let (mut lo, mut hi, mut x) = (0.0, TAU, y);
    for _ in 0..200 {
        let (value, slope) = mixture_at(x, s, n, stride);
        let residual = value - y;
        if residual == 0.0 || !residual.is_finite() {
            break;
        }
        if residual < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - residual / slope;
        let next = if newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
        if (next - x).abs() <= 4.0 * f64::EPSILON * TAU {
            x = next;
            break;
        }
        x = next;
    }
    x
}

/// The inverse of [`ncp_mixture`]'s value: for targets `y` [1, sites, batch] in [0, 2 pi) and
/// scales `s` [n, sites, batch], the x [1, sites, batch] with (1/n) sum_i g_i(x) = y on the
/// `active` sites, and x = y on the others. Differentiable by the implicit function theorem:
/// dx/dy = 1 / g'(x), dx/ds_i = -(dg/ds_i)(x) / g'(x), g' the mixture's slope (the identity's
/// derivatives on the inactive sites).
pub fn invert_ncp_mixture(y: &Tensor, s: &Tensor, active: &ActiveSites) -> Result<Tensor> {
    active.check(y, s, "invert_ncp_mixture")?;
    y.contiguous()?.apply_op2(&s.contiguous()?, InverseNcpMixture { active: active.clone() })
}

struct InverseNcpMixture {
    active: ActiveSites,
}

impl CustomOp2 for InverseNcpMixture {
    fn name(&self) -> &'static str {
        "invert_ncp_mixture"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, s) = (values(s1, l1, "invert_ncp_mixture")?, values(s2, l2, "invert_ncp_mixture")?);
        let (points, n) = (y.len(), s.len() / y.len());
        let x = (0..points)
            .map(|j| {
                if self.active.contains(j, points) {
                    invert_mixture_at(y[j], &s[j..], n, points)
                } else {
                    y[j]
                }
            })
            .collect();
        Ok((storage_like(x, s1), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        s: &Tensor,
        x: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, sv, gv) = (tensor_values(x)?, tensor_values(s)?, tensor_values(grad)?);
        let (points, n) = (xv.len(), sv.len() / xv.len());
        let (mut grad_y, mut grad_s) = (gv.clone(), vec![0.0; n * points]);
        for (j, &xj) in xv.iter().enumerate().filter(|&(j, _)| self.active.contains(j, points)) {
            let half = half_angle(xj);
            let slopes: Vec<f64> = (0..n).map(|i| ncp_slope(sv[i * points + j].exp(), half)).collect();
            let slope = slopes.iter().sum::<f64>() / n as f64;
            grad_y[j] = gv[j] / slope;
            for (i, d) in slopes.iter().enumerate() {
                // d g_i / d s_i = g_i' sin x, and the mixture averages over the n projections
                grad_s[i * points + j] = -gv[j] * d * xj.sin() / n as f64 / slope;
            }
        }
        Ok((Some(tensor_like(grad_y, x)?), Some(tensor_like(grad_s, s)?)))
    }
}

impl CustomOp2 for NcpMixture {
    fn name(&self) -> &'static str {
        "ncp_mixture"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, s) = (values(s1, l1, "ncp_mixture")?, values(s2, l2, "ncp_mixture")?);
        let (points, n) = (x.len(), s.len() / x.len());
        // the identity (value x, log-derivative 0) on the inactive sites
        let mut out = x.clone();
        out.resize(2 * points, 0.0);
        for (j, &xj) in x.iter().enumerate().filter(|&(j, _)| self.active.contains(j, points)) {
            let (value, slope) = mixture_at(xj, &s[j..], n, points);
            out[j] = value;
            out[points + j] = slope.ln();
        }
        let mut dims = l1.shape().dims().to_vec();
        dims[0] = 2;
        Ok((storage_like(out, s1), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        s: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, sv, gv) = (tensor_values(x)?, tensor_values(s)?, tensor_values(grad)?);
        let (points, n) = (xv.len(), sv.len() / xv.len());
        // the identity's derivatives on the inactive sites
        let (mut grad_x, mut grad_s) = (gv[..points].to_vec(), vec![0.0; n * points]);
        // (e^s_i, g_i') of the point at hand
        let mut terms: Vec<(f64, f64)> = Vec::with_capacity(n);
        for (j, &xj) in xv.iter().enumerate().filter(|&(j, _)| self.active.contains(j, points)) {
            let (grad_value, grad_log) = (gv[j], gv[points + j]);
            let half = half_angle(xj);
            let (sin2, cos2, sin_x) = (half.0 * half.0, half.1 * half.1, xj.sin());
            terms.clear();
            terms.extend(
                (0..n).map(|i| sv[i * points + j].exp()).map(|lambda| (lambda, ncp_slope(lambda, half))),
            );
            let slope_sum: f64 = terms.iter().map(|t| t.1).sum();
            let mut gx = 0.0;
            for (i, &(lambda, d)) in terms.iter().enumerate() {
                // d g/dx = d, d g/ds = d sin x; d d/dx = -d^2 (lambda - 1/lambda) sin x / 2,
                // d d/ds = d^2 (cos^2(x/2) / lambda - lambda sin^2(x/2))
                gx += grad_value * d / n as f64
                    - grad_log * d * d * (lambda - 1.0 / lambda) * sin_x / 2.0 / slope_sum;
                grad_s[i * points + j] = grad_value * d * sin_x / n as f64
                    + grad_log * d * d * (cos2 / lambda - lambda * sin2) / slope_sum;
            }
            grad_x[j] = gx;
        }
        Ok((Some(tensor_like(grad_x, x)?), Some(tensor_like(grad_s, s)?)))
    }
}

/// The product C = op(A) op(B) of 3 x 3 complex matrices stored as 18 reals in the last
/// dimension (entries row-major as (re, im) pairs, the layout of
/// [`crate::group::Group::coordinates`] for SU(3)), for tensors of the same shape
/// [..., 18]; op is the identity or, where `adjoint` says so, the conjugate transpose.
/// Differentiable (the gradients are such products again).
pub fn color_product(a: &Tensor, b: &Tensor, adjoint: (bool, bool)) -> Result<Tensor> {
    if a.shape() != b.shape() || a.dims().last() != Some(&18) {
        candle_core::bail!("color_product: shapes {:?} and {:?}, need equal [..., 18]", a.dims(), b.dims());
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, ColorProduct { adjoint })
}

struct ColorProduct {
    adjoint: (bool, bool),
}

/// Entry (r, c) of op(M) for the 18 reals `m`.
fn entry(m: &[f64], r: usize, c: usize, adjoint: bool) -> (f64, f64) {
    if adjoint {
        (m[2 * (3 * c + r)], -m[2 * (3 * c + r) + 1])
    } else {
        (m[2 * (3 * r + c)], m[2 * (3 * r + c) + 1])
    }
}

impl CustomOp2 for ColorProduct {
    fn name(&self) -> &'static str {
        "color_product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (values(s1, l1, "color_product")?, values(s2, l2, "color_product")?);
        let mut out = vec![0.0; a.len()];
        for ((c, a), b) in out.chunks_exact_mut(18).zip(a.chunks_exact(18)).zip(b.chunks_exact(18)) {
            for r in 0..3 {
                for col in 0..3 {
                    let (mut re, mut im) = (0.0, 0.0);
                    for k in 0..3 {
                        let ((ar, ai), (br, bi)) =
                            (entry(a, r, k, self.adjoint.0), entry(b, k, col, self.adjoint.1));
                        re += ar * br - ai * bi;
                        im += ar * bi + ai * br;
                    }
                    c[2 * (3 * r + col)] = re;
                    c[2 * (3 * r + col) + 1] = im;
                }
            }
        }
        Ok((storage_like(out, s1), l1.shape().clone()))
    }

    /// For L real, G = dL/dRe C + i dL/dIm C: C = A B gives G_A = G B^dagger and
    /// G_B = A^dagger G; the adjoint cases follow by conjugate transposition.
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_a, grad_b) = match self.adjoint {
            (false, false) => (color_product(g, b, (false, true))?, color_product(a, g, (true, false))?),
            (false, true) => (color_product(g, b, (false, false))?, color_product(g, a, (true, false))?),
            (true, false) => (color_product(b, g, (false, true))?, color_product(a, g, (false, false))?),
            (true, true) => (color_product(b, g, (true, true))?, color_product(g, a, (true, true))?),
        };
        Ok((Some(grad_a), Some(grad_b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn atan2_matches_std_and_its_gradient_matches_finite_differences() {
        let points: [(f64, f64); 5] = [(0.3, -1.2), (-0.7, 0.4), (2.0, 0.0), (-1e-3, -1.0), (1.5, 1.5)];
        let y = Var::new(&points.map(|p| p.0), &Device::Cpu).unwrap();
        let x = Var::new(&points.map(|p| p.1), &Device::Cpu).unwrap();
        let angle = atan2(&y, &x).unwrap();
        let values: Vec<f64> = angle.to_vec1().unwrap();
        for ((py, px), v) in points.iter().zip(&values) {
            assert_eq!(*v, py.atan2(*px));
        }
        let grads = angle.sum_all().unwrap().backward().unwrap();
        let (gy, gx): (Vec<f64>, Vec<f64>) =
            (grads.get(&y).unwrap().to_vec1().unwrap(), grads.get(&x).unwrap().to_vec1().unwrap());
        let h = 1e-6;
        for (i, (py, px)) in points.iter().enumerate() {
            let dy = ((py + h).atan2(*px) - (py - h).atan2(*px)) / (2.0 * h);
            let dx = (py.atan2(px + h) - py.atan2(px - h)) / (2.0 * h);
            assert!((gy[i] - dy).abs() < 1e-8 && (gx[i] - dx).abs() < 1e-8, "{i}: {gy:?} {gx:?}");
        }
        assert!(atan2(&y.to_dtype(DType::F32).unwrap(), &x.to_dtype(DType::F32).unwrap()).is_ok());
        assert!(atan2(&y, &x.narrow(0, 0, 2).unwrap()).is_err());
    }

    #[test]
    fn modulo_tau_wraps_and_passes_gradients_through() {
        let x = Var::new(&[-0.5, 7.0, 3.0, -13.0], &Device::Cpu).unwrap();
        let y = modulo_tau(&x).unwrap();
        for (a, b) in [-0.5f64, 7.0, 3.0, -13.0].iter().zip(y.to_vec1::<f64>().unwrap()) {
            assert!((b - a.rem_euclid(TAU)).abs() < 1e-15 && (0.0..TAU).contains(&b));
        }
        let g = (y * 2.0).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec1::<f64>().unwrap(), vec![2.0; 4]);
    }

    /// Products against the group code, and their gradients against finite differences, for
    /// all four adjoint combinations.
    #[test]
    fn color_products_match_the_group_code_and_finite_differences() {
        use crate::group::{LinkMatrix, Su3Matrix};
        let reals = |seed: u64| -> Vec<f64> {
            (0..36).map(|i| ((i as u64 * 37 + seed * 11) % 23) as f64 / 7.0 - 1.5).collect()
        };
        let (av, bv) = (reals(1), reals(2));
        let (a, b) = (
            Var::from_vec(av.clone(), (2, 18), &Device::Cpu).unwrap(),
            Var::from_vec(bv.clone(), (2, 18), &Device::Cpu).unwrap(),
        );
        let weights = Tensor::from_vec(reals(3), (2, 18), &Device::Cpu).unwrap();
        for adjoint in [(false, false), (false, true), (true, false), (true, true)] {
            let c = color_product(&a, &b, adjoint).unwrap();
            let cv = tensor_values(&c).unwrap();
            for m in 0..2 {
                let op = |v: &[f64], adj: bool| {
                    let x = Su3Matrix::read_reals(&v[18 * m..][..18]);
                    if adj { x.adj() } else { x }
                };
                let mut expected = [0.0; 18];
                op(&av, adjoint.0).mul(&op(&bv, adjoint.1)).write_reals(&mut expected);
                assert!(expected.iter().zip(&cv[18 * m..]).all(|(e, c)| (e - c).abs() < 1e-13));
            }
            let grads = (c * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let objective = |a: Vec<f64>, b: Vec<f64>| -> f64 {
                let (a, b) = (
                    Tensor::from_vec(a, (2, 18), &Device::Cpu).unwrap(),
                    Tensor::from_vec(b, (2, 18), &Device::Cpu).unwrap(),
                );
                (color_product(&a, &b, adjoint).unwrap() * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            let h = 1e-6;
            for i in [0, 5, 13, 30] {
                let shift = |v: &[f64], d: f64| {
                    let mut v = v.to_vec();
                    v[i] += d;
                    v
                };
                let fd_a = (objective(shift(&av, h), bv.clone()) - objective(shift(&av, -h), bv.clone()))
                    / (2.0 * h);
                let fd_b = (objective(av.clone(), shift(&bv, h)) - objective(av.clone(), shift(&bv, -h)))
                    / (2.0 * h);
                let (ga, gb) = (
                    tensor_values(grads.get(&a).unwrap()).unwrap()[i],
                    tensor_values(grads.get(&b).unwrap()).unwrap()[i],
                );
                assert!(
                    (fd_a - ga).abs() < 1e-7 && (fd_b - gb).abs() < 1e-7,
                    "{adjoint:?} {i}: {fd_a} {ga} {fd_b} {gb}"
                );
            }
        }
        assert!(color_product(&a, &b.narrow(0, 0, 1).unwrap(), (false, false)).is_err());
    }

    /// The fused mixture against the same formulas in candle operations on the active sites
    /// and the identity on the others, values and gradients by autograd, and the gradient
    /// against finite differences.
    #[test]
    fn ncp_mixture_matches_its_formulas_and_finite_differences() {
        let (n, points) = (3, 7);
        let xs: Vec<f64> = (0..points).map(|j| 0.1 + 0.9 * j as f64).collect(); // 0.1 .. 5.5
        let ss: Vec<f64> = (0..n * points).map(|k| ((k * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let flags = vec![true, true, false, true, true, false, true];
        let active = ActiveSites::new(flags.clone());
        let x = Var::from_vec(xs.clone(), (1, points, 1), &Device::Cpu).unwrap();
        let s = Var::from_vec(ss.clone(), (n, points, 1), &Device::Cpu).unwrap();
        let weights = Tensor::from_vec(
            (0..2 * points).map(|k| 0.3 + 0.1 * k as f64).collect(),
            (2, points, 1),
            &Device::Cpu,
        )
        .unwrap();
        let fused = ncp_mixture(&x, &s, &active).unwrap();
        // reference composition
        let mask = Tensor::from_vec(
            flags.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect::<Vec<f64>>(),
            (1, points, 1),
            &Device::Cpu,
        )
        .unwrap();
        let half = (x.as_tensor() * 0.5).unwrap();
        let (sin, cos) = (
            half.sin().unwrap().broadcast_as((n, points, 1)).unwrap(),
            half.cos().unwrap().broadcast_as((n, points, 1)).unwrap(),
        );
        let lambda = s.exp().unwrap();
        let value =
            (atan2(&(&lambda * &sin).unwrap(), &cos).unwrap() * 2.0).unwrap().mean_keepdim(0).unwrap();
        let slope = ((cos.sqr().unwrap() / &lambda).unwrap() + (sin.sqr().unwrap() * &lambda).unwrap())
            .unwrap()
            .recip()
            .unwrap();
        let log_slope = (slope.mean_keepdim(0).unwrap().log()).unwrap();
        let identity = (1.0 - &mask).unwrap();
        let value = ((value * &mask).unwrap() + (x.as_tensor() * identity).unwrap()).unwrap();
        let reference = Tensor::cat(&[value, (log_slope * &mask).unwrap()], 0).unwrap();
        let a: Vec<f64> = tensor_values(&fused).unwrap();
        let b: Vec<f64> = tensor_values(&reference).unwrap();
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-13, "{u} vs {v}");
        }
        let grads_fused = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let grads_reference = (&reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        for var in [&x, &s] {
            let (u, v) = (
                tensor_values(grads_fused.get(var).unwrap()).unwrap(),
                tensor_values(grads_reference.get(var).unwrap()).unwrap(),
            );
            for (p, q) in u.iter().zip(&v) {
                assert!((p - q).abs() < 1e-10 * q.abs().max(1.0), "gradient {p} vs {q}");
            }
        }
        // finite difference in one scale
        let objective = |s: Vec<f64>| -> f64 {
            let s = Tensor::from_vec(s, (n, points, 1), &Device::Cpu).unwrap();
            let t = ncp_mixture(x.as_tensor(), &s, &active).unwrap();
            (t * &weights).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        // the second scale of an active site, and of an inactive one (no dependence)
        for (k, active_site) in [(points + 1, true), (points + 2, false)] {
            let (mut up, mut down, h) = (ss.clone(), ss.clone(), 1e-6);
            up[k] += h;
            down[k] -= h;
            let fd = (objective(up) - objective(down)) / (2.0 * h);
            let analytic = tensor_values(grads_fused.get(&s).unwrap()).unwrap()[k];
            assert!((fd - analytic).abs() < 1e-7, "scale {k}: {fd} vs {analytic}");
            assert_eq!(analytic.abs() > 1e-3, active_site, "scale {k}: {analytic}");
        }
        assert!(ncp_mixture(x.as_tensor(), &s.narrow(1, 0, 3).unwrap(), &active).is_err());
    }

    /// The inverse recovers x from the mixture's value on active sites and is the identity on
    /// the others; its gradients match finite differences of the inverse.
    #[test]
    fn inverse_ncp_mixture_inverts_and_its_gradient_matches_finite_differences() {
        let (n, sites, batch) = (3, 4, 2);
        let points = sites * batch;
        let xs: Vec<f64> = (0..points).map(|j| 0.2 + 0.75 * j as f64).collect(); // 0.2 .. 5.45
        let ss: Vec<f64> = (0..n * points).map(|k| ((k * 5 % 13) as f64 - 6.0) / 3.0).collect();
        let flags = vec![true, false, true, true];
        let active = ActiveSites::new(flags.clone());
        let s = Var::from_vec(ss.clone(), (n, sites, batch), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(xs.clone(), (1, sites, batch), &Device::Cpu).unwrap();
        let all = ActiveSites::new(vec![true; sites]);
        let y = Var::from_tensor(&ncp_mixture(&x, &s, &all).unwrap().narrow(0, 0, 1).unwrap()).unwrap();
        let inverse = invert_ncp_mixture(&y, &s, &active).unwrap();
        let (back, yv) = (tensor_values(&inverse).unwrap(), tensor_values(&y).unwrap());
        for j in 0..points {
            let expected = if flags[j / batch] { xs[j] } else { yv[j] };
            assert!((back[j] - expected).abs() < 1e-12, "{j}: {} vs {expected}", back[j]);
        }
        let weights: Vec<f64> = (0..points).map(|j| 0.5 + 0.3 * j as f64).collect();
        let weights = Tensor::from_vec(weights, (1, sites, batch), &Device::Cpu).unwrap();
        let objective = |y: &[f64], s: &[f64]| -> f64 {
            let y = Tensor::from_vec(y.to_vec(), (1, sites, batch), &Device::Cpu).unwrap();
            let s = Tensor::from_vec(s.to_vec(), (n, sites, batch), &Device::Cpu).unwrap();
            (invert_ncp_mixture(&y, &s, &active).unwrap() * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let grads = (&inverse * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let (gy, gs) =
            (tensor_values(grads.get(&y).unwrap()).unwrap(), tensor_values(grads.get(&s).unwrap()).unwrap());
        let h = 1e-6;
        let shifted = |v: &[f64], i: usize, d: f64| {
            let mut v = v.to_vec();
            v[i] += d;
            v
        };
        for (j, g) in gy.iter().enumerate() {
            let fd = (objective(&shifted(&yv, j, h), &ss) - objective(&shifted(&yv, j, -h), &ss)) / (2.0 * h);
            assert!((fd - g).abs() < 1e-6 * fd.abs().max(1.0), "dy {j}: {fd} vs {g}");
        }
        for (k, g) in gs.iter().enumerate() {
            let fd = (objective(&yv, &shifted(&ss, k, h)) - objective(&yv, &shifted(&ss, k, -h))) / (2.0 * h);
            assert!((fd - g).abs() < 1e-6 * fd.abs().max(1.0), "ds {k}: {fd} vs {g}");
        }
        assert!(invert_ncp_mixture(&y, &s, &ActiveSites::new(vec![true; 3])).is_err());
    }
}
