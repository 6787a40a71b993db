//! Halo exchange of packed fields: the messages of a [`HaloPlan`] encoded lane by lane, sent
//! through the lattice's [`Comm`], decoded into the halo elements, and the plan's lane copies.
//!
//! A field in the exchange is an [`Extended`] view: its interior elements (read) and its halo
//! elements (written), `width` packed values per element (the D links of a gauge field, one
//! spinor of a fermion field). A [`LaneCodec`] says what one lane of one element becomes in a
//! message: all its lane vectors ([`Whole`]), or less where the receiver needs less (the spin
//! projection of the Wilson operator). Every rank encodes and decodes the lanes of a message
//! in the plan's order, so the messages need no headers.

use super::color::ColorLanes;
use super::packed::{ComplexLanes, Lanes, Real, Su3Lanes};
use crate::comm::{Comm, PendingExchange};
use crate::geometry::halo::{HaloPlan, LaneSite, Message};

/// Packed types that are plain arrays of lane vectors of one real type, without padding: every
/// packed link and colour vector of the CPU backend (a spinor is S colour vectors).
///
/// # Safety
/// The type must be `repr(C)` (or an array) of exactly `VECTORS` values of `Lanes<Real>` and
/// nothing else, so that it may be read as that many lane vectors.
pub unsafe trait LaneArray: Copy + Send + Sync + 'static {
    /// The real type of the lanes.
    type Scalar: Real;
    /// Number of lane vectors.
    const VECTORS: usize;
}

/// The lane vectors of a packed value.
#[inline(always)]
pub fn lane_vectors<T: LaneArray>(x: &T) -> &[Lanes<T::Scalar>] {
    const { assert!(size_of::<T>() == T::VECTORS * size_of::<Lanes<T::Scalar>>()) };
    // SAFETY: LaneArray's contract: T is exactly VECTORS lane vectors, whose alignment (that
    // of the real type) T's alignment is a multiple of.
    unsafe { std::slice::from_raw_parts((x as *const T).cast::<Lanes<T::Scalar>>(), T::VECTORS) }
}

/// The lane vectors of a packed value, mutable.
#[inline(always)]
pub fn lane_vectors_mut<T: LaneArray>(x: &mut T) -> &mut [Lanes<T::Scalar>] {
    const { assert!(size_of::<T>() == T::VECTORS * size_of::<Lanes<T::Scalar>>()) };
    // SAFETY: as in `lane_vectors`; any bit pattern is a valid real.
    unsafe { std::slice::from_raw_parts_mut((x as *mut T).cast::<Lanes<T::Scalar>>(), T::VECTORS) }
}

// SAFETY: repr(C): N real lane vectors, then N imaginary ones.
unsafe impl<const N: usize, R: Real> LaneArray for ColorLanes<N, R> {
    type Scalar = R;
    const VECTORS: usize = 2 * N;
}

// SAFETY: repr(C): the real lane vector, then the imaginary one.
unsafe impl<R: Real> LaneArray for ComplexLanes<R> {
    type Scalar = R;
    const VECTORS: usize = 2;
}

// SAFETY: repr(C): 9 real lane vectors, then 9 imaginary ones.
unsafe impl<R: Real> LaneArray for Su3Lanes<R> {
    type Scalar = R;
    const VECTORS: usize = 18;
}

/// A field in an exchange: `width` packed values per element, the interior elements read and
/// the halo elements (numbered after them) written.
pub struct Extended<'a, T> {
    /// Interior elements.
    pub interior: &'a [T],
    /// Halo elements.
    pub halo: &'a mut [T],
    /// Packed values per element.
    pub width: usize,
}

impl<T> Extended<'_, T> {
    /// Element e (interior or halo).
    #[inline]
    pub fn element(&self, e: usize) -> &[T] {
        let n = self.interior.len();
        let k = e * self.width;
        if k < n { &self.interior[k..k + self.width] } else { &self.halo[k - n..k - n + self.width] }
    }

    /// Halo element e (numbered after the interior), mutable.
    #[inline]
    pub fn halo_element_mut(&mut self, e: usize) -> &mut [T] {
        let k = e * self.width - self.interior.len();
        &mut self.halo[k..k + self.width]
    }
}

/// The lanes of one element that a message carries next, in message order: a run of the
/// message's lane list on one element.
#[derive(Clone, Copy, Debug)]
pub struct LaneRun<'a> {
    lanes: &'a [LaneSite],
}

impl LaneRun<'_> {
    /// The runs of a lane list: its longest stretches on one element.
    fn split(list: &[LaneSite]) -> impl Iterator<Item = LaneRun<'_>> {
        list.chunk_by(|a, b| a.element == b.element).map(|lanes| LaneRun { lanes })
    }

    /// The element.
    fn element(&self) -> usize {
        self.lanes[0].element as usize
    }

    /// Number of lanes.
    fn len(&self) -> usize {
        self.lanes.len()
    }

    /// The lanes, in message order.
    pub fn lanes(&self) -> impl Iterator<Item = usize> + '_ {
        self.lanes.iter().map(|s| s.lane as usize)
    }
}

/// What one lane of one element is in a message. A codec works on a run of lanes of one element
/// at a time, so that what it computes from the whole element (a spin projection) is computed
/// once for all of them; the encoding of each lane has the same bytes as if it were alone.
pub trait LaneCodec<T: LaneArray>: Sync {
    /// Bytes of one lane of an element of `width` values in `message`.
    fn lane_bytes(&self, message: &Message, width: usize) -> usize;
    /// Writes the lanes of `run` of `element` for `message` to `out`, one after the other (each
    /// exactly `lane_bytes` long).
    fn encode(&self, message: &Message, element: &[T], run: LaneRun, out: &mut [u8]);
    /// Sets the lanes of `run` of `element` from their encodings in `message`, one after the
    /// other in `bytes`.
    fn decode(&self, message: &Message, bytes: &[u8], run: LaneRun, element: &mut [T]);
}

/// Every lane vector of the element, unchanged.
pub struct Whole;

impl<T: LaneArray> LaneCodec<T> for Whole {
    fn lane_bytes(&self, _message: &Message, width: usize) -> usize {
        width * T::VECTORS * <T::Scalar as Real>::BYTES
    }

    fn encode(&self, message: &Message, element: &[T], run: LaneRun, out: &mut [u8]) {
        let size = <T::Scalar as Real>::BYTES;
        let lane_bytes = LaneCodec::<T>::lane_bytes(self, message, element.len());
        for (lane, out) in run.lanes().zip(out.chunks_exact_mut(lane_bytes)) {
            for (v, bytes) in element.iter().flat_map(lane_vectors).zip(out.chunks_exact_mut(size)) {
                v[lane].store_le(bytes);
            }
        }
    }

    fn decode(&self, message: &Message, bytes: &[u8], run: LaneRun, element: &mut [T]) {
        let size = <T::Scalar as Real>::BYTES;
        let lane_bytes = LaneCodec::<T>::lane_bytes(self, message, element.len());
        for (lane, bytes) in run.lanes().zip(bytes.chunks_exact(lane_bytes)) {
            for (v, bytes) in element.iter_mut().flat_map(lane_vectors_mut).zip(bytes.chunks_exact(size)) {
                v[lane] = T::Scalar::read_le(bytes);
            }
        }
    }
}

/// The sends of one stage, started: one pending receive per message, in the stage's order.
pub fn start_stage<T: LaneArray>(
    comm: &dyn Comm,
    stage: &[Message],
    field: &Extended<T>,
    codec: &impl LaneCodec<T>,
) -> Vec<Box<dyn PendingExchange>> {
    stage
        .iter()
        .map(|m| {
            let size = codec.lane_bytes(m, field.width);
            let mut bytes = vec![0; m.send.len() * size];
            let mut rest = &mut bytes[..];
            for run in LaneRun::split(&m.send) {
                let (out, tail) = rest.split_at_mut(run.len() * size);
                codec.encode(m, field.element(run.element()), run, out);
                rest = tail;
            }
            comm.start_exchange(m.mu, m.forward, bytes, m.receive.len() * size)
        })
        .collect()
}

/// Waits for the receives of one stage and decodes them into the halo.
pub fn finish_stage<T: LaneArray>(
    stage: &[Message],
    pending: Vec<Box<dyn PendingExchange>>,
    field: &mut Extended<T>,
    codec: &impl LaneCodec<T>,
) {
    for (m, p) in stage.iter().zip(pending) {
        let bytes = p.finish();
        let size = codec.lane_bytes(m, field.width);
        let mut rest = &bytes[..];
        for run in LaneRun::split(&m.receive) {
            let (encoded, tail) = rest.split_at(run.len() * size);
            codec.decode(m, encoded, run, field.halo_element_mut(run.element()));
            rest = tail;
        }
    }
}

/// The lane copies `(to, from)` of a plan, within the rank.
pub fn copy_lanes<T: LaneArray>(copies: &[(LaneSite, LaneSite)], field: &mut Extended<T>) {
    let width = field.width;
    let interior_elements = field.interior.len() / width;
    let mut buffer: Vec<T> = Vec::with_capacity(width);
    for (to, from) in copies {
        let (to_lane, from_lane) = (to.lane as usize, from.lane as usize);
        let (to, from) = (to.element as usize - interior_elements, from.element as usize);
        // a lane of the interior is read in place, one of the halo through a copy of its element
        let source = if from < interior_elements {
            &field.interior[from * width..(from + 1) * width]
        } else {
            let from = from - interior_elements;
            buffer.clear();
            buffer.extend_from_slice(&field.halo[from * width..(from + 1) * width]);
            &buffer
        };
        let target = &mut field.halo[to * width..(to + 1) * width];
        for (t, v) in target.iter_mut().zip(source) {
            for (t, v) in lane_vectors_mut(t).iter_mut().zip(lane_vectors(v)) {
                t[to_lane] = v[from_lane];
            }
        }
    }
}

/// Fills the halo of `field` by `plan`, stage by stage, then the copies (collective).
pub fn exchange<T: LaneArray>(
    comm: &dyn Comm,
    plan: &HaloPlan,
    field: &mut Extended<T>,
    codec: &impl LaneCodec<T>,
) {
    for stage in &plan.stages {
        let pending = start_stage(comm, stage, field, codec);
        finish_stage(stage, pending, field, codec);
    }
    copy_lanes(&plan.copies, field);
}
