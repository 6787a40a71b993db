//! Backends own the storage of fields and the hot kernels. The CPU backend ([`cpu`]) packs
//! LANES sites per element for SIMD and threads with rayon; everything above the backends (the
//! operators, monomials, integrators) reaches lanes only through it.

pub mod cpu;
