//! Statistical analysis of Monte Carlo time series and plots of them.

pub mod acceptance;
pub mod drift;
pub mod gamma;
pub mod plot;

pub use gamma::{GammaResult, gamma_method};
