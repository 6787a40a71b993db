//! flowhmc: Hybrid Monte Carlo and flow-augmented Markov chains for lattice field theory.
//!
//! Layers follow DESIGN.md, each importing only the ones above it in this list:
//! [`geometry`] -> [`group`] -> [`field`] -> [`action`] -> [`integrator`] -> [`update`] ->
//! [`chain`]; [`observables`], [`analysis`] and [`io`] serve the chain.

pub mod error;
pub mod geometry;
pub mod group;
pub mod rng;

pub use error::{Error, Result};
