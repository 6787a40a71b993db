//! Device memory and kernel launches, on a GPU or on the CPU emulation of the kernels.
//!
//! A [`Device`] is where the backend's fields live and its kernels run: a GPU (through cudarc:
//! device memory, kernels loaded from NVRTC's PTX, launches queued on the GPU's stream) or the
//! emulation ([`super::emulation`]: host memory, the same kernel sources built as host C++).
//! Code above this module (fields, operators, solvers) is written once against [`Device`] and
//! [`DeviceBuffer`], so the tests without a GPU run exactly what a GPU runs, kernels included.
//!
//! Contract of every kernel launched here: a grid-stride loop over its work items, so that any
//! launch shape ([`Device::shape`]) covers them, and block sizes a power of two up to
//! [`BLOCK`] (the reduction trees' shared arrays). Launches run in order (one stream);
//! downloads wait for the work queued before them.

use super::{BLOCK, Gpu, KernelSource, emulation};
use crate::comm::{Comm, Single};
use crate::error::{Error, Result};
use crate::exact_sum::ExactSum;
use cudarc::driver::{CudaModule, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

/// Element types of device buffers.
pub trait DeviceScalar: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {}

impl DeviceScalar for f64 {}
impl DeviceScalar for f32 {}

/// Where fields live and kernels run: a GPU or the CPU emulation (see the module docs), with
/// the ranks it computes for: on a process grid every rank has its own device, and the sums
/// of [`Device::reduce`] run over all of them. Clones share the device.
#[derive(Clone, Debug)]
pub struct Device {
    engine: Arc<Engine>,
    comm: Arc<dyn Comm>,
}

#[derive(Debug)]
enum Engine {
    Gpu { gpu: Gpu, modules: Mutex<HashMap<&'static str, Arc<CudaModule>>> },
    Emulated,
}

/// Blocks of an emulated launch: two, so that grid strides and per-block partial sums are
/// exercised, with [`EMULATED_BLOCK`] threads each (every thread is a host thread).
const EMULATED_GRID: u32 = 2;

/// Threads per block of an emulated launch.
const EMULATED_BLOCK: u32 = 32;

/// Most blocks of a GPU launch (grid-stride kernels cover any size with them).
const MAX_GRID: usize = 4096;

/// A null device pointer, as a launch passes it.
static NULL: u64 = 0;

/// One argument of a launch, as the kernel's parameter takes it: a buffer (a device pointer,
/// `const T*` or `T*`) or a scalar of the parameter's exact type.
pub enum Arg<'a> {
    /// `const double*`.
    F64(&'a DeviceBuffer<f64>),
    /// `double*`.
    F64Mut(&'a mut DeviceBuffer<f64>),
    /// `const float*`.
    F32(&'a DeviceBuffer<f32>),
    /// `float*`.
    F32Mut(&'a mut DeviceBuffer<f32>),
    /// `int`.
    Int(i32),
    /// `long long`.
    Long(i64),
    /// A null pointer (for a pointer parameter the kernel documents as optional).
    Null,
    /// `double`.
    Double(f64),
    /// `float`.
    Float(f32),
}

impl Device {
    /// GPU `ordinal`; the errors of [`Gpu::open`].
    pub fn gpu(ordinal: usize) -> Result<Device> {
        let gpu = Gpu::open(ordinal)?;
        Ok(Device::of(Engine::Gpu { gpu, modules: Mutex::new(HashMap::new()) }))
    }

    /// The CPU emulation of the kernels (tests of the backend on any machine; slow).
    pub fn emulated() -> Device {
        Device::of(Engine::Emulated)
    }

    /// The device of one process holding the whole lattice.
    fn of(engine: Engine) -> Device {
        Device { engine: Arc::new(engine), comm: Arc::new(Single::new(4)) }
    }

    /// The same device computing for this rank of `comm`: its reductions become sums over the
    /// ranks (collective).
    pub fn on_ranks(self, comm: Arc<dyn Comm>) -> Device {
        Device { engine: self.engine, comm }
    }

    /// The ranks it computes for.
    pub fn comm(&self) -> &Arc<dyn Comm> {
        &self.comm
    }

    /// Whether this is the CPU emulation.
    pub fn is_emulated(&self) -> bool {
        matches!(*self.engine, Engine::Emulated)
    }

    /// Whether `other` is the same device (buffers of one launch must be).
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.engine, &other.engine)
    }

    /// A buffer holding a copy of `host`.
    pub fn upload<T: DeviceScalar>(&self, host: &[T]) -> Result<DeviceBuffer<T>> {
        let storage = match &*self.engine {
            Engine::Gpu { gpu, .. } => Storage::Gpu(gpu.stream().clone_htod(host).map_err(driver("upload"))?),
            Engine::Emulated => Storage::Host(host.to_vec()),
        };
        Ok(DeviceBuffer { device: self.clone(), storage })
    }

    /// A buffer of `len` zeros.
    pub fn zeros<T: DeviceScalar>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let storage = match &*self.engine {
            Engine::Gpu { gpu, .. } => {
                Storage::Gpu(gpu.stream().alloc_zeros(len).map_err(driver("allocation"))?)
            }
            Engine::Emulated => Storage::Host(vec![T::default(); len]),
        };
        Ok(DeviceBuffer { device: self.clone(), storage })
    }

    /// Threads per block of this device's launches.
    pub fn block(&self) -> u32 {
        if self.is_emulated() { EMULATED_BLOCK } else { BLOCK }
    }

    /// (blocks, threads per block) of a grid-stride launch over `items` work items: one thread
    /// per item up to 4096 blocks on a GPU, a fixed small grid (2 x 32) on the emulation.
    pub fn shape(&self, items: usize) -> (u32, u32) {
        let block = self.block();
        if self.is_emulated() {
            return (EMULATED_GRID, block);
        }
        (items.div_ceil(block as usize).clamp(1, MAX_GRID) as u32, block)
    }

    /// Launches kernel `name` of `source` on `grid` blocks of `block` threads with `args`, one
    /// per parameter in order. Errors: buffers of another device, a kernel that does not load,
    /// a failed launch.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number and type, and the buffers must be as
    /// long as the kernel reads and writes for this launch.
    pub unsafe fn launch(
        &self,
        source: KernelSource,
        name: &str,
        (grid, block): (u32, u32),
        args: &mut [Arg<'_>],
    ) -> Result<()> {
        if let Some(k) = args.iter().position(|a| a.buffer_device().is_some_and(|d| !d.same(self))) {
            return Err(Error::Device(format!("kernel {name}: argument {k} is a buffer of another device")));
        }
        match &*self.engine {
            Engine::Gpu { gpu, modules } => {
                let module = {
                    let mut modules = modules.lock().unwrap_or_else(|e| e.into_inner());
                    match modules.get(source.name) {
                        Some(m) => m.clone(),
                        None => {
                            let m = gpu.load(source)?;
                            modules.insert(source.name, m.clone());
                            m
                        }
                    }
                };
                let function = module.load_function(name).map_err(|e| {
                    Error::Device(format!("kernels/{}.cu has no kernel {name}: {e}", source.name))
                })?;
                let stream = gpu.stream();
                let mut builder = stream.launch_builder(&function);
                for arg in args.iter_mut() {
                    match arg {
                        Arg::F64(b) => builder.arg(b.slice()),
                        Arg::F64Mut(b) => builder.arg(b.slice_mut()),
                        Arg::F32(b) => builder.arg(b.slice()),
                        Arg::F32Mut(b) => builder.arg(b.slice_mut()),
                        Arg::Null => builder.arg(&NULL),
                        Arg::Int(v) => builder.arg(&*v),
                        Arg::Long(v) => builder.arg(&*v),
                        Arg::Double(v) => builder.arg(&*v),
                        Arg::Float(v) => builder.arg(&*v),
                    };
                }
                let config =
                    LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
                // SAFETY: the caller's contract on the arguments.
                unsafe { builder.launch(config) }.map_err(driver(name))?;
                Ok(())
            }
            Engine::Emulated => {
                // every value as 8 bytes, read by the kernel in its parameter's type (little
                // endian: a 4-byte int or float is the low half)
                let mut values: Vec<u64> = args
                    .iter_mut()
                    .map(|arg| match arg {
                        Arg::F64(b) => b.host().as_ptr() as u64,
                        Arg::F64Mut(b) => b.host_mut().as_mut_ptr() as u64,
                        Arg::F32(b) => b.host().as_ptr() as u64,
                        Arg::F32Mut(b) => b.host_mut().as_mut_ptr() as u64,
                        Arg::Null => 0,
                        Arg::Int(v) => *v as u32 as u64,
                        Arg::Long(v) => *v as u64,
                        Arg::Double(v) => v.to_bits(),
                        Arg::Float(v) => u64::from(v.to_bits()),
                    })
                    .collect();
                let mut pointers: Vec<*mut c_void> =
                    values.iter_mut().map(|v| (v as *mut u64).cast()).collect();
                // SAFETY: the caller's contract on the arguments; the values outlive the launch.
                unsafe { emulation::launch(name, grid, block, &mut pointers) }
            }
        }
    }

    /// Launches a reduction kernel `name` of `source` over `items` work items with `args`
    /// followed by a buffer of `components` partial sums per block, which it writes, and
    /// returns each component's total: the partials added in block order, so the result is
    /// the same bits on every run (for this device and launch shape); on many ranks, the exact
    /// sum of the ranks' totals (collective), the same bits on every rank.
    ///
    /// # Safety
    /// As [`Device::launch`], with the partials as the kernel's last parameter.
    pub unsafe fn reduce(
        &self,
        source: KernelSource,
        name: &str,
        items: usize,
        args: Vec<Arg<'_>>,
        components: usize,
    ) -> Result<Vec<f64>> {
        let shape = self.shape(items);
        let mut partials = self.zeros::<f64>(shape.0 as usize * components)?;
        // the arguments, borrowed no longer than the partials
        let mut args: Vec<Arg<'_>> = args;
        args.push(Arg::F64Mut(&mut partials));
        // SAFETY: the caller's contract; the partials hold `components` sums per block.
        unsafe { self.launch(source, name, shape, &mut args)? };
        drop(args);
        let partials = partials.download()?;
        let totals: Vec<f64> = (0..components)
            .map(|c| partials.iter().skip(c).step_by(components).fold(0.0, |acc, v| acc + v))
            .collect();
        if self.comm.size() == 1 {
            return Ok(totals);
        }
        let mut sums: Vec<ExactSum> = totals
            .iter()
            .map(|&t| {
                let mut sum = ExactSum::default();
                sum.add(t);
                sum
            })
            .collect();
        self.comm.sum_exact(&mut sums);
        Ok(sums.iter().map(ExactSum::value).collect())
    }

    /// The GPU's data-sheet memory bandwidth in bytes per second ([`Gpu::peak_bandwidth`]);
    /// None on the emulation.
    pub fn peak_bandwidth(&self) -> Result<Option<f64>> {
        match &*self.engine {
            Engine::Gpu { gpu, .. } => gpu.peak_bandwidth().map(Some),
            Engine::Emulated => Ok(None),
        }
    }

    /// Waits for the work queued on the device.
    pub fn synchronize(&self) -> Result<()> {
        match &*self.engine {
            Engine::Gpu { gpu, .. } => gpu.stream().synchronize().map_err(driver("synchronize")),
            Engine::Emulated => Ok(()),
        }
    }
}

/// The value of a device call, or a panic with its error's message: for the trait methods
/// (solver vectors and operators, phase spaces) that cannot return errors, where a failing
/// device call means a lost GPU.
pub(crate) fn checked<R>(result: Result<R>) -> R {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// The error of a failed driver call `what`.
fn driver(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Device(format!("CUDA {what}: {e}"))
}

impl Arg<'_> {
    fn buffer_device(&self) -> Option<&Device> {
        match self {
            Arg::F64(b) => Some(&b.device),
            Arg::F64Mut(b) => Some(&b.device),
            Arg::F32(b) => Some(&b.device),
            Arg::F32Mut(b) => Some(&b.device),
            _ => None,
        }
    }
}

/// An array of `T` on a [`Device`].
#[derive(Debug)]
pub struct DeviceBuffer<T: DeviceScalar> {
    device: Device,
    storage: Storage<T>,
}

#[derive(Debug)]
enum Storage<T: DeviceRepr> {
    Gpu(CudaSlice<T>),
    Host(Vec<T>),
}

impl<T: DeviceScalar> DeviceBuffer<T> {
    /// The device it lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Gpu(s) => s.len(),
            Storage::Host(v) => v.len(),
        }
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy on the host (after the work queued before).
    pub fn download(&self) -> Result<Vec<T>> {
        match (&self.storage, &*self.device.engine) {
            (Storage::Gpu(s), Engine::Gpu { gpu, .. }) => {
                gpu.stream().clone_dtoh(s).map_err(driver("download"))
            }
            (Storage::Host(v), _) => Ok(v.clone()),
            (Storage::Gpu(_), Engine::Emulated) => unreachable!("GPU buffers belong to a GPU"),
        }
    }

    /// A second buffer with the same contents, on the same device.
    pub fn try_clone(&self) -> Result<Self> {
        let storage = match (&self.storage, &*self.device.engine) {
            (Storage::Gpu(s), Engine::Gpu { gpu, .. }) => {
                Storage::Gpu(gpu.stream().clone_dtod(s).map_err(driver("copy"))?)
            }
            (Storage::Host(v), _) => Storage::Host(v.clone()),
            (Storage::Gpu(_), Engine::Emulated) => unreachable!("GPU buffers belong to a GPU"),
        };
        Ok(DeviceBuffer { device: self.device.clone(), storage })
    }

    /// Overwrites the contents with those of `other` (same device and length).
    pub fn copy_from(&mut self, other: &Self) -> Result<()> {
        if !self.device.same(&other.device) || self.len() != other.len() {
            return Err(Error::Device(format!(
                "copy of {} elements into a buffer of {} on {} device",
                other.len(),
                self.len(),
                if self.device.same(&other.device) { "the same" } else { "another" }
            )));
        }
        match (&mut self.storage, &other.storage, &*self.device.engine) {
            (Storage::Gpu(to), Storage::Gpu(from), Engine::Gpu { gpu, .. }) => {
                gpu.stream().memcpy_dtod(from, to).map_err(driver("copy"))
            }
            (Storage::Host(to), Storage::Host(from), _) => {
                to.copy_from_slice(from);
                Ok(())
            }
            _ => unreachable!("buffers of one device have one kind of storage"),
        }
    }

    fn slice(&self) -> &CudaSlice<T> {
        match &self.storage {
            Storage::Gpu(s) => s,
            Storage::Host(_) => unreachable!("launch checks the device first"),
        }
    }

    fn slice_mut(&mut self) -> &mut CudaSlice<T> {
        match &mut self.storage {
            Storage::Gpu(s) => s,
            Storage::Host(_) => unreachable!("launch checks the device first"),
        }
    }

    fn host(&self) -> &[T] {
        match &self.storage {
            Storage::Host(v) => v,
            Storage::Gpu(_) => unreachable!("launch checks the device first"),
        }
    }

    fn host_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::Host(v) => v,
            Storage::Gpu(_) => unreachable!("launch checks the device first"),
        }
    }
}

/// The real types of the kernels' `_f64` and `_f32` entry points.
pub trait DeviceReal: DeviceScalar + PartialEq + std::fmt::Debug {
    /// The entry-point suffix: "f64" or "f32".
    const SUFFIX: &'static str;
    /// The nearest value of this type.
    fn from_f64(v: f64) -> Self;
    /// The value in f64 (exact).
    fn to_f64(self) -> f64;
    /// The buffer as a `const T*` argument.
    fn arg(buffer: &DeviceBuffer<Self>) -> Arg<'_>;
    /// The buffer as a `T*` argument.
    fn arg_mut(buffer: &mut DeviceBuffer<Self>) -> Arg<'_>;
    /// A scalar argument of this type.
    fn scalar(v: f64) -> Arg<'static>;
    /// A copy of an f64 buffer in this type (rounded to nearest for f32), on its device.
    fn from_f64_buffer(buffer: &DeviceBuffer<f64>) -> Result<DeviceBuffer<Self>>;
    /// Appends its little-endian bytes to `out` (messages between ranks).
    fn push_le_bytes(self, out: &mut Vec<u8>);
    /// The value of its little-endian bytes (`size_of::<Self>()` of them).
    fn from_le_slice(bytes: &[u8]) -> Self;
}

impl DeviceReal for f64 {
    const SUFFIX: &'static str = "f64";
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn arg(buffer: &DeviceBuffer<f64>) -> Arg<'_> {
        Arg::F64(buffer)
    }
    fn arg_mut(buffer: &mut DeviceBuffer<f64>) -> Arg<'_> {
        Arg::F64Mut(buffer)
    }
    fn scalar(v: f64) -> Arg<'static> {
        Arg::Double(v)
    }
    fn from_f64_buffer(buffer: &DeviceBuffer<f64>) -> Result<DeviceBuffer<f64>> {
        buffer.try_clone()
    }
    fn push_le_bytes(self, out: &mut Vec<u8>) {
        out.extend(self.to_le_bytes());
    }
    fn from_le_slice(bytes: &[u8]) -> Self {
        f64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    }
}

impl DeviceReal for f32 {
    const SUFFIX: &'static str = "f32";
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn arg(buffer: &DeviceBuffer<f32>) -> Arg<'_> {
        Arg::F32(buffer)
    }
    fn arg_mut(buffer: &mut DeviceBuffer<f32>) -> Arg<'_> {
        Arg::F32Mut(buffer)
    }
    fn scalar(v: f64) -> Arg<'static> {
        Arg::Float(v as f32)
    }
    fn from_f64_buffer(buffer: &DeviceBuffer<f64>) -> Result<DeviceBuffer<f32>> {
        lowered(buffer, 1.0)
    }
    fn push_le_bytes(self, out: &mut Vec<u8>) {
        out.extend(self.to_le_bytes());
    }
    fn from_le_slice(bytes: &[u8]) -> Self {
        f32::from_le_bytes(bytes.try_into().expect("4 bytes"))
    }
}

/// s times `buffer`, rounded to f32 on its device (kernel `lower_scaled_f64`): the f32 copies of
/// links and the low-precision vectors of mixed-precision CG.
pub(super) fn lowered(buffer: &DeviceBuffer<f64>, s: f64) -> Result<DeviceBuffer<f32>> {
    let device = buffer.device();
    let n = buffer.len();
    let mut low = device.zeros::<f32>(n)?;
    let mut args = vec![Arg::Long(n as i64), Arg::Double(s), Arg::F64(buffer), Arg::F32Mut(&mut low)];
    // SAFETY: the parameters of lower_scaled_f64; both buffers hold n reals.
    unsafe { device.launch(super::BLAS, "lower_scaled_f64", device.shape(n), &mut args)? };
    drop(args);
    Ok(low)
}
