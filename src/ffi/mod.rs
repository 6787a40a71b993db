//! The host-code interface: a [`Context`] per lattice and parameter set, and the two bridges
//! around it, the plain C ABI ([`c_api`], `include/flowhmc/flowhmc.h`) and the C++ API
//! (`include/flowhmc/flowhmc.hpp`). Errors cross as status codes and messages (C) or
//! exceptions (C++); panics are caught at the boundary and never cross it.

pub mod c_api;
pub mod context;
pub mod cxx_bridge;

pub use context::{Context, HostSlice, HostSliceMut, ParameterSet, RngState, UpdateReport};

use crate::comm::Comm;
use crate::error::{Error, Result};
use std::sync::Arc;

/// A host's MPI communicator (its Fortran handle, `MPI_Comm_c2f`) as the process grid `grid`
/// with this rank at `coords` ([`crate::comm::mpi::MpiComm::from_host`]); an error when the
/// library was built without the cargo feature `mpi`.
///
/// # Safety
/// `fortran_comm` is the Fortran handle of a live intra-communicator.
#[cfg(feature = "mpi")]
pub unsafe fn host_comm(fortran_comm: i32, grid: &[usize], coords: &[usize]) -> Result<Arc<dyn Comm>> {
    // SAFETY: the caller's contract
    Ok(Arc::new(unsafe { crate::comm::mpi::MpiComm::from_host(fortran_comm, grid, coords) }?))
}

/// A host's MPI communicator: refused, the library was built without the cargo feature `mpi`.
///
/// # Safety
/// None needed; unsafe to match the MPI build.
#[cfg(not(feature = "mpi"))]
pub unsafe fn host_comm(_fortran_comm: i32, _grid: &[usize], _coords: &[usize]) -> Result<Arc<dyn Comm>> {
    Err(Error::Host("this flowhmc library was built without MPI: build it with the cargo feature mpi".into()))
}

/// The message of an error without the kind its `Display` puts first ("invalid run card: ",
/// "host input: ", ...): what a bridge hands on when its status code already says the kind.
pub fn without_kind(e: &Error) -> String {
    match e {
        Error::Card(m)
        | Error::Config(m)
        | Error::Numerical(m)
        | Error::Model(m)
        | Error::Host(m)
        | Error::Device(m) => m.clone(),
        Error::Io { .. } => e.to_string(),
    }
}

/// A message on one line: its non-empty lines joined by "; ", without the source excerpts of
/// parser messages (lines such as `3 | beta =` and the `|  ^` that points into them).
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|')
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_message_becomes_one_line_without_its_source_excerpt() {
        let parser = "parameters: TOML parse error at line 3, column 8\n  |\n3 | beta = \n  |        ^\n\
                      string values must be quoted\n";
        assert_eq!(
            one_line(parser),
            "parameters: TOML parse error at line 3, column 8; string values must be quoted"
        );
        assert_eq!(one_line("one line"), "one line");
        assert_eq!(without_kind(&Error::Card("gauge.beta = -1".into())), "gauge.beta = -1");
    }
}
