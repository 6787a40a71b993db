//! Backends own the storage of fields and the hot kernels. The CPU backend ([`cpu`]) packs
//! LANES sites per element for SIMD and threads with rayon; everything above the backends (the
//! operators, monomials, integrators) reaches lanes only through it. The CUDA backend (`cuda`,
//! cargo feature `cuda`) compiles its kernels at run time with NVRTC.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
