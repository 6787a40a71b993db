//! Wilson-Dirac operators on the checkerboarded packed layout: gamma bases, the hopping term,
//! the full operator M = 1 - kappa H and the even/odd Schur operator.

pub mod dense;
pub mod gamma;
pub mod solve;
pub mod wilson;

pub use solve::{DiracOperator, Method, Operator, solve};
pub use wilson::{Boundary, WilsonOperator};
