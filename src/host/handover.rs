//! openQCD's gauge layout on the blocks of a process grid: the links a rank's buffer holds for
//! its neighbour, and those of its own block that the neighbour holds.
//!
//! openQCD stores the links on odd sites: odd site x holds U(x, mu) and U(x - mu, mu). When
//! direction mu is cut, an odd site x at a block's lower face (local x_mu = 0) holds
//! U(x - mu, mu), the link of the even site y = x - mu at the upper face of the block below.
//! So for each cut direction a rank's buffer holds some links of the block below (its *held*
//! slots), and some links of its own block (those of its even sites at the upper face) are held
//! by the block above. Both lists run in face order: the sites of the face in local
//! lexicographic order, which pairs y with x = y + mu on the two ranks, since blocks have
//! equal extents and y and x differ only in their mu coordinate (and in parity, the local
//! extents being even).
//!
//! On import a rank sends its held links to the block below and receives its own links from
//! the block above; on export the other way round. Messages carry the host's 2 N^2 reals of each
//! matrix as they lie in its buffer (little-endian in the host's precision).

use crate::backend::cpu::packed::Real;
use crate::comm::{Comm, PendingExchange};
use crate::geometry::Lattice;

/// The links across the faces of one cut direction (see the module docs).
#[derive(Clone, Debug)]
pub struct Handover {
    /// The direction.
    pub mu: usize,
    /// Offsets in this rank's buffer of the links it holds for the block below, in face order.
    pub held: Vec<usize>,
    /// The first of this block's links held by the block above, as an index into the links
    /// appended after the buffer (in face order, [`Handover::held`]'s length many).
    pub first: usize,
}

/// The sites of the face of `lattice` in direction mu at local coordinate `at`, with parity
/// `parity`, in local lexicographic order.
pub fn face_sites(lattice: &Lattice, mu: usize, at: usize, parity: u8) -> impl Iterator<Item = usize> + '_ {
    (0..lattice.volume()).filter(move |&s| lattice.coord(s, mu) == at && lattice.parity(s) == parity)
}

/// The reals of one matrix at `offset` of `buffer`, as little-endian bytes.
fn encode<R: Real>(buffer: &[R], offset: usize, reals: usize, out: &mut Vec<u8>) {
    buffer[offset..offset + reals].iter().for_each(|x| x.write_le(out));
}

/// Writes `bytes` (matrices of `reals` reals, encoded by [`encode`]) at `offsets` of `buffer`.
fn decode<R: Real>(bytes: &[u8], offsets: impl Iterator<Item = usize>, reals: usize, buffer: &mut [R]) {
    for (offset, matrix) in offsets.zip(bytes.chunks_exact(reals * R::BYTES)) {
        for (k, x) in buffer[offset..offset + reals].iter_mut().enumerate() {
            *x = R::read_le(&matrix[k * R::BYTES..]);
        }
    }
}

/// The links the block above holds for this block, received into `appended` (the links after
/// the buffer, `reals` reals each), and this rank's held links sent to the block below
/// (collective).
pub fn receive_own<R: Real>(comm: &dyn Comm, handovers: &[Handover], buffer: &[R], reals: usize) -> Vec<R> {
    let total: usize = handovers.iter().map(|h| h.held.len()).sum();
    let mut appended = vec![R::ZERO; total * reals];
    let pending: Vec<Box<dyn PendingExchange>> = handovers
        .iter()
        .map(|h| {
            let mut bytes = Vec::with_capacity(h.held.len() * reals * R::BYTES);
            h.held.iter().for_each(|&o| encode(buffer, o, reals, &mut bytes));
            let len = bytes.len();
            comm.start_exchange(h.mu, false, bytes, len)
        })
        .collect();
    for (h, p) in handovers.iter().zip(pending) {
        let at = (0..h.held.len()).map(|k| (h.first + k) * reals);
        decode(&p.finish(), at, reals, &mut appended);
    }
    appended
}

/// This block's links held by the block above, taken from `appended`, sent there; the links
/// this rank holds for the block below received into `buffer` (collective).
pub fn send_own<R: Real>(
    comm: &dyn Comm,
    handovers: &[Handover],
    appended: &[R],
    buffer: &mut [R],
    reals: usize,
) {
    let pending: Vec<Box<dyn PendingExchange>> = handovers
        .iter()
        .map(|h| {
            let mut bytes = Vec::with_capacity(h.held.len() * reals * R::BYTES);
            (0..h.held.len()).for_each(|k| encode(appended, (h.first + k) * reals, reals, &mut bytes));
            let len = bytes.len();
            comm.start_exchange(h.mu, true, bytes, len)
        })
        .collect();
    for (h, p) in handovers.iter().zip(pending) {
        decode(&p.finish(), h.held.iter().copied(), reals, buffer);
    }
}
