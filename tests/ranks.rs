//! Domain decomposition inside one process: every kernel on the blocks of 2 and 4 ranks (threads
//! of this test, [`ThreadComm`]) equals the whole lattice's result bit for bit, on process grids
//! that cut one or two directions, time included, in 2D and 4D.

use flowhmc::action::gauge::{GaugeAction, GaugeActionKind};
use flowhmc::backend::cpu::PackedGroup;
use flowhmc::comm::Comm;
use flowhmc::comm::threads::run_ranks;
use flowhmc::field::{GaugeField, MomentumField};
use flowhmc::geometry::Lattice;
use flowhmc::group::{Su3, U1};
use flowhmc::observables::{average_plaquette, average_rectangle};
use std::sync::Arc;

/// (global extents, process grid) pairs: 2D and 4D, cutting time, the other halved direction,
/// a plain direction, and two at once.
const GRIDS: [(&[usize], &[usize]); 6] = [
    (&[8, 8], &[1, 2]),
    (&[8, 8], &[2, 2]),
    (&[4, 4, 4, 8], &[1, 1, 1, 2]),
    (&[4, 4, 8, 8], &[1, 1, 2, 2]),
    (&[8, 4, 4, 4], &[2, 1, 1, 1]),
    (&[4, 4, 8, 4], &[1, 2, 2, 1]),
];

/// This rank's block of the whole field `whole`.
fn block_of<G: PackedGroup>(whole: &GaugeField<G>, comm: Arc<dyn Comm>) -> GaugeField<G> {
    let lat = Arc::new(Lattice::distributed(whole.lattice().dims(), comm).unwrap());
    let l = lat.clone();
    GaugeField::<G>::try_from_fn(lat, |site, mu| Ok::<_, ()>(whole.link(l.global_site(site), mu))).unwrap()
}

/// Whether every momentum of the block equals the whole lattice's at the same global site.
fn same_momenta<G: PackedGroup>(
    block: &MomentumField<G>,
    lat: &Lattice,
    whole: &MomentumField<G>,
    wl: &Lattice,
) -> bool {
    (0..lat.volume()).all(|site| {
        (0..lat.ndim()).all(|mu| {
            let (a, b) = (block.at(lat, site, mu), whole.at(wl, lat.global_site(site), mu));
            a.as_ref().iter().zip(b.as_ref()).all(|(x, y)| x.to_bits() == y.to_bits())
        })
    })
}

fn check_gauge<G: PackedGroup>(dims: &[usize], grid: &[usize]) {
    let whole = GaugeField::<G>::hot(Arc::new(Lattice::new(dims).unwrap()), 11);
    let wl = whole.lattice().clone();
    let actions =
        [GaugeAction::new(GaugeActionKind::Wilson, 5.5), GaugeAction::new(GaugeActionKind::Iwasaki, 2.3)];
    let expected: Vec<(f64, MomentumField<G>)> = actions
        .iter()
        .map(|a| {
            let mut p = MomentumField::<G>::gaussian(&wl, 3, 1);
            a.force(&whole, 0.3, &mut p);
            (a.value(&whole), p)
        })
        .collect();
    let (plaquette, rectangle) = (average_plaquette(&whole), average_rectangle(&whole));
    let kinetic = MomentumField::<G>::gaussian(&wl, 3, 1).kinetic_energy();
    run_ranks(grid, |comm| {
        let u = block_of(&whole, comm);
        let lat = u.lattice().clone();
        assert_eq!(u, GaugeField::<G>::hot(lat.clone(), 11), "{dims:?} {grid:?}: hot start on the blocks");
        assert_eq!(average_plaquette(&u).to_bits(), plaquette.to_bits(), "{dims:?} {grid:?} plaquette");
        assert_eq!(average_rectangle(&u).to_bits(), rectangle.to_bits(), "{dims:?} {grid:?} rectangle");
        assert_eq!(MomentumField::<G>::gaussian(&lat, 3, 1).kinetic_energy().to_bits(), kinetic.to_bits());
        for (a, (value, force)) in actions.iter().zip(&expected) {
            assert_eq!(a.value(&u).to_bits(), value.to_bits(), "{dims:?} {grid:?} action");
            let mut p = MomentumField::<G>::gaussian(&lat, 3, 1);
            a.force(&u, 0.3, &mut p);
            assert!(same_momenta(&p, &lat, force, &wl), "{dims:?} {grid:?} force of {a:?}");
        }
    });
}

#[test]
fn gauge_actions_forces_and_loops_on_ranks_equal_the_whole_lattice() {
    for (dims, grid) in GRIDS {
        if dims.len() == 2 {
            check_gauge::<U1>(dims, grid);
        } else {
            check_gauge::<Su3>(dims, grid);
        }
    }
}
