//! The MPI communicator (feature `mpi`): each test starts itself under `mpirun` on 1, 2 and 4
//! ranks (`--oversubscribe`, so a 2-core machine runs 4) and fails when any rank fails or the
//! run does not end within a minute (a hang).
#![cfg(feature = "mpi")]

mod common;

use common::{NF2_HOST_PARAMETERS, cold_su3_host_field};
use flowhmc::action::gauge::{GaugeAction, GaugeActionKind};
use flowhmc::checkerboard::Checkerboard;
use flowhmc::comm::mpi::MpiComm;
use flowhmc::comm::{Comm, rank_of};
use flowhmc::dirac::solve::{Method, solve};
use flowhmc::dirac::wilson::{Boundary, WilsonOperator};
use flowhmc::error::Error;
use flowhmc::exact_sum::ExactSum;
use flowhmc::field::{GaugeField, MomentumField};
use flowhmc::geometry::Lattice;
use flowhmc::group::{LinkMatrix, Su3};
use flowhmc::rng::{Purpose, StreamKey};
use flowhmc::solver::SolverParams;
use flowhmc::spinor::SpinorField;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in the environment of the ranks that mpirun starts.
const RANK_ENV: &str = "FLOWHMC_MPI_RANK_TEST";

/// How long any mpirun may take before it counts as a hang.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs `program args` under `mpirun` on `ranks` ranks, stdout and stderr into files; fails the
/// test when it does not end within [`HANG_LIMIT`]. Returns the exit status, stdout, stderr.
fn mpirun(ranks: usize, program: &Path, args: &[&str], dir: &Path) -> (ExitStatus, String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let (out, err) = (dir.join(format!("stdout{ranks}")), dir.join(format!("stderr{ranks}")));
    let mut child = Command::new("mpirun")
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env(RANK_ENV, "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("mpirun (Debian: openmpi-bin)");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > HANG_LIMIT {
            child.kill().ok();
            panic!(
                "{} {args:?} on {ranks} ranks did not end within {HANG_LIMIT:?}: a rank hangs",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(out).unwrap(), std::fs::read_to_string(err).unwrap())
}

/// Runs the test `name` of this binary on `ranks` ranks and checks that all succeed in time.
fn launch(name: &str, ranks: usize) {
    let exe = std::env::current_exe().expect("test binary");
    let dir = std::env::temp_dir().join(format!("flowhmc-mpi-{name}-{}", std::process::id()));
    let (status, out, err) = mpirun(ranks, &exe, &[name, "--exact", "--nocapture", "--test-threads=1"], &dir);
    assert!(status.success(), "{name} on {ranks} ranks: {status}\n{out}\n{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Whether this process is one of the ranks (else it is the launcher).
fn is_rank() -> bool {
    std::env::var_os(RANK_ENV).is_some()
}

/// The process grid of `size` ranks used by the tests: all ranks along time.
fn grid(size: usize) -> [usize; 4] {
    [1, 1, 1, size]
}

/// The number of ranks mpirun started.
fn world_size() -> usize {
    std::env::var("OMPI_COMM_WORLD_SIZE").expect("started by Open MPI's mpirun").parse().unwrap()
}

#[test]
fn collectives_agree_on_every_rank() {
    if !is_rank() {
        for ranks in [1, 2, 4] {
            launch("collectives_agree_on_every_rank", ranks);
        }
        return;
    }
    let comm = MpiComm::world().unwrap().arrange(&grid(world_size())).unwrap();
    let (rank, size) = (comm.rank(), comm.size());
    assert_eq!(rank_of(comm.grid(), comm.coords()), rank);

    // exact sums: terms of wildly different sizes dealt round-robin give the serial sum's bits
    let mut rng = StreamKey::new(7, Purpose::Test, 0).stream(0);
    let terms: Vec<f64> =
        (0..2000).map(|_| (rng.uniform() - 0.5) * 2f64.powi((rng.uniform() * 80.0) as i32 - 40)).collect();
    let mut serial = ExactSum::new();
    terms.iter().for_each(|&x| serial.add(x));
    let mut mine = [ExactSum::new(), ExactSum::new()];
    for (i, &x) in terms.iter().enumerate().filter(|(i, _)| i % size == rank) {
        mine[0].add(x);
        mine[1].add(i as f64);
    }
    comm.sum_exact(&mut mine);
    assert_eq!(mine[0].value().to_bits(), serial.value().to_bits());
    assert_eq!(mine[1].value(), (0..2000).sum::<usize>() as f64);

    assert_eq!(comm.max(rank as f64), (size - 1) as f64);
    assert!(comm.max(if rank == size - 1 { f64::NAN } else { 1.0 }).is_nan());
    let from_root = comm.broadcast(if rank == 0 { b"card".to_vec() } else { Vec::new() });
    assert_eq!(from_root, b"card");

    // an error on the last rank reaches all of them with its message; all Ok is Ok
    assert!(comm.agree(Ok(())).is_ok());
    let result =
        if rank == size - 1 { Err(Error::Card(format!("bad value on rank {rank}"))) } else { Ok(()) };
    let e = comm.agree(result).unwrap_err().to_string();
    assert_eq!(e, format!("invalid run card: bad value on rank {}", size - 1));

    // a face sent forward in time arrives from the backward neighbour
    let received = comm.start_exchange(3, true, vec![rank as u8; 3], 3).finish();
    assert_eq!(received, vec![((rank + size - 1) % size) as u8; 3]);

    let gathered = comm.gather(vec![rank as u8, 9]);
    if rank == 0 {
        assert_eq!(gathered.unwrap(), (0..size).map(|r| vec![r as u8, 9]).collect::<Vec<_>>());
    } else {
        assert!(gathered.is_none());
    }
    let parts = (rank == 0).then(|| (0..size).map(|r| vec![2 * r as u8]).collect());
    assert_eq!(comm.scatter(parts), vec![2 * rank as u8]);
}

#[test]
fn a_grid_for_another_number_of_ranks_is_refused_on_every_rank() {
    if !is_rank() {
        launch("a_grid_for_another_number_of_ranks_is_refused_on_every_rank", 2);
        return;
    }
    let e = MpiComm::world().unwrap().arrange(&[1, 1, 3, 1]).unwrap_err().to_string();
    assert!(e.contains("needs 3 ranks, the program runs on 2"), "{e}");
}

#[test]
fn gauge_force_and_even_odd_cg_on_ranks_equal_the_whole_lattice() {
    if !is_rank() {
        for ranks in [1, 2, 4] {
            launch("gauge_force_and_even_odd_cg_on_ranks_equal_the_whole_lattice", ranks);
        }
        return;
    }
    // every rank computes the whole lattice alone as the reference for its block; 4 ranks cut
    // z and t, 2 ranks t
    let dims = [4, 4, 8, 8];
    let size = world_size();
    let grid = if size == 4 { [1, 1, 2, 2] } else { grid(size) };
    let whole = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&dims).unwrap()), 3);
    let wl = whole.lattice().clone();
    let lat =
        Arc::new(Lattice::distributed(&dims, MpiComm::world().unwrap().arrange(&grid).unwrap()).unwrap());
    let u = GaugeField::<Su3>::hot(lat.clone(), 3);
    for site in 0..lat.volume() {
        for mu in 0..4 {
            assert!(u.link(site, mu).sub(&whole.link(lat.global_site(site), mu)).norm_sqr() == 0.0);
        }
    }
    let action = GaugeAction::new(GaugeActionKind::Iwasaki, 2.3);
    assert_eq!(action.value(&u).to_bits(), action.value(&whole).to_bits());
    let (mut p, mut wp) = (MomentumField::<Su3>::zeros(&lat), MomentumField::<Su3>::zeros(&wl));
    action.force(&u, 1.0, &mut p);
    action.force(&whole, 1.0, &mut wp);
    for site in 0..lat.volume() {
        for mu in 0..4 {
            assert_eq!(p.at(&lat, site, mu), wp.at(&wl, lat.global_site(site), mu), "force at site {site}");
        }
    }
    let params = SolverParams { tolerance: 1e-10, max_iterations: 1000 };
    let solve_on = |u: &GaugeField<Su3>| {
        let cb = Checkerboard::new(u.lattice().clone()).unwrap();
        let w = WilsonOperator::<Su3, 4>::new(u, &cb, 0.13, Boundary::ANTIPERIODIC).unwrap();
        let b = SpinorField::<Su3, 4>::gaussian_full(&cb, 4, Purpose::Pseudofermion, 0);
        let (x, report) = solve(&w, &b, None, Method::Cg, true, &params).unwrap();
        (cb, x, report)
    };
    let (cb, x, report) = solve_on(&u);
    let (wcb, wx, wreport) = solve_on(&whole);
    assert_eq!(
        (report.iterations, report.residual.to_bits()),
        (wreport.iterations, wreport.residual.to_bits())
    );
    for site in 0..lat.volume() {
        for spin in 0..4 {
            for c in 0..3 {
                let (a, b) = (x.get(&cb, site, spin, c), wx.get(&wcb, lat.global_site(site), spin, c));
                assert!(a.re.to_bits() == b.re.to_bits() && a.im.to_bits() == b.im.to_bits());
            }
        }
    }
}

/// A small Nf = 2 even/odd card with a Hasenbusch mass and the Wilson flow, writing "out".
const NF2_CARD: &str = "[lattice]\ndims = [4, 4, 4, 8]\n[gauge]\ngroup = \"su3\"\naction = \"iwasaki\"\n\
    beta = 2.5\n[update]\nkind = \"hmc\"\ntrajectory_length = 0.5\nintegrator = \"omelyan\"\nsteps = 4\n\
    [run]\ntrajectories = 3\nthermalization = 1\nseed = 7\nstart = \"hot\"\ncheckpoint_every = 2\n\
    output = \"out\"\n[measure]\nflow = { epsilon = 0.05, t_max = 0.2, every = 2 }\n[[fermions]]\n\
    kind = \"wilson\"\nflavors = 2\nkappa = 0.12\neven_odd = true\nhasenbusch = [0.1]\n\
    solver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }\n";

#[test]
fn the_command_on_ranks_repeats_one_process_and_fails_on_every_rank_together() {
    if is_rank() {
        return; // the launcher runs the command itself
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_flowhmc"));
    let scratch = std::env::temp_dir().join(format!("flowhmc-mpi-command-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let in_dir = |name: &str, card: &str| {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("card.toml"), card).unwrap();
        dir
    };
    let files = |dir: &Path| {
        ["checkpoint.cfg", "measurements.jsonl"].map(|f| std::fs::read(dir.join("out").join(f)).unwrap())
    };
    let one = in_dir("one", NF2_CARD);
    let (status, _, err) = mpirun(1, exe, &["run", "card.toml"], &one);
    assert!(status.success(), "{err}");
    let want = files(&one);
    for (ranks, grid) in [(2, ""), (4, "process_grid = [1, 2, 1, 2]\n")] {
        let dir = in_dir(&format!("ranks{ranks}"), &NF2_CARD.replace("[run]\n", &format!("[run]\n{grid}")));
        let (status, out, err) = mpirun(ranks, exe, &["run", "card.toml"], &dir);
        assert!(status.success(), "{ranks} ranks: {err}");
        assert_eq!(out.matches("results in out").count(), 1, "rank 0 alone prints: {out}");
        assert!(files(&dir) == want, "{ranks} ranks: checkpoint and measurements differ from one process");
    }
    // errors found on the ranks (a solver that cannot converge) and on rank 0 (an unreadable
    // start file): every rank exits with status 2 and one error line is printed
    std::fs::write(scratch.join("junk.cfg"), b"junk").unwrap();
    for (name, from, to, expected) in [
        ("solver", "max_iterations = 1000", "max_iterations = 3", "CG did not converge"),
        (
            "start",
            "start = \"hot\"",
            "start = \"../junk.cfg\"",
            "not a configuration file (flowhmc, NERSC, ILDG or openQCD)",
        ),
        ("grid", "[run]\n", "[run]\nprocess_grid = [1, 1, 1, 4]\n", "needs 4 ranks, the program runs on 2"),
    ] {
        let dir = in_dir(name, &NF2_CARD.replace(from, to));
        let (status, _, err) = mpirun(2, exe, &["run", "card.toml"], &dir);
        assert_eq!(status.code(), Some(2), "{name}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("flowhmc: error:")).collect();
        assert!(lines.len() == 1 && lines[0].contains(expected), "{name}: {err}");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn the_mpi_host_example_repeats_the_rust_chain() {
    use flowhmc::ffi::{Context, HostSlice, HostSliceMut};
    if is_rank() {
        return; // the launcher builds and runs the example
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let scratch = std::env::temp_dir().join(format!("flowhmc-mpi-host-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let exe = scratch.join("mpi_host");
    let status = Command::new("mpicxx")
        .args(["-std=c++17", "-O2", "-Wall", "-I"])
        .arg(root.join("include"))
        .arg("-I")
        .arg(Path::new(env!("OUT_DIR")).join("cxxbridge/include"))
        .arg(root.join("cpp/mpi_host.cpp"))
        .arg("-o")
        .arg(&exe)
        .arg(deps.join("libflowhmc.a"))
        .args(["-lstdc++", "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"])
        .status()
        .expect("mpicxx (Debian: libopenmpi-dev)");
    assert!(status.success(), "mpicxx failed on cpp/mpi_host.cpp");
    std::fs::write(scratch.join("parameters.toml"), NF2_HOST_PARAMETERS).unwrap();
    // the same chain through the Rust API on one process, from the same cold field
    let dims = [4, 4, 4, 8];
    let mut ctx = Context::new(&dims, NF2_HOST_PARAMETERS).unwrap();
    let mut field = cold_su3_host_field(dims.iter().product());
    let mut expected: Vec<String> = (0..3)
        .map(|n| {
            let r = ctx.update(HostSliceMut::F64(&mut field)).unwrap();
            format!(
                "update {n} {} {:?} {:?} {}",
                u8::from(r.accepted),
                r.dh,
                r.plaquette,
                r.solver_iterations
            )
        })
        .collect();
    expected.push(format!("plaquette {:?}", ctx.plaquette(HostSlice::F64(&field)).unwrap()));
    for ranks in [1, 2] {
        let (status, out, err) = mpirun(ranks, &exe, &["parameters.toml"], &scratch);
        assert!(status.success(), "mpi_host on {ranks} ranks: {err}\n{out}");
        let lines: Vec<&str> = out.lines().collect();
        let reported: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("update") || l.starts_with("plaquette"))
            .map(|l| {
                // the host prints %.17g: compare the values, not their spelling
                let words: Vec<&str> = l.split(' ').collect();
                let value = |w: &str| format!("{:?}", w.parse::<f64>().unwrap());
                match words.as_slice() {
                    ["update", n, a, dh, p, it] => format!("update {n} {a} {} {} {it}", value(dh), value(p)),
                    ["plaquette", p] => format!("plaquette {}", value(p)),
                    _ => panic!("unexpected line {l}"),
                }
            })
            .collect();
        assert_eq!(reported, expected, "{ranks} ranks");
        if ranks > 1 {
            assert!(
                lines.iter().any(|l| l.starts_with("refused:") && l.contains("both pass the coordinates")),
                "{out}"
            );
        }
        assert_eq!(lines.last(), Some(&"ok"), "{out}");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}
