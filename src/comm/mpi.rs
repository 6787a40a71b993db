//! [`Comm`] on MPI (feature `mpi`, the `mpi` crate): the world communicator of a program
//! started by `mpirun`, arranged as a process grid.
//!
//! MPI is initialized with MPI_THREAD_SERIALIZED: the chain runs inside a rayon pool, so its
//! calls come from a worker thread, never from two at once; a mutex around the communicator
//! enforces that. Exact sums reduce the normalized limbs of [`ExactSum`]s as 64-bit integers
//! (each limb below 2^32, so the sum over up to 2^31 ranks cannot overflow) and the special
//! (infinite or NaN) parts as doubles, whose sum does not depend on the order.
//!
//! Face exchanges are nonblocking: [`Comm::start_exchange`] posts MPI_Isend and MPI_Irecv (tag
//! 2 mu + forward) on buffers that the pending exchange owns, and [`PendingExchange::finish`]
//! waits for both, so the caller computes while the messages travel.

use super::{Comm, PendingExchange, coords_of};
use crate::error::{Error, Result};
use crate::exact_sum::{ExactSum, LIMBS};
use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::request::{Request, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::{Arc, Mutex};

/// The MPI handles, used by one thread at a time (see the module docs).
struct Handles {
    /// Finalizes MPI when dropped: MPI initialized here (None for a host's communicator).
    _universe: Option<Universe>,
    /// The communicator (the world, or a duplicate of a host's, freed when dropped).
    world: SimpleCommunicator,
}

// SAFETY: MPI runs with MPI_THREAD_SERIALIZED, which allows calls from any thread as long as
// no two overlap; every use of the handles goes through the mutex of `MpiComm`.
unsafe impl Send for Handles {}

/// The MPI world, or a host's communicator, as a process grid (see the module docs).
pub struct MpiComm {
    handles: Arc<Mutex<Handles>>,
    /// The MPI rank of each rank of the grid (the identity but for a host's communicator,
    /// whose own numbering may differ).
    mpi_ranks: Arc<Vec<i32>>,
    rank: usize,
    size: usize,
    grid: Vec<usize>,
    coords: Vec<usize>,
}

impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiComm").field("rank", &self.rank).field("grid", &self.grid).finish()
    }
}

impl MpiComm {
    /// Initializes MPI (a second call in one process is an error, as is a library that cannot
    /// serialize calls from threads) and returns its world as a one-direction grid of all
    /// ranks; [`Comm::arrange`] gives it the lattice's process grid.
    pub fn world() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Config("MPI was initialized already".into()))?;
        if threading < Threading::Serialized {
            return Err(Error::Config(format!(
                "this MPI library offers {threading:?} threading; flowhmc needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(MpiComm {
            handles: Arc::new(Mutex::new(Handles { _universe: Some(universe), world })),
            mpi_ranks: Arc::new((0..size as i32).collect()),
            rank,
            size,
            grid: vec![size],
            coords: vec![rank],
        })
    }

    /// A host code's communicator as the process grid `grid`, this rank at `coords` of it
    /// (collective over the communicator). The communicator is given as its Fortran handle
    /// (`MPI_Comm_c2f` in C) and duplicated, so flowhmc's messages never meet the host's; the
    /// duplicate is freed when the last user of this comm is dropped, which must happen before
    /// the host finalizes MPI. Ranks are numbered by their coordinates (first direction
    /// fastest), whatever the host's own numbering. Errors, the same on every rank: MPI not
    /// initialized, threading below MPI_THREAD_SERIALIZED (flowhmc calls MPI from its worker
    /// threads, one at a time), a grid of another size than the communicator, grids that
    /// differ between ranks, coordinates outside the grid or claimed twice.
    ///
    /// # Safety
    /// `fortran_comm` is the Fortran handle of a live intra-communicator.
    pub unsafe fn from_host(fortran_comm: i32, grid: &[usize], coords: &[usize]) -> Result<Self> {
        if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
            return Err(Error::Host("MPI is not initialized: call MPI_Init_thread first".into()));
        }
        let threading = mpi::environment::threading_support();
        // SAFETY: the caller's contract; MPI_Comm_dup makes a user communicator of our own
        let world = unsafe {
            let host = mpi::ffi::RSMPI_Comm_f2c(fortran_comm);
            let mut own = std::mem::MaybeUninit::uninit();
            mpi::ffi::MPI_Comm_dup(host, own.as_mut_ptr());
            SimpleCommunicator::from_raw(own.assume_init())
        };
        let (mpi_rank, size) = (world.rank(), world.size() as usize);
        // every rank's grid and coordinates, so that every rank finds the same fault
        let d = grid.len();
        // coordinates of another length than the grid are judged below, with the others
        let padded = (0..d).map(|mu| coords.get(mu).map_or(-1, |&c| c as i64));
        let mine: Vec<i64> =
            grid.iter().map(|&p| p as i64).chain(padded).chain([coords.len() as i64]).collect();
        let mut all = vec![0i64; mine.len() * size];
        world.all_gather_into(&mine[..], &mut all[..]);
        // the faults are judged on the gathered entries alone, so every rank finds the same
        let entries: Vec<&[i64]> = all.chunks_exact(2 * d + 1).collect();
        let first_grid = &entries[0][..d];
        let fault = |m: String| Err(Error::Host(format!("process grid {first_grid:?} of MPI rank 0: {m}")));
        if threading < Threading::Serialized {
            return fault(format!(
                "MPI offers {threading:?} threading; flowhmc needs MPI_THREAD_SERIALIZED (MPI_Init_thread)"
            ));
        }
        if let Some(r) = entries.iter().position(|e| &e[..d] != first_grid) {
            return fault(format!("MPI rank {r} passes the grid {:?}", &entries[r][..d]));
        }
        let needed: i64 = first_grid.iter().product();
        if needed != size as i64 || first_grid.contains(&0) {
            return fault(format!("needs {needed} ranks, the communicator has {size}"));
        }
        let mut mpi_ranks = vec![-1i32; size];
        for (r, entry) in entries.iter().enumerate() {
            let (their_coords, n) = (&entry[d..2 * d], entry[2 * d]);
            if n != d as i64 || their_coords.iter().zip(first_grid).any(|(&c, &p)| c < 0 || c >= p) {
                return fault(format!(
                    "MPI rank {r} passes the coordinates {their_coords:?}, not a point of it"
                ));
            }
            let c: Vec<usize> = their_coords.iter().map(|&c| c as usize).collect();
            let at = super::rank_of(grid, &c);
            if mpi_ranks[at] >= 0 {
                return fault(format!("MPI ranks {} and {r} both pass the coordinates {c:?}", mpi_ranks[at]));
            }
            mpi_ranks[at] = r as i32;
        }
        let rank = super::rank_of(grid, coords);
        debug_assert_eq!(mpi_ranks[rank], mpi_rank);
        Ok(MpiComm {
            handles: Arc::new(Mutex::new(Handles { _universe: None, world })),
            mpi_ranks: Arc::new(mpi_ranks),
            rank,
            size,
            grid: grid.to_vec(),
            coords: coords.to_vec(),
        })
    }

    /// The MPI process of rank `rank` of the grid.
    fn process<'a>(&self, world: &'a SimpleCommunicator, rank: usize) -> mpi::topology::Process<'a> {
        world.process_at_rank(self.mpi_ranks[rank])
    }

    /// Runs `f` on the world communicator, alone.
    fn with<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> T {
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        f(&handles.world)
    }

    /// Rank `root`'s bytes on every rank (its length first, then the bytes).
    fn broadcast_from(&self, root: usize, mut data: Vec<u8>) -> Vec<u8> {
        self.with(|world| {
            let process = self.process(world, root);
            let mut len = data.len() as u64;
            process.broadcast_into(&mut len);
            data.resize(len as usize, 0);
            process.broadcast_into(&mut data[..]);
        });
        data
    }
}

/// A face exchange in flight: its two requests and the buffers they use.
struct InFlight {
    handles: Arc<Mutex<Handles>>,
    sent: Request<'static, [u8], StaticScope>,
    received: Request<'static, [u8], StaticScope>,
    send_ptr: *mut [u8],
    receive_ptr: *mut [u8],
}

// SAFETY: the requests and buffers belong to this exchange alone; MPI calls on them go through
// the communicator's mutex (MPI_THREAD_SERIALIZED).
unsafe impl Send for InFlight {}

impl PendingExchange for InFlight {
    fn finish(self: Box<Self>) -> Vec<u8> {
        let InFlight { handles, sent, received, send_ptr, receive_ptr } = *self;
        {
            let _serialized = handles.lock().unwrap_or_else(|e| e.into_inner());
            sent.wait();
            received.wait();
        }
        // SAFETY: both requests are complete, so nothing refers to the buffers any more; they
        // were leaked from boxes in `start_exchange`.
        unsafe {
            drop(Box::from_raw(send_ptr));
            Box::from_raw(receive_ptr).into_vec()
        }
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn grid(&self) -> &[usize] {
        &self.grid
    }

    fn coords(&self) -> &[usize] {
        &self.coords
    }

    fn sum_exact(&self, sums: &mut [ExactSum]) {
        let limbs: Vec<i64> = sums.iter().flat_map(|s| s.limbs()).collect();
        let special: Vec<f64> = sums.iter().map(|s| s.special()).collect();
        let (mut limbs_sum, mut special_sum) = (vec![0i64; limbs.len()], vec![0.0f64; special.len()]);
        self.with(|world| {
            world.all_reduce_into(&limbs[..], &mut limbs_sum[..], SystemOperation::sum());
            world.all_reduce_into(&special[..], &mut special_sum[..], SystemOperation::sum());
        });
        for (k, s) in sums.iter_mut().enumerate() {
            let limbs: [i64; LIMBS] = limbs_sum[k * LIMBS..(k + 1) * LIMBS].try_into().expect("LIMBS limbs");
            *s = ExactSum::from_limbs(limbs, special_sum[k]);
        }
    }

    fn max(&self, x: f64) -> f64 {
        let (mine, mut out) = ([x, f64::from(u8::from(x.is_nan()))], [0.0; 2]);
        self.with(|world| world.all_reduce_into(&mine[..], &mut out[..], SystemOperation::max()));
        if out[1] > 0.0 { f64::NAN } else { out[0] }
    }

    fn broadcast(&self, data: Vec<u8>) -> Vec<u8> {
        self.broadcast_from(0, data)
    }

    fn agree(&self, result: Result<()>) -> Result<()> {
        let mine = if result.is_err() { self.rank as u64 } else { self.size as u64 };
        let mut first = 0u64;
        self.with(|world| world.all_reduce_into(&mine, &mut first, SystemOperation::min()));
        if first == self.size as u64 {
            return Ok(());
        }
        let message = match &result {
            Err(e) if first == self.rank as u64 => e.encode(),
            _ => Vec::new(),
        };
        Err(Error::decode(&self.broadcast_from(first as usize, message)))
    }

    fn start_exchange(
        &self,
        mu: usize,
        forward: bool,
        send: Vec<u8>,
        receive_len: usize,
    ) -> Box<dyn PendingExchange> {
        let (to, from) = (self.neighbour(mu, forward), self.neighbour(mu, !forward));
        let tag = (2 * mu + usize::from(forward)) as i32;
        // the buffers live until `finish` has waited for both requests, which reclaims them
        let send: &'static mut [u8] = Box::leak(send.into_boxed_slice());
        let receive: &'static mut [u8] = Box::leak(vec![0u8; receive_len].into_boxed_slice());
        let (send_ptr, receive_ptr) = (send as *mut [u8], receive as *mut [u8]);
        let (sent, received) = self.with(|world| {
            (
                self.process(world, to).immediate_send_with_tag(StaticScope, &*send, tag),
                self.process(world, from).immediate_receive_into_with_tag(StaticScope, receive, tag),
            )
        });
        Box::new(InFlight { handles: self.handles.clone(), sent, received, send_ptr, receive_ptr })
    }

    fn gather(&self, data: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        self.with(|world| {
            if self.rank == 0 {
                let mut parts = vec![data];
                for r in 1..self.size {
                    parts.push(self.process(world, r).receive_vec::<u8>().0);
                }
                Some(parts)
            } else {
                self.process(world, 0).send(&data[..]);
                None
            }
        })
    }

    fn arrange(&self, grid: &[usize]) -> Result<Arc<dyn Comm>> {
        super::check_ranks(grid, self.size)?;
        Ok(Arc::new(MpiComm {
            handles: self.handles.clone(),
            mpi_ranks: self.mpi_ranks.clone(),
            rank: self.rank,
            size: self.size,
            grid: grid.to_vec(),
            coords: coords_of(grid, self.rank),
        }))
    }

    fn scatter(&self, parts: Option<Vec<Vec<u8>>>) -> Vec<u8> {
        self.with(|world| {
            if self.rank == 0 {
                let mut parts = parts.expect("rank 0 holds the parts").into_iter();
                let own = parts.next().unwrap_or_default();
                for (r, part) in parts.enumerate() {
                    self.process(world, r + 1).send(&part[..]);
                }
                own
            } else {
                self.process(world, 0).receive_vec::<u8>().0
            }
        })
    }
}
