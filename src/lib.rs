//! flowhmc: Hybrid Monte Carlo and flow-augmented Markov chains for lattice field theory.
//!
//! The layers, each importing only the ones above it in this list:
//! [`geometry`] -> [`group`] -> [`field`] and [`phase_space`] -> [`action`] -> [`integrator`] -> [`update`] ->
//! [`chain`]; [`observables`], [`analysis`] and [`io`] serve the chain. [`host`] converts host
//! codes' field layouts and [`ffi`] is the C and C++ interface over it.

#![warn(missing_docs)]

pub mod action;
pub mod analysis;
pub mod backend;
pub mod bench;
pub mod chain;
pub mod checkerboard;
pub mod comm;
pub mod dirac;
pub mod error;
pub mod exact_sum;
pub mod ffi;
pub mod field;
pub mod flow;
pub mod geometry;
pub mod group;
pub mod host;
pub mod integrator;
pub mod io;
pub mod loops;
pub mod memory;
pub mod observables;
pub mod parallel;
pub mod phase_space;
pub mod rational;
pub mod reference;
pub mod rng;
pub mod scalar;
pub mod solver;
pub mod spinor;
pub mod update;

pub use error::{Error, Result};

/// Version and source revision of this build, e.g. "0.1.0 (a1b2c3d4e5f6)".
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FLOWHMC_REVISION"), ")");
