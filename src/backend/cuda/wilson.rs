//! The Wilson-Dirac operator on a device (`kernels/wilson.cu`): M = 1 - kappa H on one rank's
//! block of a 4D SU(3) lattice in site-major storage ([`super::layout`], [`super::block`]:
//! on a process grid every hop first exchanges the faces of its input), with the boundary
//! phase exp(i theta) in time, its even/odd Schur operator, the force of the Schur operator
//! (in f64), and its normal operators as [`LinearOperator`]s, so that the Krylov solvers run
//! on the device with [`DeviceSpinor`] vectors. The operator's copy of the links holds 18 or
//! 12 reals a link ([`LinkStorage`]); the force and the solvers work with either.

use super::WILSON;
use super::block::{BlockShape, exchange_faces};
use super::device::{Arg, Device, DeviceBuffer, DeviceReal, checked};
use super::gauge::{DeviceGauge, DeviceMomenta};
use super::layout::SPINOR;
use super::spinor::DeviceSpinor;
use crate::error::{Error, Result};
use crate::solver::LinearOperator;
use std::sync::Mutex;

/// How a Dirac operator stores its copy of the links: all 18 reals of each 3x3 matrix, or
/// the first two rows (12 reals) with the third rebuilt in the kernel as conj(row0 x row1),
/// QUDA's "reconstruct 12". That rebuild holds for SU(3) matrices (the boundary phase is applied
/// separately), and it trades a third of the link bytes for 18 complex multiplications a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkStorage {
    /// 18 reals a link.
    #[default]
    Full,
    /// 12 reals a link: rows 0 and 1.
    TwoRows,
}

impl LinkStorage {
    /// The storage of `reals` reals a link: 18 or 12, else None.
    pub fn of_reals(reals: usize) -> Option<Self> {
        match reals {
            18 => Some(LinkStorage::Full),
            12 => Some(LinkStorage::TwoRows),
            _ => None,
        }
    }

    /// Rows of each matrix held (3 or 2).
    pub fn rows(self) -> usize {
        match self {
            LinkStorage::Full => 3,
            LinkStorage::TwoRows => 2,
        }
    }

    /// Reals a link (18 or 12).
    pub fn reals(self) -> usize {
        6 * self.rows()
    }
}

/// M = 1 - kappa H on a device, in precision T: the gauge field uploaded once.
#[derive(Debug)]
pub struct DeviceWilson<T: DeviceReal> {
    links: DeviceBuffer<T>,
    storage: LinkStorage,
    block: BlockShape,
    kappa: f64,
    theta: f64,
}

impl<T: DeviceReal> DeviceWilson<T> {
    /// M on the device-resident gauge field `gauge` (its links copied in precision T, held as
    /// `storage` says), with hopping parameter `kappa` and time phase `theta`.
    pub fn on(gauge: &DeviceGauge, kappa: f64, theta: f64, storage: LinkStorage) -> Result<Self> {
        let full = gauge.links_in::<T>()?;
        let links = match storage {
            LinkStorage::Full => full,
            LinkStorage::TwoRows => {
                let device = full.device().clone();
                let count = gauge.block().extended_volume() * 4;
                let mut rows = device.zeros::<T>(count * 12)?;
                let mut args = vec![Arg::Long(count as i64), T::arg(&full), T::arg_mut(&mut rows)];
                let kernel = format!("two_rows_{}", T::SUFFIX);
                // SAFETY: the parameters of two_rows_T; 18 reals a link in, 12 out.
                unsafe { device.launch(WILSON, &kernel, device.shape(count * 12), &mut args)? };
                drop(args);
                rows
            }
        };
        Ok(DeviceWilson { links, storage, block: *gauge.block(), kappa, theta })
    }

    /// How the links are stored.
    pub fn storage(&self) -> LinkStorage {
        self.storage
    }

    /// The device it lives on.
    pub fn device(&self) -> &Device {
        self.links.device()
    }

    /// The hopping parameter.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }

    /// Complex components of a full spinor field of its block.
    pub fn entries(&self) -> usize {
        self.block.volume() * SPINOR
    }

    /// Complex components of a half field (one parity) of its lattice.
    pub fn half_entries(&self) -> usize {
        self.entries() / 2
    }

    /// y = M x, or M^dagger x with `dagger` (full fields of [`DeviceWilson::entries`]).
    pub fn apply(&self, dagger: bool, x: &DeviceSpinor<T>, y: &mut DeviceSpinor<T>) -> Result<()> {
        self.hop(None, dagger, x, Some(x), self.kappa, y)
    }

    /// y = M_hat x = x - kappa^2 H_eo H_oe x, or M_hat^dagger x with `dagger`, on even half
    /// fields; `odd` is scratch (an odd half field).
    pub fn apply_schur(
        &self,
        dagger: bool,
        x: &DeviceSpinor<T>,
        y: &mut DeviceSpinor<T>,
        odd: &mut DeviceSpinor<T>,
    ) -> Result<()> {
        self.hop(Some(1), dagger, x, None, -1.0, odd)?;
        self.hop(Some(0), dagger, odd, Some(x), self.kappa * self.kappa, y)
    }

    /// out = base - factor H in (H^dagger with `dagger`; base 0 when `None`): on full fields
    /// (`parity` None) or from the half field of parity 1 - p to that of p (`Some(p)`).
    /// Collective on a process grid (the faces of `input`).
    fn hop(
        &self,
        parity: Option<usize>,
        dagger: bool,
        input: &DeviceSpinor<T>,
        base: Option<&DeviceSpinor<T>>,
        factor: f64,
        out: &mut DeviceSpinor<T>,
    ) -> Result<()> {
        let entries = if parity.is_some() { self.half_entries() } else { self.entries() };
        let lengths = [Some(input.len()), base.map(DeviceSpinor::len), Some(out.len())];
        if lengths.iter().flatten().any(|&n| n != entries) {
            return Err(Error::Device(format!(
                "Wilson operator on {:?}: fields of {lengths:?} components where it needs {entries}",
                self.block.dims()
            )));
        }
        let input_parity = parity.map(|p| 1 - p as i32);
        let ghosts = self.ghosts(&[(input, input_parity)])?;
        let mut args = vec![
            T::arg(&self.links),
            self.rows(),
            T::arg(input.reals()),
            ghosts.as_ref().map_or(Arg::Null, T::arg),
            base.map_or(Arg::Null, |b| T::arg(b.reals())),
            T::arg_mut(out.reals_mut()),
        ];
        args.extend(self.block.args());
        args.extend([
            T::scalar(factor),
            T::scalar(self.theta.cos()),
            T::scalar(self.theta.sin()),
            Arg::Int(i32::from(dagger)),
            Arg::Int(parity.map_or(-1, |p| p as i32)),
        ]);
        let device = self.device();
        let kernel = format!("wilson_hop_{}", T::SUFFIX);
        // SAFETY: the parameters of wilson_hop_T in order; the links hold 4 times `rows` rows of 3
        // complex numbers per site of the extended box, the fields 12 per site of their parity
        // (checked above) and the ghosts 12 per ghost site, as the kernel reads and writes them.
        unsafe { device.launch(WILSON, &kernel, device.shape(entries / SPINOR), &mut args) }
    }

    /// The ghost faces of the full field whose parts `parts` are (a field and its parity:
    /// None for a full field, Some(p) for the half field of parity p): None when no direction
    /// is cut. Collective.
    fn ghosts(&self, parts: &[(&DeviceSpinor<T>, Option<i32>)]) -> Result<Option<DeviceBuffer<T>>> {
        if self.block.is_whole() {
            return Ok(None);
        }
        let device = self.device();
        let reals = self.block.ghost_sites() * 24;
        let mut outgoing = device.zeros::<T>(reals)?;
        let kernel = format!("pack_faces_{}", T::SUFFIX);
        for (field, parity) in parts {
            let mut args = vec![T::arg(field.reals()), Arg::Int(parity.unwrap_or(-1))];
            args.extend(self.block.args());
            args.push(T::arg_mut(&mut outgoing));
            // SAFETY: the parameters of pack_faces_T in order; the field holds 12 complex
            // numbers per site of its parity (checked by the callers), the faces 24 reals per
            // ghost site.
            unsafe { device.launch(WILSON, &kernel, device.shape(reals), &mut args)? };
        }
        exchange_faces(device, &self.block, &outgoing).map(Some)
    }

    /// The kernels' `rows` argument.
    fn rows(&self) -> Arg<'static> {
        Arg::Int(self.storage.rows() as i32)
    }

    /// psi <- gamma5 psi (a full or half field).
    pub fn gamma5(&self, psi: &mut DeviceSpinor<T>) -> Result<()> {
        let sites = psi.len() / SPINOR;
        let device = self.device().clone();
        let kernel = format!("gamma5_{}", T::SUFFIX);
        let mut args = vec![Arg::Long(sites as i64), T::arg_mut(psi.reals_mut())];
        // SAFETY: the parameters of gamma5_T; 12 complex numbers per site.
        unsafe { device.launch(WILSON, &kernel, device.shape(sites * SPINOR), &mut args) }
    }
}

/// The force of the operator, in f64 (the precision of the gauge field).
impl DeviceWilson<f64> {
    /// p_a(x, mu) += c d/dw Re(a^dagger M_hat b) for every link, U_mu(x) -> exp(w T_a) U_mu(x),
    /// a and b even half fields: the CPU's [`crate::dirac::FermionMatrix::add_derivative`] with
    /// even/odd preconditioning. M_hat = 1 - kappa^2 H_eo H_oe makes it -c kappa^2 times the
    /// derivative of Re(A^dagger H B) with A = (a, H^dagger_oe a), B = (b, H_oe b).
    pub fn add_schur_derivative(
        &self,
        a: &DeviceSpinor<f64>,
        b: &DeviceSpinor<f64>,
        c: f64,
        p: &mut DeviceMomenta,
    ) -> Result<()> {
        let device = self.device();
        let (mut a_odd, mut b_odd) = (
            DeviceSpinor::zeros(device, self.half_entries())?,
            DeviceSpinor::zeros(device, self.half_entries())?,
        );
        self.hop(Some(1), true, a, None, -1.0, &mut a_odd)?;
        self.hop(Some(1), false, b, None, -1.0, &mut b_odd)?;
        let volume = self.entries() / SPINOR;
        if p.reals_mut().len() != volume * 32 {
            return Err(Error::Device(format!(
                "momenta of {} reals for the {volume} sites of {:?}",
                p.reals_mut().len(),
                self.block.dims()
            )));
        }
        let a_ghosts = self.ghosts(&[(a, Some(0)), (&a_odd, Some(1))])?;
        let b_ghosts = self.ghosts(&[(b, Some(0)), (&b_odd, Some(1))])?;
        let mut args = vec![
            Arg::F64(&self.links),
            self.rows(),
            Arg::F64(a.reals()),
            Arg::F64(a_odd.reals()),
            a_ghosts.as_ref().map_or(Arg::Null, Arg::F64),
            Arg::F64(b.reals()),
            Arg::F64(b_odd.reals()),
            b_ghosts.as_ref().map_or(Arg::Null, Arg::F64),
            Arg::F64Mut(p.reals_mut()),
        ];
        args.extend(self.block.args());
        args.extend([
            Arg::Double(-c * self.kappa * self.kappa),
            Arg::Double(self.theta.cos()),
            Arg::Double(self.theta.sin()),
        ]);
        // SAFETY: the parameters of hopping_derivative_f64 in order; the halves hold 12 complex
        // numbers per site of their parity (a and b checked by the hops), the links 4 times
        // `rows` rows of 3 and the momenta 32 reals per site (checked).
        unsafe { device.launch(WILSON, "hopping_derivative_f64", device.shape(volume), &mut args) }
    }
}

/// M^dagger M of a [`DeviceWilson`] on full fields, or M_hat^dagger M_hat on even half
/// fields: the operators of CG on the normal equations. It keeps its intermediate fields on
/// the device.
#[derive(Debug)]
pub struct DeviceNormal<'a, T: DeviceReal> {
    op: &'a DeviceWilson<T>,
    even_odd: bool,
    /// M x (full or even), and the odd scratch of the Schur operator.
    scratch: Mutex<(DeviceSpinor<T>, DeviceSpinor<T>)>,
}

impl<'a, T: DeviceReal> DeviceNormal<'a, T> {
    /// M^dagger M of `op`, or with `even_odd` M_hat^dagger M_hat.
    pub fn new(op: &'a DeviceWilson<T>, even_odd: bool) -> Result<Self> {
        let device = op.device();
        let first = if even_odd { op.half_entries() } else { op.entries() };
        let scratch = (DeviceSpinor::zeros(device, first)?, DeviceSpinor::zeros(device, op.half_entries())?);
        Ok(DeviceNormal { op, even_odd, scratch: Mutex::new(scratch) })
    }
}

impl<T: DeviceReal> LinearOperator for DeviceNormal<'_, T> {
    type Vector = DeviceSpinor<T>;

    /// y = M^dagger M x (M_hat^dagger M_hat x). A failing device call (a lost GPU, fields of
    /// another shape) panics with its message: the solvers' operators cannot return errors.
    fn apply(&self, x: &DeviceSpinor<T>, y: &mut DeviceSpinor<T>) {
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (t, odd) = &mut *scratch;
        let applied = if self.even_odd {
            self.op.apply_schur(false, x, t, odd).and_then(|()| self.op.apply_schur(true, t, y, odd))
        } else {
            self.op.apply(false, x, t).and_then(|()| self.op.apply(true, t, y))
        };
        checked(applied);
    }
}
