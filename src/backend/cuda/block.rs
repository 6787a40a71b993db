//! One rank's block of a 4D lattice as the kernels see it (`Block` in `kernels/common.cuh`),
//! and the exchanges with the neighbouring ranks' devices.
//!
//! Conventions: block sites are numbered lexicographically over the local extents (x0
//! fastest), as the CPU's [`Lattice`] numbers its local sites. Links live on the extended box,
//! the block padded by [`LINK_HALO`] layers in every direction the process grid cuts, so that
//! the staples of rectangles and the backward hops of the Dirac operator read their links
//! there; [`exchange_slabs`] keeps those layers current, one cut direction after the other so
//! that the corners arrive through the faces. Spinors live on the block alone; a hop across a
//! cut face reads the neighbour's face from a ghost buffer that [`exchange_faces`] fills. Both
//! travel through the host (download, [`Comm`] exchange, upload): simple, and exact, though a
//! GPU-aware MPI or peer copies would avoid the host copies.

use super::device::{Arg, Device, DeviceBuffer, DeviceReal};
use crate::comm::Comm;
use crate::error::{Error, Result};
use crate::geometry::Lattice;

/// Layers of the extended box in a cut direction: the reach of a 1x2 rectangle staple.
pub const LINK_HALO: usize = 2;

/// This rank's block: local extents, the cut directions, and whether its time faces are the
/// lattice's time boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    dims: [usize; 4],
    cut: [bool; 4],
    /// The lower and the upper time face lie on the lattice's time boundary.
    edges: [bool; 2],
}

impl BlockShape {
    /// The block of `lattice` (this rank's part of a 4D lattice): an error for other
    /// dimensions or extents beyond the kernels' 32-bit coordinates.
    pub fn of(lattice: &Lattice) -> Result<Self> {
        let dims: [usize; 4] = lattice.dims().try_into().map_err(|_| {
            Error::Device(format!("lattice {:?}: the CUDA backend runs 4D lattices", lattice.dims()))
        })?;
        if dims.iter().any(|&l| i32::try_from(l + 2 * LINK_HALO).is_err()) {
            return Err(Error::Device(format!(
                "block {dims:?}: extents beyond the kernels' 32-bit coordinates"
            )));
        }
        let comm = lattice.comm();
        let (t, last) = (comm.coords()[3], comm.grid()[3] - 1);
        Ok(BlockShape { dims, cut: std::array::from_fn(|mu| lattice.is_cut(mu)), edges: [t == 0, t == last] })
    }

    /// Local extents.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// Sites of the block.
    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the process grid cuts no direction (one rank holds the lattice).
    pub fn is_whole(&self) -> bool {
        !self.cut.contains(&true)
    }

    /// Whether direction mu is cut.
    pub fn is_cut(&self, mu: usize) -> bool {
        self.cut[mu]
    }

    /// Layers of the extended box below (and above) the block in direction mu.
    pub fn halo(&self, mu: usize) -> usize {
        if self.cut[mu] { LINK_HALO } else { 0 }
    }

    /// Extents of the extended box.
    pub fn extended_dims(&self) -> [usize; 4] {
        std::array::from_fn(|mu| self.dims[mu] + 2 * self.halo(mu))
    }

    /// Sites of the extended box.
    pub fn extended_volume(&self) -> usize {
        self.extended_dims().iter().product()
    }

    /// The extended-box index of block site x.
    pub fn extended_site(&self, x: usize) -> usize {
        let mut rest = x;
        let (mut index, mut stride) = (0, 1);
        for (mu, e) in self.extended_dims().into_iter().enumerate() {
            index += (rest % self.dims[mu] + self.halo(mu)) * stride;
            rest /= self.dims[mu];
            stride *= e;
        }
        index
    }

    /// Sites of the ghost faces of a spinor: both faces of every cut direction.
    pub fn ghost_sites(&self) -> usize {
        (0..4).filter(|&mu| self.cut[mu]).map(|mu| 2 * self.volume() / self.dims[mu]).sum()
    }

    /// The block as kernel arguments: l0..l3, the cut directions' bits, the time edges' bits.
    pub fn args(&self) -> [Arg<'static>; 6] {
        let bits = |flags: &[bool]| flags.iter().enumerate().map(|(k, &f)| i32::from(f) << k).sum::<i32>();
        let [l0, l1, l2, l3] = self.dims.map(|l| Arg::Int(l as i32));
        [l0, l1, l2, l3, Arg::Int(bits(&self.cut)), Arg::Int(bits(&self.edges))]
    }
}

/// Sends each of `messages` (direction mu, towards the forward neighbour or not, the reals) and
/// receives as many reals from the opposite neighbour, on every rank of `comm` (collective:
/// every rank passes its messages in the same order). The received reals, in order.
fn exchange<T: DeviceReal>(comm: &dyn Comm, messages: Vec<(usize, bool, Vec<T>)>) -> Vec<Vec<T>> {
    let pending: Vec<_> = messages
        .into_iter()
        .map(|(mu, forward, values)| {
            let mut bytes = Vec::with_capacity(values.len() * size_of::<T>());
            values.iter().for_each(|&v| v.push_le_bytes(&mut bytes));
            let len = bytes.len();
            comm.start_exchange(mu, forward, bytes, len)
        })
        .collect();
    pending
        .into_iter()
        .map(|p| p.finish().chunks_exact(size_of::<T>()).map(T::from_le_slice).collect())
        .collect()
}

/// The ghost faces of the neighbours from this rank's outgoing faces `outgoing` (the layout of
/// `pack_faces` in `kernels/wilson.cu`: per cut direction the face sent forward, then the face
/// sent backward, each `volume / l_mu` sites of 24 reals), uploaded to `device` in the same
/// layout. Collective.
pub fn exchange_faces<T: DeviceReal>(
    device: &Device,
    block: &BlockShape,
    outgoing: &DeviceBuffer<T>,
) -> Result<DeviceBuffer<T>> {
    let values = outgoing.download()?;
    let mut messages = Vec::new();
    let mut offset = 0;
    for mu in (0..4).filter(|&mu| block.is_cut(mu)) {
        let face = block.volume() / block.dims[mu] * 24;
        // the backward ghost comes from the backward neighbour's upper face, sent forward; the
        // forward ghost from the forward neighbour's lower face, sent backward
        for forward_ghost in [false, true] {
            messages.push((mu, !forward_ghost, values[offset..offset + face].to_vec()));
            offset += face;
        }
    }
    let received: Vec<T> = exchange(device.comm().as_ref(), messages).concat();
    device.upload(&received)
}

/// Refreshes the halo layers of the links `links` (the extended box of `block`, 72 reals a
/// site) from the neighbours' blocks with the kernel `link_slab_f64` of `source`. Collective.
pub fn exchange_slabs(
    device: &Device,
    block: &BlockShape,
    links: &mut DeviceBuffer<f64>,
    source: super::KernelSource,
) -> Result<()> {
    let e = block.extended_dims();
    for mu in (0..4).filter(|&mu| block.is_cut(mu)) {
        let reals = LINK_HALO
            * e.iter().enumerate().filter(|&(nu, _)| nu != mu).map(|(_, &l)| l).product::<usize>()
            * 72;
        let slab =
            |links: &mut DeviceBuffer<f64>, start: usize, buffer: &mut DeviceBuffer<f64>, unpack: bool| {
                let mut args = vec![Arg::F64Mut(links)];
                args.extend(block.args());
                args.extend([
                    Arg::Int(mu as i32),
                    Arg::Int(start as i32),
                    Arg::F64Mut(buffer),
                    Arg::Int(i32::from(unpack)),
                ]);
                // SAFETY: the parameters of link_slab_f64 in order; the links hold 72 reals per site
                // of the extended box, the buffer 72 per slab site.
                unsafe { device.launch(source, "link_slab_f64", device.shape(reals), &mut args) }
            };
        let l = block.dims[mu];
        // the block's lowest layers go backward (they are the upper halo there), its highest
        // forward (the lower halo there)
        let (lowest, highest) = (LINK_HALO, l);
        let mut buffer = device.zeros::<f64>(reals)?;
        slab(links, lowest, &mut buffer, false)?;
        let down = buffer.download()?;
        slab(links, highest, &mut buffer, false)?;
        let up = buffer.download()?;
        let received = exchange(device.comm().as_ref(), vec![(mu, false, down), (mu, true, up)]);
        let (upper_halo, lower_halo) = (&received[0], &received[1]);
        let mut incoming = device.upload(upper_halo)?;
        slab(links, l + LINK_HALO, &mut incoming, true)?;
        let mut incoming = device.upload(lower_halo)?;
        slab(links, 0, &mut incoming, true)?;
    }
    Ok(())
}
