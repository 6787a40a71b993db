//! Lattice Dirac operators on the checkerboarded packed layout: the fermion-operator interface
//! (`operator.rs`), gamma bases, the Wilson operator M = 1 - kappa H with its even/odd Schur
//! operator, the clover-improved operator, solves, and dense determinants for small lattices.

pub mod clover;
pub mod dense;
pub mod gamma;
pub mod operator;
pub mod solve;
pub mod wilson;

pub use clover::{Clover, CloverOperator, CloverTerm};
pub use operator::{Discretization, FermionMatrix, FermionOperator};
pub use solve::{DiracOperator, Method, Operator, solve};
pub use wilson::{Boundary, Wilson, WilsonOperator};
