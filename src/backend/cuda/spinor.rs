//! Complex vectors resident on a [`Device`] (spinor fields in the site-major storage of the
//! kernels, [`super::layout`]) and their BLAS-1 algebra, which makes them the vectors of the
//! Krylov solvers ([`SolverVector`]): a solve on a device moves no field to the host, only the
//! per-block partial sums of its dot products.
//!
//! Sums are deterministic: the kernels of `kernels/blas.cu` add in a fixed order within a
//! launch, and the host adds the per-block partials in block order, so a device solve repeats
//! bit for bit run to run (on one device and launch shape). They are not the CPU's exact sums:
//! a device and the CPU agree to round-off, not bit for bit.
//!
//! The [`SolverVector`] methods cannot return errors: a failing device call inside them (a
//! lost GPU) panics with the driver's message, and so do vectors of different lengths (a
//! caller's bug, checked before any kernel indexes them); buffers of different devices are
//! refused by the launch.

use super::BLAS;
use super::device::{Arg, Device, DeviceBuffer, DeviceReal, checked, lowered};
use crate::error::Result;
use crate::solver::{Lower, SolverVector};
use num_complex::Complex64;

/// A vector of complex numbers on a device, in precision T: (re, im) pairs of T.
#[derive(Debug)]
pub struct DeviceSpinor<T: DeviceReal> {
    data: DeviceBuffer<T>,
}

impl<T: DeviceReal> DeviceSpinor<T> {
    /// `entries` complex zeros on `device`.
    pub fn zeros(device: &Device, entries: usize) -> Result<Self> {
        Ok(DeviceSpinor { data: device.zeros(2 * entries)? })
    }

    /// A device copy of `values`, rounded to T.
    pub fn upload(device: &Device, values: &[Complex64]) -> Result<Self> {
        let reals: Vec<T> = values.iter().flat_map(|z| [T::from_f64(z.re), T::from_f64(z.im)]).collect();
        Ok(DeviceSpinor { data: device.upload(&reals)? })
    }

    /// The values on the host, in f64.
    pub fn download(&self) -> Result<Vec<Complex64>> {
        let reals = self.data.download()?;
        Ok(reals.chunks_exact(2).map(|p| Complex64::new(p[0].to_f64(), p[1].to_f64())).collect())
    }

    /// The device it lives on.
    pub fn device(&self) -> &Device {
        self.data.device()
    }

    /// Its (re, im) reals, for kernels.
    pub fn reals(&self) -> &DeviceBuffer<T> {
        &self.data
    }

    /// Its (re, im) reals, for kernels that write them.
    pub fn reals_mut(&mut self) -> &mut DeviceBuffer<T> {
        &mut self.data
    }

    /// Number of complex entries.
    pub fn len(&self) -> usize {
        self.data.len() / 2
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A second vector with the same values.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(DeviceSpinor { data: self.data.try_clone()? })
    }

    /// Overwrites the values with those of `other` (same device and length).
    pub fn copy_from(&mut self, other: &Self) -> Result<()> {
        self.data.copy_from(&other.data)
    }

    /// Launches the BLAS kernel `name`_T on `device` with `args` over `items` work items.
    fn blas(device: &Device, name: &str, items: usize, mut args: Vec<Arg<'_>>) {
        let kernel = format!("{name}_{}", T::SUFFIX);
        // SAFETY: every caller passes the kernel's parameters in order, with buffers of 2 n reals
        // for n = `items` complex entries (n reals for the real kernels), lengths checked.
        checked(unsafe { device.launch(BLAS, &kernel, device.shape(items), &mut args) });
    }

    /// The totals of the reduction kernel `name`_T (see [`Device::reduce`]), with `components`
    /// sums per block.
    fn reduce(device: &Device, name: &str, items: usize, args: Vec<Arg<'_>>, components: usize) -> Vec<f64> {
        let kernel = format!("{name}_{}", T::SUFFIX);
        // SAFETY: as in `blas`; the reduction kernels write `components` sums per block.
        checked(unsafe { device.reduce(BLAS, &kernel, items, args, components) })
    }

    /// Panics unless `x` has this vector's length (the kernels index both by it).
    fn check_shape(&self, x: &Self) {
        assert_eq!(self.data.len(), x.data.len(), "device vectors of {} and {} entries", self.len(), x.len());
    }

    /// The arguments (n, a, x, self) of the complex axpy kernels (lengths checked).
    fn axpy_args<'a>(&'a mut self, a: Complex64, x: &'a Self) -> Vec<Arg<'a>> {
        self.check_shape(x);
        let n = self.len() as i64;
        vec![Arg::Long(n), T::scalar(a.re), T::scalar(a.im), T::arg(&x.data), T::arg_mut(&mut self.data)]
    }
}

impl<T: DeviceReal> Clone for DeviceSpinor<T> {
    fn clone(&self) -> Self {
        checked(self.try_clone())
    }
}

impl<T: DeviceReal> SolverVector for DeviceSpinor<T> {
    fn dot(&self, x: &Self) -> Complex64 {
        self.check_shape(x);
        let args = vec![Arg::Long(self.len() as i64), T::arg(&self.data), T::arg(&x.data)];
        let sums = Self::reduce(self.device(), "cdot_partial", self.len(), args, 2);
        Complex64::new(sums[0], sums[1])
    }

    fn norm_sqr(&self) -> f64 {
        self.re_dot(self)
    }

    fn re_dot(&self, x: &Self) -> f64 {
        self.check_shape(x);
        let reals = self.data.len();
        let args = vec![Arg::Long(reals as i64), T::arg(&self.data), T::arg(&x.data)];
        Self::reduce(self.device(), "dot_partial", reals, args, 1)[0]
    }

    fn axpy_norm_sqr(&mut self, a: Complex64, x: &Self) -> f64 {
        let device = self.device().clone();
        Self::reduce(&device, "caxpy_norm_partial", self.len(), self.axpy_args(a, x), 1)[0]
    }

    fn axpy(&mut self, a: Complex64, x: &Self) {
        let device = self.device().clone();
        Self::blas(&device, "caxpy", self.len(), self.axpy_args(a, x));
    }

    fn xpay(&mut self, x: &Self, a: Complex64) {
        self.check_shape(x);
        let (device, n) = (self.device().clone(), self.len());
        let args = vec![
            Arg::Long(n as i64),
            T::arg(&x.data),
            T::scalar(a.re),
            T::scalar(a.im),
            T::arg_mut(&mut self.data),
        ];
        Self::blas(&device, "cxpay", n, args);
    }

    fn zeroed(&self) -> Self {
        checked(Self::zeros(self.device(), self.len()))
    }

    fn entries(&self) -> usize {
        self.len()
    }
}

/// f64 device vectors with their f32 counterparts, for mixed-precision CG on the device.
impl Lower<DeviceSpinor<f32>> for DeviceSpinor<f64> {
    fn lower_scaled(&self, s: f64) -> DeviceSpinor<f32> {
        DeviceSpinor { data: checked(lowered(&self.data, s)) }
    }

    fn add_lower(&mut self, a: f64, l: &DeviceSpinor<f32>) {
        assert_eq!(self.len(), l.len(), "device vectors of {} and {} entries", self.len(), l.len());
        let (device, reals) = (self.device().clone(), self.data.len());
        let args =
            vec![Arg::Long(reals as i64), Arg::Double(a), Arg::F32(&l.data), Arg::F64Mut(&mut self.data)];
        Self::blas(&device, "add_lower", reals, args);
    }
}
