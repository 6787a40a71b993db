//! The kernels of `kernels/` run on the CPU, for the tests of their arithmetic and indexing
//! on machines without a GPU: the same sources compiled as host C++ (`host/emulation.cpp`, with
//! `host/cuda_host.hpp` standing in for the CUDA built-ins). A launch runs the blocks of its
//! grid one after the other and the threads of a block as host threads, with `__syncthreads()`
//! a barrier among them; results are what the kernel computes, up to the device's own
//! floating-point contractions (NVRTC fuses a * b + c where the source does not say `fma`).

use crate::error::{Error, Result};
use std::ffi::{CString, c_char, c_void};

unsafe extern "C" {
    fn flowhmc_emulate_launch(name: *const c_char, grid: u32, block: u32, args: *mut *mut c_void) -> i32;
}

/// Runs kernel `name` on `grid` blocks of `block` threads (x only), its arguments given as
/// the driver's `cuLaunchKernel` takes them: `args[k]` points to the value of parameter k. An
/// error for a kernel the emulation does not know. Launches from several threads run one after
/// the other.
///
/// # Safety
/// `args` must hold one pointer per kernel parameter, each to a value of that parameter's type,
/// and the device pointers among those values must point to host arrays as long as the kernel
/// reads and writes for this launch geometry.
pub unsafe fn launch(name: &str, grid: u32, block: u32, args: &mut [*mut c_void]) -> Result<()> {
    let c_name = CString::new(name).map_err(|_| Error::Device(format!("kernel name {name:?} has a NUL")))?;
    // SAFETY: the caller's contract on args; the name is a valid C string.
    match unsafe { flowhmc_emulate_launch(c_name.as_ptr(), grid, block, args.as_mut_ptr()) } {
        0 => Ok(()),
        1 => Err(Error::Device(format!("the CPU emulation has no kernel {name}"))),
        _ => Err(Error::Device(format!("kernel {name} failed in the CPU emulation"))),
    }
}
