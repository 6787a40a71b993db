//! The CPU backend: fields stored in a packed layout of LANES sites per element (one per SIMD
//! lane, see [`crate::geometry`]) and kernels computing on all lanes at once, threaded by rayon.
//!
//! - `packed.rs`: the real types and lane vectors, packed matrices (U(1), SU(3)) and their
//!   products; `color.rs`: packed colour vectors.
//! - `group.rs`: [`PackedGroup`], the packed layout of a group's elements and algebra;
//!   `u1.rs`, `su3.rs`: its implementations (with SU(3)'s lane-wise exponential).
//! - `halo.rs`: halo exchange of packed fields between ranks.

pub mod color;
pub mod group;
pub mod halo;
pub mod packed;
mod su3;
mod u1;

pub use group::{PackedGroup, alg_lane, alg_lanes_axpy, set_alg_lane};
