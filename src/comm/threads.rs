//! [`Comm`] between threads of one process: every rank of a process grid is a thread, and the
//! collective operations meet in shared memory. It runs a decomposition without MPI, so that
//! tests compare a lattice cut into blocks with the whole one inside one test binary (the MPI
//! tests do the same across processes).
//!
//! Collectives are an all-gather of every rank's bytes at a barrier, each rank then computing
//! the same result from the same data in rank order; face exchanges go through per-link
//! mailboxes (first in, first out for each sender, receiver and direction), so a send never
//! waits and a receive waits for its message.

use super::{Comm, PendingExchange, coords_of};
use crate::error::{Error, Result};
use crate::exact_sum::ExactSum;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Barrier, Condvar, Mutex};

/// A mailbox's address: (sender, receiver, direction, forward).
type MailKey = (usize, usize, usize, bool);

/// What the ranks of one grid share.
#[derive(Debug)]
struct Shared {
    barrier: Barrier,
    /// Each rank's contribution to the all-gather in progress.
    slots: Mutex<Vec<Vec<u8>>>,
    /// Messages in flight, by (sender, receiver, direction, forward).
    mail: Mutex<HashMap<MailKey, VecDeque<Vec<u8>>>>,
    arrived: Condvar,
}

/// One rank of a process grid whose ranks are threads of this process (see the module docs).
#[derive(Debug)]
pub struct ThreadComm {
    rank: usize,
    size: usize,
    grid: Vec<usize>,
    coords: Vec<usize>,
    shared: Arc<Shared>,
}

impl ThreadComm {
    /// The ranks of process grid `grid`, in rank order; hand each to its own thread.
    pub fn grid(grid: &[usize]) -> Vec<ThreadComm> {
        let size = grid.iter().product();
        let shared = Arc::new(Shared {
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
            mail: Mutex::new(HashMap::new()),
            arrived: Condvar::new(),
        });
        (0..size)
            .map(|rank| ThreadComm {
                rank,
                size,
                grid: grid.to_vec(),
                coords: coords_of(grid, rank),
                shared: shared.clone(),
            })
            .collect()
    }

    /// Every rank's `data`, in rank order, on every rank.
    fn all_gather(&self, data: Vec<u8>) -> Vec<Vec<u8>> {
        self.shared.slots.lock().unwrap_or_else(|e| e.into_inner())[self.rank] = data;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // nobody refills the slots before everyone has read them
        self.shared.barrier.wait();
        all
    }
}

/// A receive from a mailbox, waited for by [`PendingExchange::finish`].
struct Receive {
    shared: Arc<Shared>,
    key: MailKey,
}

impl PendingExchange for Receive {
    fn finish(self: Box<Self>) -> Vec<u8> {
        let mut mail = self.shared.mail.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(message) = mail.get_mut(&self.key).and_then(|q| q.pop_front()) {
                return message;
            }
            mail = self.shared.arrived.wait(mail).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn f64s(bytes: &[u8]) -> impl Iterator<Item = f64> + '_ {
    bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
}

impl Comm for ThreadComm {
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
        let mine: Vec<u8> = sums
            .iter()
            .flat_map(|s| s.limbs().into_iter().flat_map(i64::to_le_bytes).chain(s.special().to_le_bytes()))
            .collect();
        let all = self.all_gather(mine);
        let per_sum = (crate::exact_sum::LIMBS + 1) * 8;
        for (k, sum) in sums.iter_mut().enumerate() {
            let mut total = ExactSum::new();
            for bytes in &all {
                let part = &bytes[k * per_sum..(k + 1) * per_sum];
                let limbs =
                    std::array::from_fn(|i| i64::from_le_bytes(part[i * 8..i * 8 + 8].try_into().unwrap()));
                let special = f64::from_le_bytes(part[per_sum - 8..].try_into().unwrap());
                total.merge(&ExactSum::from_limbs(limbs, special));
            }
            *sum = total;
        }
    }

    fn max(&self, x: f64) -> f64 {
        let all = self.all_gather(x.to_le_bytes().to_vec());
        all.iter()
            .flat_map(|b| f64s(b).collect::<Vec<_>>())
            .fold(f64::NEG_INFINITY, |m, y| if m.is_nan() || y.is_nan() { f64::NAN } else { m.max(y) })
    }

    fn broadcast(&self, data: Vec<u8>) -> Vec<u8> {
        self.all_gather(data).swap_remove(0)
    }

    fn agree(&self, result: Result<()>) -> Result<()> {
        let mine = result.as_ref().err().map_or_else(Vec::new, Error::encode);
        let all = self.all_gather(mine);
        all.iter().find(|e| !e.is_empty()).map_or(Ok(()), |e| Err(Error::decode(e)))
    }

    fn start_exchange(
        &self,
        mu: usize,
        forward: bool,
        send: Vec<u8>,
        _receive_len: usize,
    ) -> Box<dyn PendingExchange> {
        let (to, from) = (self.neighbour(mu, forward), self.neighbour(mu, !forward));
        let mut mail = self.shared.mail.lock().unwrap_or_else(|e| e.into_inner());
        mail.entry((self.rank, to, mu, forward)).or_default().push_back(send);
        self.shared.arrived.notify_all();
        Box::new(Receive { shared: self.shared.clone(), key: (from, self.rank, mu, forward) })
    }

    fn gather(&self, data: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        let all = self.all_gather(data);
        (self.rank == 0).then_some(all)
    }

    fn arrange(&self, grid: &[usize]) -> Result<Arc<dyn Comm>> {
        super::check_ranks(grid, self.size)?;
        Ok(Arc::new(ThreadComm {
            rank: self.rank,
            size: self.size,
            grid: grid.to_vec(),
            coords: coords_of(grid, self.rank),
            shared: self.shared.clone(),
        }))
    }

    fn scatter(&self, parts: Option<Vec<Vec<u8>>>) -> Vec<u8> {
        let mine = if self.rank == 0 {
            let parts = parts.unwrap_or_default();
            let mut bytes = Vec::new();
            for p in &parts {
                bytes.extend((p.len() as u64).to_le_bytes());
                bytes.extend(p);
            }
            bytes
        } else {
            Vec::new()
        };
        let all = self.all_gather(mine);
        let mut rest = &all[0][..];
        for r in 0..self.size {
            let len = u64::from_le_bytes(rest[..8].try_into().expect("length")) as usize;
            if r == self.rank {
                return rest[8..8 + len].to_vec();
            }
            rest = &rest[8 + len..];
        }
        unreachable!("rank 0 sends one part per rank")
    }
}

/// Runs `work(comm)` on every rank of process grid `grid`, each in its own thread, and returns
/// the results in rank order (a panic on any rank is re-raised).
pub fn run_ranks<T: Send>(grid: &[usize], work: impl Fn(Arc<dyn Comm>) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadComm::grid(grid)
            .into_iter()
            .map(|comm| {
                let work = &work;
                s.spawn(move || work(Arc::new(comm)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectives_and_exchanges_between_threads() {
        let results = run_ranks(&[2, 1, 2], |comm| {
            let r = comm.rank();
            let mut sums = [ExactSum::new()];
            sums[0].add(1e16);
            sums[0].add(r as f64 + 0.5);
            comm.sum_exact(&mut sums);
            let max = comm.max(r as f64);
            let from_zero = comm.broadcast(vec![r as u8]);
            let sent = comm.start_exchange(2, true, vec![r as u8; 3], 3).finish();
            let back = comm.start_exchange(0, false, vec![10 + r as u8], 1).finish();
            let gathered = comm.gather(vec![r as u8]);
            let part = comm.scatter((r == 0).then(|| (0..4).map(|k| vec![k as u8; k]).collect()));
            let agreed = comm
                .agree(if r == 3 { Err(Error::Card("three".into())) } else { Ok(()) })
                .unwrap_err()
                .to_string();
            (sums[0].value(), max, from_zero, sent, back, gathered, part, agreed)
        });
        for (r, (sum, max, from_zero, sent, back, gathered, part, agreed)) in results.into_iter().enumerate()
        {
            assert_eq!(sum, 4e16 + 8.0);
            assert_eq!(max, 3.0);
            assert_eq!(from_zero, vec![0]);
            // rank r = c0 + 2 c2 receives from the rank one step back in direction 2
            assert_eq!(sent, vec![(r as u8 + 2) % 4; 3]);
            assert_eq!(back, vec![10 + (r as u8 ^ 1)]);
            assert_eq!(gathered, (r == 0).then(|| vec![vec![0], vec![1], vec![2], vec![3]]));
            assert_eq!(part, vec![r as u8; r]);
            assert!(agreed.contains("three"), "{agreed}");
        }
    }
}
