//! The CUDA backend (cargo feature `cuda`), on cudarc: kernels are CUDA C sources in this
//! module's `kernels/` folder, compiled at run time by NVRTC for the device found, so that
//! building flowhmc needs no CUDA toolkit.
//!
//! What exists so far: finding the driver and a GPU ([`Gpu::open`]), compiling the kernel
//! sources for an architecture ([`compile`], cached per process) and loading them on the GPU
//! ([`Gpu::load`]); the same kernels run on the CPU ([`emulation`]) for tests without a GPU;
//! a [`device::Device`] that is either, with its buffers and launches, so that everything
//! above it runs unchanged on both; the site-major storage of the kernels ([`layout`]);
//! device-resident complex vectors with the BLAS-1 kernels of `kernels/blas.cu`
//! ([`spinor::DeviceSpinor`], the vectors of the Krylov solvers); and the Wilson operator M on
//! a whole lattice with its normal operator ([`wilson`], `kernels/wilson.cu`, not yet tuned),
//! with its even/odd Schur operator and force, so that CG, mixed-precision CG and multi-shift CG
//! run on the device; the gauge field and momenta with the molecular-dynamics kernels
//! ([`gauge`]), a phase space of the library's HMC, so that with the device monomials of
//! `action::device` a whole trajectory stays on the device (chosen by `run.device` in cards
//! and host parameters); the Dirac operators hold their links in 18 or 12 reals
//! ([`wilson::LinkStorage`]). On a process grid every rank runs its block on its own device
//! ([`block`], [`gpu_of_rank`]), exchanging faces through the host. Half precision and kernels
//! tuned on a GPU come next (issue 19; README, "On a GPU").
//!
//! Libraries: cudarc opens libcuda (the driver) and libnvrtc (the compiler) when first used and
//! panics when one is missing. Every entry point here first checks with a plain `dlopen`
//! (cudarc's `is_culib_present`) and returns [`Error::Device`] instead: "no CUDA driver found",
//! "NVRTC not found". libnvrtc is searched for as `libnvrtc.so.12` and the like on the
//! loader's path (`LD_LIBRARY_PATH`), next to its `libnvrtc-builtins`; the PyPI wheel
//! nvidia-cuda-nvrtc-cu12 has both in `nvidia/cuda_nvrtc/lib`.

pub mod block;
pub mod device;
pub mod emulation;
pub mod gauge;
pub mod layout;
pub mod spinor;
pub mod wilson;

use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaModule, CudaStream};
use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A kernel source of `kernels/`: its name and CUDA C text (with the shared `common.cuh` in
/// front: NVRTC compiles every source alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelSource {
    /// Name (the file name without `.cu`).
    pub name: &'static str,
    /// CUDA C source.
    pub text: &'static str,
}

/// BLAS-1 kernels on real and complex arrays: axpy, complex axpy and xpay, scaling, the
/// f64/f32 conversions of mixed precision, and dot products and norms as per-block partial sums
/// in a fixed order (deterministic reductions); entry points and launch contract in the file's
/// header.
pub const BLAS: KernelSource = KernelSource {
    name: "blas",
    text: concat!(include_str!("kernels/common.cuh"), include_str!("kernels/blas.cu")),
};

/// The Wilson-Dirac operator on a whole 4D SU(3) lattice in site-major storage, one thread
/// per output site: the hops of full or half fields (`wilson_hop_{f64,f32}`, M and the Schur
/// operator), gamma5 (`gamma5_{f64,f32}`), the force of the hopping term
/// (`hopping_derivative_f64`) and the 12-real link copy (`two_rows_{f64,f32}`); storage,
/// conventions and launch contract in the file's header.
pub const WILSON: KernelSource = KernelSource {
    name: "wilson",
    text: concat!(include_str!("kernels/common.cuh"), include_str!("kernels/wilson.cu")),
};

/// SU(3) molecular dynamics on site-major links and momenta, in f64: the gauge force of the
/// Wilson, Symanzik and Iwasaki actions (`gauge_force_f64`), the link update exp(eps P) U
/// (`link_update_f64`), the projection back to SU(3) (`project_f64`) and the plaquette and
/// rectangle sums (`loop_partial_f64`); conventions in the file's header.
pub const GAUGE: KernelSource = KernelSource {
    name: "gauge",
    text: concat!(include_str!("kernels/common.cuh"), include_str!("kernels/gauge.cu")),
};

/// Every kernel source, for the compile tests.
pub const KERNELS: &[KernelSource] = &[BLAS, WILSON, GAUGE];

/// Threads per block that the kernels are written for (`FLOWHMC_BLOCK`).
pub const BLOCK: u32 = 256;

/// Whether the driver library (libcuda) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: opens and closes the library by dlopen, calling nothing in it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether the run-time compiler (libnvrtc) can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: as in `driver_present`.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// `source` compiled to PTX for architecture `arch` ("sm_80", "sm_90", ...), once per process
/// and (source, arch); an error naming the source with NVRTC's log when it does not compile,
/// or when NVRTC cannot be loaded.
pub fn compile(source: KernelSource, arch: &'static str) -> Result<Ptx> {
    static CACHE: OnceLock<Mutex<HashMap<(KernelSource, &'static str), Ptx>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(ptx) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(source, arch)) {
        return Ok(ptx.clone());
    }
    if !nvrtc_present() {
        return Err(Error::Device(
            "NVRTC not found: the CUDA backend compiles its kernels at run time with libnvrtc (put the \
             folder with libnvrtc.so.12 on LD_LIBRARY_PATH, e.g. the PyPI wheel nvidia-cuda-nvrtc-cu12's \
             nvidia/cuda_nvrtc/lib)"
                .into(),
        ));
    }
    let options =
        CompileOptions { arch: Some(arch), name: Some(format!("{}.cu", source.name)), ..Default::default() };
    let ptx = compile_ptx_with_opts(source.text, options)
        .map_err(|e| Error::Device(format!("kernels/{}.cu does not compile for {arch}: {e}", source.name)))?;
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert((source, arch), ptx.clone());
    Ok(ptx)
}

/// The GPU a rank uses when every rank of a node takes one: the rank's number on its node
/// (from the launcher: Open MPI's OMPI_COMM_WORLD_LOCAL_RANK, MVAPICH's
/// MV2_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID or Slurm's SLURM_LOCALID; `rank` where
/// none is set) modulo the node's GPU count. "no CUDA driver found" without a driver.
pub fn gpu_of_rank(rank: usize) -> Result<usize> {
    if !driver_present() {
        // the error of Gpu::open
        return Gpu::open(0).map(|_| 0);
    }
    let count = CudaContext::device_count()
        .map_err(|e| Error::Device(format!("counting the CUDA devices: {e}")))?
        .max(0) as usize;
    if count == 0 {
        return Err(Error::Device("no CUDA device found (the driver sees none)".into()));
    }
    let local =
        ["OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"]
            .iter()
            .find_map(|name| std::env::var(name).ok()?.parse::<usize>().ok())
            .unwrap_or(rank);
    Ok(local % count)
}

/// One GPU: its context, the stream the backend's work is queued on, and the architecture its
/// kernels are compiled for.
#[derive(Debug)]
pub struct Gpu {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
}

impl Gpu {
    /// GPU `ordinal` (0 for the first): "no CUDA driver found" when libcuda cannot be loaded
    /// (a machine without NVIDIA's driver), "no CUDA device ..." when the driver finds no such
    /// GPU.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        if !driver_present() {
            return Err(Error::Device(
                "no CUDA driver found (libcuda.so could not be loaded): the CUDA backend needs an NVIDIA \
                 GPU and its driver; use device = \"cpu\""
                    .into(),
            ));
        }
        let context = CudaContext::new(ordinal)
            .map_err(|e| Error::Device(format!("no CUDA device {ordinal} could be opened: {e}")))?;
        let (major, minor) = context
            .compute_capability()
            .map_err(|e| Error::Device(format!("CUDA device {ordinal}: compute capability: {e}")))?;
        // the compile options want a static name; a process opens a handful of GPUs at most
        let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
        let stream = context.default_stream();
        Ok(Gpu { context, stream, arch })
    }

    /// The architecture the kernels are compiled for ("sm_90" on an H100 or H200).
    pub fn arch(&self) -> &'static str {
        self.arch
    }

    /// The memory bandwidth the GPU's data sheet implies, in bytes per second: twice the
    /// memory clock (double data rate) times the bus width, from the driver's attributes.
    pub fn peak_bandwidth(&self) -> Result<f64> {
        use cudarc::driver::sys::CUdevice_attribute::{
            CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
        };
        let attribute =
            |a| self.context.attribute(a).map_err(|e| Error::Device(format!("CUDA device attribute: {e}")));
        let (clock_khz, bus_bits) = (
            attribute(CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)?,
            attribute(CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)?,
        );
        Ok(2.0 * f64::from(clock_khz) * 1e3 * f64::from(bus_bits) / 8.0)
    }

    /// The stream the backend's work is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// `source` compiled for this GPU ([`compile`]) and loaded.
    pub fn load(&self, source: KernelSource) -> Result<Arc<CudaModule>> {
        let ptx = compile(source, self.arch)?;
        self.context.load_module(ptx).map_err(|e| {
            Error::Device(format!("kernels/{}.cu: loading it on {}: {e}", source.name, self.arch))
        })
    }
}
