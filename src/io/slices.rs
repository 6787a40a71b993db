//! A field's per-site bytes between the ranks' blocks and a file that stores the global
//! lattice in lexicographic order (x fastest, the last direction slowest), moved through rank
//! 0 one global time slice (all sites with one value of the last coordinate) at a time.
//!
//! Contract: every rank calls with the same `bytes_per_site`; a rank's block bytes are its
//! sites in local lexicographic order. Only rank 0 touches the file, through the closures it
//! is given, and it holds one global slice and the parts of it in flight besides its block, so
//! a file larger than one node's memory is read and written (memory bound: about two global
//! slices on rank 0). Errors of the closures do not stop the collective traffic: the slices
//! still move (zeros after a read error) so no rank waits forever, and the first error is
//! returned on rank 0 alone; the caller hands it to every rank with [`crate::comm::Comm::agree`].
//! On one rank a slice is simply a piece of the field, with no second code path.

use crate::comm::coords_of;
use crate::error::Result;
use crate::geometry::Lattice;

/// Sites of one time slice of extents `dims` (all directions but the last).
fn slice_volume(dims: &[usize]) -> usize {
    dims[..dims.len() - 1].iter().product()
}

/// Where each rank's part of a global slice goes, built once per transfer on rank 0: for
/// every rank in rank order, its first global time coordinate and, for every run of its sites
/// along x, the global slice offset of the run's first site, in the order of the part's bytes.
fn placements(lattice: &Lattice) -> Vec<(usize, Vec<usize>)> {
    let (global, local) = (lattice.global_dims(), lattice.dims());
    let d = global.len();
    let rows = slice_volume(local) / local[0];
    (0..lattice.comm().size())
        .map(|rank| {
            let origin: Vec<usize> =
                coords_of(lattice.comm().grid(), rank).iter().zip(local).map(|(&c, &l)| c * l).collect();
            let runs = (0..rows)
                .map(|row| {
                    // the local coordinates 1..d-1 of the row, then its global offset
                    let (mut rest, mut offset, mut stride) = (row, origin[0], global[0]);
                    for mu in 1..d - 1 {
                        offset += (origin[mu] + rest % local[mu]) * stride;
                        rest /= local[mu];
                        stride *= global[mu];
                    }
                    offset
                })
                .collect();
            (origin[d - 1], runs)
        })
        .collect()
}

/// This rank's time-slice range of the global lattice: (first global t, local extent).
fn time_range(lattice: &Lattice) -> (usize, usize) {
    let t = lattice.ndim() - 1;
    (lattice.origin()[t], lattice.dims()[t])
}

/// Rank 0 hands `sink` the global data slice by slice, t = 0, 1, ...; every rank contributes
/// `local`, its block's bytes. Returns the first error of `sink` on rank 0 and Ok elsewhere
/// (see the module docs).
pub fn gather_slices(
    lattice: &Lattice,
    local: &[u8],
    bytes_per_site: usize,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let comm = lattice.comm();
    let (global, local_dims) = (lattice.global_dims(), lattice.dims());
    let (part_len, row_len) = (slice_volume(local_dims) * bytes_per_site, local_dims[0] * bytes_per_site);
    assert_eq!(local.len(), part_len * local_dims[local_dims.len() - 1], "a block's bytes");
    let (first, extent) = time_range(lattice);
    let root = comm.rank() == 0;
    let placement = root.then(|| placements(lattice));
    let mut slice = vec![0u8; if root { slice_volume(global) * bytes_per_site } else { 0 }];
    let mut failure = Ok(());
    for t in 0..global[global.len() - 1] {
        let mine = match t.checked_sub(first).filter(|&k| k < extent) {
            Some(k) => local[k * part_len..(k + 1) * part_len].to_vec(),
            None => Vec::new(),
        };
        let (Some(parts), Some(placement)) = (comm.gather(mine), &placement) else { continue };
        for ((_, runs), part) in placement.iter().zip(&parts).filter(|(_, p)| !p.is_empty()) {
            for (run, offset) in runs.iter().enumerate() {
                let at = offset * bytes_per_site;
                slice[at..at + row_len].copy_from_slice(&part[run * row_len..(run + 1) * row_len]);
            }
        }
        if failure.is_ok() {
            failure = sink(&slice);
        }
    }
    failure
}

/// Rank 0's `source` fills the global data slice by slice, t = 0, 1, ...; returns this rank's
/// block bytes, and on rank 0 the first error of `source` (see the module docs).
pub fn scatter_slices(
    lattice: &Lattice,
    bytes_per_site: usize,
    mut source: impl FnMut(&mut [u8]) -> Result<()>,
) -> (Vec<u8>, Result<()>) {
    let comm = lattice.comm();
    let (global, local_dims) = (lattice.global_dims(), lattice.dims());
    let (part_len, row_len) = (slice_volume(local_dims) * bytes_per_site, local_dims[0] * bytes_per_site);
    let (first, extent) = time_range(lattice);
    let mut local = vec![0u8; part_len * extent];
    let root = comm.rank() == 0;
    let placement = root.then(|| placements(lattice));
    let mut slice = vec![0u8; if root { slice_volume(global) * bytes_per_site } else { 0 }];
    let mut failure = Ok(());
    for t in 0..global[global.len() - 1] {
        let parts = placement.as_ref().map(|placement| {
            if failure.is_ok() {
                failure = source(&mut slice);
            }
            placement
                .iter()
                .map(|(at, runs)| {
                    if t < *at || t >= at + extent {
                        return Vec::new();
                    }
                    let mut part = Vec::with_capacity(part_len);
                    for &offset in runs {
                        let at = offset * bytes_per_site;
                        part.extend_from_slice(&slice[at..at + row_len]);
                    }
                    part
                })
                .collect()
        });
        let part = comm.scatter(parts);
        if let Some(k) = t.checked_sub(first).filter(|&k| k < extent) {
            local[k * part_len..(k + 1) * part_len].copy_from_slice(&part);
        }
    }
    (local, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::threads::run_ranks;
    use std::sync::Arc;

    /// Every site's bytes name its global index; gathered slices are the global lattice in
    /// order, and scattering them back gives every rank its block.
    #[test]
    fn slices_move_every_site_to_its_place_on_every_grid() {
        for (dims, grid) in [
            (vec![4, 6], vec![2, 1]),
            (vec![4, 6], vec![2, 3]),
            (vec![4, 4, 2, 6], vec![1, 2, 1, 3]),
            (vec![4, 8, 4, 4], vec![2, 2, 1, 1]),
        ] {
            run_ranks(&grid, |comm| {
                let lattice = Lattice::distributed(&dims, comm).unwrap();
                let bytes_per_site = 3;
                let code = |g: usize| [g as u8, (g >> 8) as u8, 7];
                let local: Vec<u8> =
                    (0..lattice.volume()).flat_map(|s| code(lattice.global_site(s))).collect();
                let mut file = Vec::new();
                gather_slices(&lattice, &local, bytes_per_site, |slice| {
                    file.extend_from_slice(slice);
                    Ok(())
                })
                .unwrap();
                let whole: Vec<u8> = (0..lattice.global_volume()).flat_map(code).collect();
                if lattice.comm().rank() == 0 {
                    assert_eq!(file, whole, "dims {dims:?} grid {grid:?}");
                } else {
                    assert!(file.is_empty());
                }
                let mut chunks = whole.chunks(whole.len() / dims[dims.len() - 1]);
                let (back, failure) = scatter_slices(&lattice, bytes_per_site, |slice| {
                    slice.copy_from_slice(chunks.next().unwrap());
                    Ok(())
                });
                failure.unwrap();
                assert_eq!(back, local, "dims {dims:?} grid {grid:?}");
            });
        }
    }

    /// A failing sink or source stops using the file but not the traffic: every rank returns,
    /// rank 0 with the error.
    #[test]
    fn a_failing_file_leaves_no_rank_waiting() {
        let results = run_ranks(&[1, 2], |comm| {
            let lattice = Arc::new(Lattice::distributed(&[4, 8], comm).unwrap());
            let local = vec![1u8; lattice.volume()];
            let mut calls = 0;
            let gathered = gather_slices(&lattice, &local, 1, |_| {
                calls += 1;
                Err(crate::Error::Config("disk full".into()))
            });
            let (_, scattered) = scatter_slices(&lattice, 1, |_| Err(crate::Error::Config("short".into())));
            (gathered.is_err(), scattered.is_err(), calls)
        });
        assert_eq!(results, [(true, true, 1), (false, false, 0)]);
    }
}
