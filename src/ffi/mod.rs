//! The host-code interface: a [`Context`] per lattice and parameter set, and the two bridges
//! around it, the plain C ABI ([`c_api`], `include/flowhmc/flowhmc.h`) and the C++ API
//! (`include/flowhmc/flowhmc.hpp`). Errors cross as status codes and messages (C) or
//! exceptions (C++); panics are caught at the boundary and never cross it.

pub mod c_api;
pub mod context;
pub mod cxx_bridge;

pub use context::{Context, HostSlice, HostSliceMut, ParameterSet, RngState, UpdateReport};
