//! Tensor operations the flows need that candle does not provide, with their gradients.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// The angle atan2(y, x) in (-pi, pi] of the point (x, y), elementwise, for tensors of the
/// same shape (f32 or f64, CPU), differentiable: d atan2 = (x dy - y dx) / (x^2 + y^2).
pub fn atan2(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    if y.shape() != x.shape() {
        candle_core::bail!("atan2: shapes {:?} and {:?} differ", y.shape(), x.shape());
    }
    y.contiguous()?.apply_op2(&x.contiguous()?, Atan2)
}

struct Atan2;

/// The contiguous slice a layout covers (the operands are made contiguous first).
fn slice<'a, T>(values: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("atan2: operands must be contiguous"),
    }
}

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
        let storage = match (s1, s2) {
            (CpuStorage::F64(y), CpuStorage::F64(x)) => {
                let (y, x) = (slice(y, l1)?, slice(x, l2)?);
                CpuStorage::F64(y.iter().zip(x).map(|(y, x)| y.atan2(*x)).collect())
            }
            (CpuStorage::F32(y), CpuStorage::F32(x)) => {
                let (y, x) = (slice(y, l1)?, slice(x, l2)?);
                CpuStorage::F32(y.iter().zip(x).map(|(y, x)| y.atan2(*x)).collect())
            }
            _ => candle_core::bail!("atan2: needs two f32 or two f64 tensors"),
        };
        Ok((storage, l1.shape().clone()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

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
        let f32_angle = atan2(
            &y.to_dtype(candle_core::DType::F32).unwrap(),
            &x.to_dtype(candle_core::DType::F32).unwrap(),
        );
        assert!(f32_angle.is_ok());
        assert!(atan2(&y, &x.narrow(0, 0, 2).unwrap()).is_err());
    }
}
