//! A fuzzer of the `flowhmc` command (issue 17): mutated run cards and mutated configuration
//! files, each run as a subprocess; no input may make the command panic, abort, die of a
//! signal or hang. It is a test-time generator (no cargo-fuzz, so CI needs no nightly):
//! deterministic, with its own splitmix64 generator and a fixed seed; case `i` is built from
//! the seed and `i` alone, so a failure names the case that reproduces it.
//!
//! - Cards: the built-in default card, the complete cards of README.md (model files replaced
//!   by a stand-in file) and a few small cards of this file (2D U(1) with `[[fermions]]`, 4D
//!   SU(3) with nested levels and the Wilson flow, 2D phi^4) get one to three mutations:
//!   a key or a table deleted, a table duplicated or added, a key added (unknown or known), a
//!   value replaced by one of another type or an extreme one, the dims changed, a name (kind,
//!   group, action, integrator, ...) or a number changed; and sometimes bytes truncated,
//!   flipped or inserted. `run.output` is always forced into this test's scratch directory
//!   (and the command runs there), so a valid card writes nowhere else.
//! - Files: small valid NERSC files and checkpoints of real runs get one to three mutations
//!   of their headers (values huge, negative, NaN, missing, duplicated, unknown keys), of
//!   their data (bytes flipped, values replaced with the checksum fixed), truncated or
//!   appended to; a small card starts from them (`start = "PATH"`) or resumes a run whose
//!   checkpoint they are. A file whose mutation must make it invalid (a wrong checksum,
//!   dims, plaquette, a NaN link, a wrong length) must be refused, and a file the command
//!   reads must be left as it was.
//!
//! Every case runs under `ulimit -v` 4 GiB with a timeout. It passes with exit 0, or with
//! exit 2 and a last stderr line `flowhmc: error: ...` that is the only error line (progress
//! lines come before it), nothing panicked. A case still running after [`HANG_LIMIT`] is a
//! hang unless its chain had started (measurements.jsonl exists); a running chain is stopped
//! after [`RUNNING_LIMIT`]. New cases stop after [`BUDGET`] or [`CASES`] cases (every
//! [`FILE_EVERY`]th a file). `FLOWHMC_FUZZ_SEED` and `FLOWHMC_FUZZ_SECONDS` change the seed and
//! the budget (to search longer locally); `FLOWHMC_FUZZ_CASE` runs only that case.

#![cfg(unix)]

use flowhmc::chain::card::Card;
use flowhmc::field::GaugeField;
use flowhmc::geometry::Lattice;
use flowhmc::group::{Su3, U1};
use flowhmc::io::{ildg, native, nersc, openqcd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The seed of every case (unless `FLOWHMC_FUZZ_SEED` says otherwise).
const SEED: u64 = 0x5eed_f1a5_4c17_0017;
/// Cases per run of the test.
const CASES: usize = 1000;
/// Every this many cases one is a mutated configuration file, the others are mutated cards.
const FILE_EVERY: usize = 4;
/// No new case starts after this time.
const BUDGET: Duration = Duration::from_secs(90);
/// A case that has not started its chain by then hangs.
const HANG_LIMIT: Duration = Duration::from_secs(10);
/// A case whose chain has started is stopped after this time (it is a valid card).
const RUNNING_LIMIT: Duration = Duration::from_secs(2);
/// The address-space limit of every case, in KiB (4 GiB).
const ULIMIT_KIB: u64 = 4 << 20;

/// splitmix64: a small, fast generator good enough to choose mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, case: usize) -> Rng {
        let mut r = Rng(seed ^ (case as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------
// Values a mutation puts into a card
// ---------------------------------------------------------------------------------------

/// TOML values of every type, extreme ones and plain small ones.
fn any_value(rng: &mut Rng) -> String {
    const FIXED: [&str; 34] = [
        "0",
        "-1",
        "1",
        "2",
        "3",
        "7",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "4294967296",
        "1e308",
        "-1e308",
        "1e-320",
        "-0.0",
        "0.5",
        "0.25",
        "nan",
        "inf",
        "-inf",
        "\"\"",
        "\"hot\"",
        "\"cold\"",
        "\"/\"",
        "\"/dev/null\"",
        "\"/proc/self/maps\"",
        "[]",
        "[[]]",
        "[1, [2, [3]]]",
        "[0.1, 0.2]",
        "true",
        "false",
        "{}",
        "{ a = 1 }",
        "1979-05-27T07:32:00Z",
    ];
    match rng.below(10) {
        0 => format!("\"{}\"", "x".repeat(100_000)),
        1 => format!("[{}]", vec!["1"; 100_000].join(", ")),
        2 => {
            let depth = *rng.pick(&[10, 200, 5000]);
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
        3 => format!("\"{}\"", name(rng)),
        _ => rng.pick(&FIXED).to_string(),
    }
}

/// Numbers, extreme and plain (half of them small and plausible).
fn any_number(rng: &mut Rng) -> String {
    if rng.chance(0.5) {
        return rng.pick(&["1", "2", "3", "4", "8", "0.5", "0.1", "1.5", "6.0"]).to_string();
    }
    rng.pick(&[
        "0",
        "-1",
        "1",
        "2",
        "3",
        "16",
        "1000000",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "4294967296",
        "1e308",
        "1e-320",
        "-0.0",
        "nan",
        "inf",
        "-inf",
        "0.999",
        "1.0",
        "1e-12",
    ])
    .to_string()
}

/// Names of kinds, groups, actions, integrators, ... and some that are none.
fn name(rng: &mut Rng) -> &'static str {
    rng.pick::<&str>(&[
        "hmc",
        "flow-mh",
        "schedule",
        "flow-hmc",
        "u1",
        "su3",
        "su2",
        "U1",
        "wilson",
        "symanzik",
        "iwasaki",
        "leapfrog",
        "omelyan",
        "omelyan4",
        "force-gradient",
        "rk4",
        "cg",
        "mixed-cg",
        "antiperiodic",
        "periodic",
        "real-nvp",
        "u1-equivariant",
        "su3-spectral",
        "f32",
        "f64",
        "constant",
        "cosine",
        "hot",
        "cold",
        "gauge",
        "fermions",
        "fermions.0",
        "fermions.1",
        "phi4",
        "",
        " hmc",
    ])
}

/// Lattice extents, valid and not.
fn any_dims(rng: &mut Rng) -> String {
    rng.pick(&[
        "[4, 4]",
        "[2, 2]",
        "[6, 6]",
        "[8, 8, 8, 8]",
        "[4, 4, 4]",
        "[2, 2, 2, 2]",
        "[0, 0]",
        "[]",
        "[4]",
        "[3, 4]",
        "[4, 4, 4, 4, 4, 4, 4, 4]",
        "[65536, 65536, 65536, 65536]",
        "[9223372036854775807, 2]",
        "[18446744073709551614, 2]",
        "[4294967296, 4294967296]",
        "[100000, 100000]",
        "[8192, 8192]",
        "[1048576, 1024]",
        "[-4, 4]",
        "[4.0, 4]",
        "[\"4\", 4]",
        "[2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]",
    ])
    .to_string()
}

/// Keys a card knows (in some table) and keys it does not.
fn any_key(rng: &mut Rng) -> &'static str {
    rng.pick::<&str>(&[
        "threads",
        "thermalization_no_accept",
        "reversibility_check",
        "batch",
        "symmetrize",
        "hmc",
        "flow",
        "model",
        "exact_determinant",
        "hasenbusch",
        "even_odd",
        "name",
        "boundary",
        "levels",
        "hadrons",
        "dims",
        "seed",
        "frobnicate",
        "\"\"",
        "\"quoted key\"",
        "a.b",
        "run.output",
    ])
}

/// Whole tables a mutation appends (`MODEL` is replaced by the stand-in model file).
const TABLES: [&str; 12] = [
    "[measure]\nflow = { epsilon = 0.05, t_max = 0.2, every = 1 }\n",
    "[measure]\nhadrons = { every = 1, noise = 2 }\n",
    "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.12\nsolver = { kind = \"cg\", tolerance = 1e-8, max_iterations = 200 }\n",
    "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.1\nexact_determinant = true\nsolver = { kind = \"mixed-cg\", tolerance = 1e-6, max_iterations = 1 }\n",
    "[[update.levels]]\nintegrator = \"leapfrog\"\nsteps = 2\nmonomials = [\"gauge\"]\n",
    "[[update.levels]]\nintegrator = \"omelyan\"\nsteps = 1\nmonomials = [\"fermions\", \"phi4\"]\n",
    "[scalar]\nm2 = 1.0\nlambda = 0.5\n",
    "[gauge]\ngroup = \"su3\"\naction = \"iwasaki\"\nbeta = 6.0\n",
    "[flow]\nmodel = \"real-nvp\"\nlayers = 2\n",
    "[train]\nsteps = 1\nbatch = 1\nlearning_rate = 0.1\nseed = 1\noutput = \"m.safetensors\"\n",
    "[update]\nkind = \"flow-mh\"\nmodel = \"MODEL\"\n",
    "[frobnicate]\nx = 1\n",
];

// ---------------------------------------------------------------------------------------
// The corpus of cards
// ---------------------------------------------------------------------------------------

/// 2D U(1) with a Hasenbusch-split fermion doublet and hadron measurements.
const U1_FERMIONS: &str = r#"[lattice]
dims = [4, 4]
[gauge]
group = "u1"
action = "wilson"
beta = 2.0
[update]
kind = "hmc"
trajectory_length = 0.5
integrator = "omelyan"
steps = 4
[run]
trajectories = 3
thermalization = 1
seed = 5
start = "hot"
checkpoint_every = 2
output = "out"
[measure]
hadrons = { every = 1, noise = 1 }
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.2
hasenbusch = [0.1]
solver = { kind = "cg", tolerance = 1e-8, max_iterations = 500 }
"#;

/// Small 4D SU(3) with nested levels, a reversibility check and the Wilson flow.
const SU3_SMALL: &str = r#"[lattice]
dims = [4, 4, 4, 4]
[gauge]
group = "su3"
action = "symanzik"
beta = 5.0
[update]
kind = "hmc"
trajectory_length = 0.5
reversibility_check = 2
[[update.levels]]
integrator = "force-gradient"
steps = 2
monomials = ["gauge"]
[run]
trajectories = 2
thermalization = 0
seed = 9
start = "cold"
checkpoint_every = 1
output = "out"
threads = 1
[measure]
flow = { epsilon = 0.1, t_max = 0.3, every = 1 }
"#;

/// 2D phi^4.
const SCALAR: &str = r#"[lattice]
dims = [6, 6]
[scalar]
m2 = -1.0
lambda = 1.0
[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "leapfrog"
steps = 5
[run]
trajectories = 4
thermalization = 2
thermalization_no_accept = 1
seed = 3
start = "hot"
checkpoint_every = 3
output = "out"
"#;

/// The cards mutations start from: the default card, README's complete cards (their model
/// files replaced by `model`) and this file's.
fn corpus(model: &Path) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut cards = vec![flowhmc::chain::DEFAULT_CARD.to_string()];
    for block in readme.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()) {
        if block.contains("[lattice]") {
            let pieces: Vec<String> = block
                .split('"')
                .map(|p| if p.ends_with(".safetensors") { model.display().to_string() } else { p.into() })
                .collect();
            cards.push(pieces.join("\""));
        }
    }
    assert!(cards.len() >= 6, "README cards not found: {}", cards.len());
    cards.extend([U1_FERMIONS, SU3_SMALL, SCALAR].map(String::from));
    cards
}

// ---------------------------------------------------------------------------------------
// Card mutations
// ---------------------------------------------------------------------------------------

/// Whether `line` is a table header (`[table]` or `[[array]]`).
fn is_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

/// Whether `line` sets a key (`key = value`).
fn is_key_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with('#') && !t.starts_with('[') && t.contains('=')
}

/// Indices of the lines for which `f` holds.
fn lines_where(lines: &[String], f: impl Fn(&str) -> bool) -> Vec<usize> {
    (0..lines.len()).filter(|&i| f(&lines[i])).collect()
}

/// The lines of the table whose header is at `start`: up to the next header.
fn table_end(lines: &[String], start: usize) -> usize {
    (start + 1..lines.len()).find(|&i| is_header(&lines[i])).unwrap_or(lines.len())
}

/// Byte spans of the literals in `text` outside comments: (start, end, is_string).
fn literals(text: &str) -> Vec<(usize, usize, bool)> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += 1;
                }
                spans.push((start, (i + 1).min(b.len()), true));
                i += 1;
            }
            c if c.is_ascii_digit() || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                let before = if i == 0 { b' ' } else { b[i - 1] };
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"._+-".contains(&b[i])) {
                    i += 1;
                }
                if b" =[,{".contains(&before) {
                    spans.push((start, i, false));
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"._-".contains(&b[i])) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    spans
}

/// One structural mutation of a card's text; returns what it did.
fn mutate_card_once(rng: &mut Rng, text: &mut String, model: &Path) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let keys = lines_where(&lines, is_key_line);
    let headers = lines_where(&lines, is_header);
    let note = match rng.below(14) {
        0 if !keys.is_empty() => {
            let i = *rng.pick(&keys);
            format!("deleted `{}`", lines.remove(i))
        }
        1 if !headers.is_empty() => {
            let i = *rng.pick(&headers);
            let note = format!("deleted table {}", lines[i]);
            lines.drain(i..table_end(&lines, i));
            note
        }
        2 if !headers.is_empty() && rng.chance(0.5) => {
            let i = *rng.pick(&headers);
            let block: Vec<String> = lines[i..table_end(&lines, i)].to_vec();
            let at = if rng.chance(0.5) { lines.len() } else { i };
            let note = format!("duplicated table {}", lines[i]);
            lines.splice(at..at, block);
            note
        }
        3 => {
            let line = format!("{} = {}", any_key(rng), any_value(rng));
            let at = if headers.is_empty() || rng.chance(0.1) { 0 } else { *rng.pick(&headers) + 1 };
            let note = format!("added `{}` at line {}", clip(&line, 80), at + 1);
            lines.insert(at, line);
            note
        }
        4 | 5 if !keys.is_empty() => {
            let i = *rng.pick(&keys);
            let key = lines[i].split('=').next().unwrap().to_string();
            lines[i] = format!("{key}= {}", any_value(rng));
            format!("set `{}`", clip(&lines[i], 80))
        }
        6 => match lines.iter().position(|l| l.trim_start().starts_with("dims")) {
            Some(i) => {
                lines[i] = format!("dims = {}", any_dims(rng));
                format!("set `{}`", lines[i])
            }
            None => "no dims to change".into(),
        },
        7 | 8 => {
            let spans: Vec<_> = literals(text).into_iter().filter(|s| s.2).collect();
            if spans.is_empty() {
                return "no string to change".into();
            }
            let (a, b, _) = *rng.pick(&spans);
            let new = format!("\"{}\"", name(rng));
            let note = format!("replaced {} by {new}", clip(&text[a..b], 80));
            text.replace_range(a..b, &new);
            return note;
        }
        9..=11 => {
            let spans: Vec<_> = literals(text).into_iter().filter(|s| !s.2).collect();
            if spans.is_empty() {
                return "no number to change".into();
            }
            let (a, b, _) = *rng.pick(&spans);
            let new = any_number(rng);
            let note = format!("replaced number {} at byte {a} by {new}", &text[a..b]);
            text.replace_range(a..b, &new);
            return note;
        }
        _ => {
            let table = rng.pick(&TABLES).replace("MODEL", &model.display().to_string());
            let note = format!("added table {}", table.lines().next().unwrap());
            lines.extend(table.lines().map(String::from));
            note
        }
    };
    *text = lines.join("\n") + "\n";
    note
}

/// `s` cut to `n` characters (with a mark where it was cut).
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...[{} bytes]", &s[..i], s.len()),
        None => s.to_string(),
    }
}

/// Sets `output` of the `[run]` table to `output` (a text edit that keeps the card's form).
fn force_output_line(text: &str, output: &Path) -> String {
    let mut table = String::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        if is_header(line) {
            table = line.trim().trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        if table == "run" && is_key_line(line) && line.split('=').next().unwrap().trim() == "output" {
            lines.push(format!("output = {:?}", output.display().to_string()));
        } else {
            lines.push(line.to_string());
        }
    }
    lines.join("\n") + "\n"
}

/// The card's bytes with `run.output` made `output` wherever the bytes are a TOML table
/// whose `run.output` is something else (after byte mutations, or a key written another
/// way): then the table is written again.
fn confine_output(bytes: Vec<u8>, output: &Path) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(&bytes) else { return bytes };
    let Ok(mut table) = toml::from_str::<toml::Table>(text) else { return bytes };
    let wanted = toml::Value::String(output.display().to_string());
    match table.get_mut("run").and_then(toml::Value::as_table_mut) {
        Some(run) if run.get("output").is_some_and(|o| *o != wanted) => {
            run.insert("output".into(), wanted);
            toml::to_string(&table).unwrap().into_bytes()
        }
        _ => bytes,
    }
}

/// Byte-level damage: truncation, flipped bytes, inserted bytes.
fn damage(rng: &mut Rng, bytes: &mut Vec<u8>, notes: &mut Vec<String>) {
    if bytes.is_empty() {
        return;
    }
    match rng.below(3) {
        0 => {
            let at = rng.below(bytes.len());
            bytes.truncate(at);
            notes.push(format!("truncated at byte {at}"));
        }
        1 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                let mask = 1 + rng.below(255) as u8;
                bytes[at] ^= mask;
                notes.push(format!("byte {at} ^= {mask:#04x}"));
            }
        }
        _ => {
            let at = rng.below(bytes.len() + 1);
            let b = *rng.pick(&[0u8, 0xff, b'\r', b'"', b'[', b'=', b'\n', b'\\', 0xc3]);
            bytes.insert(at, b);
            notes.push(format!("inserted {b:#04x} at byte {at}"));
        }
    }
}

/// A mutated card writing into `output`.
fn mutated_card(rng: &mut Rng, corpus: &[String], model: &Path, output: &Path) -> (Vec<u8>, Vec<String>) {
    let base = rng.below(corpus.len());
    let mut text = corpus[base].clone();
    let mut notes = vec![format!("corpus card {base}")];
    let mutations = if rng.chance(0.5) { 1 } else { 2 + rng.below(2) };
    for _ in 0..mutations {
        notes.push(mutate_card_once(rng, &mut text, model));
    }
    let mut bytes = force_output_line(&text, output).into_bytes();
    if rng.chance(0.2) {
        damage(rng, &mut bytes, &mut notes);
    }
    (confine_output(bytes, output), notes)
}

// ---------------------------------------------------------------------------------------
// Configuration files
// ---------------------------------------------------------------------------------------

/// A valid configuration file and a small card of its theory and lattice.
struct BaseFile {
    name: &'static str,
    bytes: Vec<u8>,
    /// The card, with `START` for the start path.
    card: String,
    /// A finished run whose checkpoint this file is (native files only).
    run: Option<PathBuf>,
}

/// A small card of `theory` ("u1", "su3", "scalar") on `dims`, started from `START`.
fn small_card(theory: &str, dims: &str) -> String {
    let action = match theory {
        "scalar" => "[scalar]\nm2 = 0.5\nlambda = 0.5".to_string(),
        group => format!("[gauge]\ngroup = \"{group}\"\naction = \"wilson\"\nbeta = 5.5"),
    };
    format!(
        "[lattice]\ndims = {dims}\n{action}\n[update]\nkind = \"hmc\"\ntrajectory_length = 0.5\n\
         integrator = \"omelyan\"\nsteps = 3\n[run]\ntrajectories = 2\nthermalization = 1\nseed = 4\n\
         start = \"START\"\ncheckpoint_every = 1\noutput = \"out\"\nthreads = 1\n"
    )
}

/// Runs `card` (start "hot") into `dir` and returns its checkpoint.
fn checkpoint_of(card: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("out");
    let text = card.replace("START", "hot").replace("\"out\"", &format!("{:?}", out.display().to_string()));
    let path = dir.join("card.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, text).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_flowhmc"))
        .args(["run", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the base run in {} failed", dir.display());
    std::fs::read(out.join("checkpoint.cfg")).unwrap()
}

/// The valid files mutations start from: NERSC files in both storages and precisions, ILDG
/// files in both precisions, an openQCD file, and checkpoints of U(1), SU(3) and phi^4 runs.
fn base_files(scratch: &Path) -> Vec<BaseFile> {
    let su3 = small_card("su3", "[4, 4, 4, 4]");
    let u = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap()), 17);
    let mut files = Vec::new();
    for (name, storage, precision) in [
        ("nersc 3x3 f64", nersc::Storage::Full, nersc::Precision::F64),
        ("nersc two-row f32", nersc::Storage::TwoRow, nersc::Precision::F32),
    ] {
        let path = scratch.join("base.nersc");
        nersc::write(&u, &path, storage, precision).unwrap();
        files.push(BaseFile { name, bytes: std::fs::read(&path).unwrap(), card: su3.clone(), run: None });
    }
    for name in ["ildg f64", "ildg f32", "openqcd"] {
        let path = scratch.join("base.bin");
        match name {
            "ildg f64" => ildg::write(&u, &path, nersc::Precision::F64).unwrap(),
            "ildg f32" => ildg::write(&u, &path, nersc::Precision::F32).unwrap(),
            _ => openqcd::write(&u, &path).unwrap(),
        }
        files.push(BaseFile { name, bytes: std::fs::read(&path).unwrap(), card: su3.clone(), run: None });
    }
    for (name, card) in [
        ("checkpoint u1", small_card("u1", "[4, 4]")),
        ("checkpoint su3", su3.clone()),
        ("checkpoint scalar", small_card("scalar", "[4, 6]")),
    ] {
        let dir = scratch.join(name.replace(' ', "-"));
        let bytes = checkpoint_of(&card, &dir);
        files.push(BaseFile { name, bytes, card, run: Some(dir.join("out")) });
    }
    files
}

/// Header values a mutation writes into a NERSC header for `key`: half of the time one of
/// that key's kind.
fn nersc_value(rng: &mut Rng, key: &str) -> String {
    let numbers = ["18446744073709551616", "4294967296", "65536", "-4", "0", "3", "6", "8", "4 4"];
    let reals = ["nan", "NaN", "inf", "-inf", "1e308", "0.5", "-0.0", "0.0", "1", "0x1p-3", ""];
    let of_key: &[&str] = match key {
        k if k.starts_with("DIMENSION") => &numbers,
        "PLAQUETTE" | "LINK_TRACE" => &reals,
        "CHECKSUM" => &["0", "ffffffff", "0x12345678", "-1", "100000000", "", "nan", "g"],
        _ => &[],
    };
    if !of_key.is_empty() && rng.chance(0.5) {
        return rng.pick(of_key).to_string();
    }
    rng.pick(&[
        "18446744073709551616",
        "18446744073709551615",
        "9223372036854775807",
        "4294967296",
        "65536",
        "1073741824",
        "-4",
        "0",
        "1",
        "2",
        "6",
        "8",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e308",
        "",
        "abc",
        "0x",
        "ffffffffffffffff",
        "0.5",
        "-0.0",
        "IEEE32LITTLE",
        "IEEE64LITTLE",
        "IEEE32",
        "IEEE16BIG",
        "4D_SU3_GAUGE",
        "4D_SU3_GAUGE_3x3",
        "4D_SU2_GAUGE",
        "ANTIPERIODIC",
    ])
    .to_string()
}

/// Header keys a NERSC mutation sets (the last two are not in the files written here).
const NERSC_KEYS: [&str; 15] = [
    "DIMENSION_1",
    "DIMENSION_2",
    "DIMENSION_3",
    "DIMENSION_4",
    "CHECKSUM",
    "FLOATING_POINT",
    "DATATYPE",
    "PLAQUETTE",
    "LINK_TRACE",
    "BOUNDARY_1",
    "BOUNDARY_4",
    "HDR_VERSION",
    "STORAGE_FORMAT",
    "DIMENSION_5",
    "ENSEMBLE_ID",
];

/// Whether a NERSC file with `value` for `key` instead of `old` cannot be a valid file.
fn nersc_edit_breaks(key: &str, old: Option<&str>, value: &str) -> bool {
    let Some(old) = old else { return false };
    match key {
        k if k.starts_with("DIMENSION_") => value.parse::<usize>().ok() != old.parse().ok(),
        "CHECKSUM" => {
            u32::from_str_radix(value.trim_start_matches("0x"), 16).ok() != u32::from_str_radix(old, 16).ok()
        }
        "PLAQUETTE" | "LINK_TRACE" => match (value.parse::<f64>(), old.parse::<f64>()) {
            (Ok(v), Ok(o)) => v.is_nan() || (v - o).abs() >= 1e-7,
            (Err(_), Ok(_)) => true,
            (_, Err(_)) => false,
        },
        "DATATYPE" => value != old,
        _ => false,
    }
}

/// The checksum a NERSC header states of big-endian data: the wrapping sum of its 32-bit
/// words (both halves of each double).
fn nersc_checksum(data: &[u8]) -> u32 {
    data.chunks_exact(4).fold(0u32, |s, c| s.wrapping_add(u32::from_be_bytes(c.try_into().unwrap())))
}

/// FNV-1a 64, the checksum of native files.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A value that replaces a stored real.
fn any_real(rng: &mut Rng) -> f64 {
    *rng.pick(&[f64::NAN, f64::INFINITY, -f64::INFINITY, 1e308, 2.0, 0.0, -0.0, 1e-300])
}

/// Whether a link entry `old` replaced by `new` can no longer be a group element.
fn breaks_link(old: f64, new: f64) -> bool {
    !new.is_finite() || (new - old).abs() > 1e-3
}

/// A mutated file: its bytes, what was done, and whether it must be refused.
struct MutatedFile {
    bytes: Vec<u8>,
    notes: Vec<String>,
    must_refuse: bool,
}

/// One to three damages of a binary file (ILDG, openQCD): truncation, flipped or inserted
/// bytes. Not every one must be refused (a flipped byte of the ILDG logical file name is
/// harmless), but none may crash the command.
fn mutate_bytes(rng: &mut Rng, base: &[u8]) -> MutatedFile {
    let (mut bytes, mut notes) = (base.to_vec(), Vec::new());
    for _ in 0..1 + rng.below(3) {
        damage(rng, &mut bytes, &mut notes);
    }
    MutatedFile { bytes, notes, must_refuse: false }
}

/// One to three mutations of a NERSC file (header lines, data with or without the checksum
/// fixed, length).
fn mutate_nersc(rng: &mut Rng, base: &[u8]) -> MutatedFile {
    let marker = b"END_HEADER\n";
    let end = base.windows(marker.len()).position(|w| w == marker).unwrap() + marker.len();
    let width = if String::from_utf8_lossy(&base[..end]).contains("IEEE64") { 8 } else { 4 };
    let mut lines: Vec<String> = String::from_utf8_lossy(&base[..end]).lines().map(String::from).collect();
    let mut data = base[end..].to_vec();
    let (mut notes, mut must_refuse) = (Vec::new(), false);
    // a flipped data byte breaks the checksum, unless a later mutation fixes it
    let mut unfixed_flip = false;
    let mut tail: Option<usize> = None; // truncate the whole file here
    let mut append = Vec::new();
    let set = |lines: &mut Vec<String>, key: &str, value: &str| {
        let line = format!("{key} = {value}");
        match lines.iter().position(|l| l.split('=').next().unwrap().trim() == key) {
            Some(i) => lines[i] = line,
            None => {
                let at = lines.len().saturating_sub(1);
                lines.insert(at, line)
            }
        }
    };
    let get = |lines: &[String], key: &str| {
        lines.iter().find_map(|l| {
            l.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_string())
        })
    };
    for _ in 0..1 + rng.below(3) {
        match rng.below(9) {
            0 | 1 => {
                let key = *rng.pick(&NERSC_KEYS);
                let value = nersc_value(rng, key);
                must_refuse |= nersc_edit_breaks(key, get(&lines, key).as_deref(), &value);
                set(&mut lines, key, &value);
                notes.push(format!("{key} = {value}"));
            }
            2 if lines.len() > 2 => {
                let i = 1 + rng.below(lines.len() - 2);
                let required = ["DIMENSION", "CHECKSUM", "DATATYPE", "FLOATING"];
                must_refuse |= required.iter().any(|r| lines[i].starts_with(r));
                notes.push(format!("deleted `{}`", lines.remove(i)));
            }
            3 if lines.len() > 2 => {
                let i = 1 + rng.below(lines.len() - 2);
                let key = lines[i].split('=').next().unwrap().trim().to_string();
                let line = format!("{key} = {}", nersc_value(rng, &key));
                notes.push(format!("added `{line}` before `{}`", lines[i]));
                lines.insert(i, line);
            }
            2..=4 => {
                let which = rng.below(3);
                match which {
                    0 => _ = lines.remove(0),
                    1 => _ = lines.pop(),
                    _ => lines.iter_mut().for_each(|l| l.push('\r')),
                }
                must_refuse = true;
                notes.push(["no BEGIN_HEADER", "no END_HEADER", "CRLF header"][which].into());
            }
            5 => {
                let at = rng.below(data.len());
                data[at] ^= 1 + rng.below(255) as u8;
                unfixed_flip = true;
                notes.push(format!("data byte {at} flipped"));
            }
            6 => {
                let at = rng.below(data.len() / width) * width;
                let x = any_real(rng);
                let old = if width == 8 {
                    let old = f64::from_be_bytes(data[at..at + 8].try_into().unwrap());
                    data[at..at + 8].copy_from_slice(&x.to_be_bytes());
                    old
                } else {
                    let old = f32::from_be_bytes(data[at..at + 4].try_into().unwrap());
                    data[at..at + 4].copy_from_slice(&(x as f32).to_be_bytes());
                    old as f64
                };
                must_refuse |= breaks_link(old, x);
                set(&mut lines, "CHECKSUM", &format!("{:08x}", nersc_checksum(&data)));
                unfixed_flip = false;
                notes.push(format!("data value at byte {at} = {x:e}, CHECKSUM fixed"));
            }
            7 => {
                let at = rng.below(end + data.len());
                tail = Some(tail.map_or(at, |t| t.min(at)));
                must_refuse = true;
                notes.push(format!("truncated at byte {at}"));
            }
            _ => {
                let extra = if rng.chance(0.5) { data.clone() } else { vec![0xa5; 1 + rng.below(100)] };
                notes.push(format!("{} bytes appended", extra.len()));
                append.extend(extra);
                must_refuse = true;
            }
        }
    }
    must_refuse |= unfixed_flip;
    let mut bytes = (lines.join("\n") + "\n").into_bytes();
    bytes.extend_from_slice(&data);
    bytes.extend_from_slice(&append);
    // a cut past the end (of a header that became shorter) leaves the file whole
    if let Some(t) = tail.filter(|&t| t < bytes.len()) {
        bytes.truncate(t);
        must_refuse = true;
    }
    MutatedFile { bytes, notes, must_refuse }
}

/// JSON values a mutation writes into a native header.
fn json_value(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    let values = [
        json!(0),
        json!(-1),
        json!(1),
        json!(2),
        json!(u64::MAX),
        json!(1e308),
        json!(4294967296u64),
        json!(""),
        json!("u1"),
        json!("su3"),
        json!("scalar"),
        json!("su2"),
        json!("flowhmc-gauge"),
        json!("0000000000000000"),
        json!([]),
        json!([4]),
        json!([0, 0]),
        json!([4, 4]),
        json!([4, 6]),
        json!([4, 4, 4, 4]),
        json!([4294967296u64, 4294967296u64]),
        json!([65536, 65536, 65536, 65536]),
        json!([65536, 65536]),
        json!([-4, 4]),
        json!([4, 4, 4, 4, 4, 4, 4, 4]),
        json!(["4", "4"]),
        json!([4.5, 4]),
        json!(null),
        json!({}),
        json!({"next_update": u64::MAX, "measured": u64::MAX}),
        json!({"next_update": 1, "measured": 5}),
        json!(true),
    ];
    rng.pick(&values).clone()
}

/// Header keys whose change makes a native file invalid (metadata may be anything).
const NATIVE_KEYS: [&str; 5] = ["format", "version", "group", "dims", "checksum"];

/// One to three mutations of a native file (header keys, metadata, data with or without the
/// checksum fixed, length).
fn mutate_native(rng: &mut Rng, base: &[u8]) -> MutatedFile {
    let end = base.iter().position(|&b| b == b'\n').unwrap();
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&base[..end]).unwrap();
    let mut data = base[end + 1..].to_vec();
    let (mut notes, mut must_refuse) = (Vec::new(), false);
    // a flipped data byte or an edited or removed checksum breaks the checksum, unless a later
    // mutation fixes it
    let (mut unfixed_flip, mut checksum_broken) = (false, false);
    let mut raw: Vec<(usize, u8)> = Vec::new(); // header bytes flipped after writing it
    let (mut tail, mut append, mut no_newline, mut duplicate) = (None, Vec::new(), false, None);
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            0 | 1 => {
                let key = *rng.pick(&[NATIVE_KEYS.as_slice(), &["metadata", "extra"]].concat());
                let value = json_value(rng);
                let changed = header.get(key) != Some(&value);
                if key == "checksum" {
                    checksum_broken |= changed;
                } else {
                    must_refuse |= changed && key != "metadata";
                }
                notes.push(format!("{key}: {value}"));
                header.insert(key.into(), value);
            }
            2 => {
                let key = *rng.pick(&[NATIVE_KEYS.as_slice(), &["metadata"]].concat());
                if key == "checksum" {
                    checksum_broken = true;
                } else {
                    must_refuse |= key != "metadata";
                }
                header.remove(key);
                notes.push(format!("no {key}"));
            }
            3 => {
                let key = *rng.pick(&["next_update", "measured"]);
                let value = json_value(rng);
                notes.push(format!("metadata.{key}: {value}"));
                if let Some(m) = header.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                    m.insert(key.into(), value);
                }
            }
            4 => {
                let at = rng.below(data.len());
                data[at] ^= 1 + rng.below(255) as u8;
                unfixed_flip = true;
                notes.push(format!("data byte {at} flipped"));
            }
            5 => {
                let at = rng.below(data.len() / 8) * 8;
                let x = any_real(rng);
                let old = f64::from_le_bytes(data[at..at + 8].try_into().unwrap());
                data[at..at + 8].copy_from_slice(&x.to_le_bytes());
                // a scalar field may hold any finite value
                let scalar = header.get("group").and_then(|g| g.as_str()) == Some("scalar");
                must_refuse |= if scalar { !x.is_finite() } else { breaks_link(old, x) };
                header.insert("checksum".into(), format!("{:016x}", fnv1a(&data)).into());
                (unfixed_flip, checksum_broken) = (false, false);
                notes.push(format!("data value at byte {at} = {x:e}, checksum fixed"));
            }
            6 => {
                let at = rng.below(end);
                raw.push((at, 1 + rng.below(255) as u8));
                notes.push(format!("header byte {at} flipped"));
            }
            7 => {
                tail = Some(rng.below(base.len()));
                notes.push(format!("truncated at byte {}", tail.unwrap()));
            }
            8 => {
                let extra = if rng.chance(0.5) { data.clone() } else { vec![0x5a; 1 + rng.below(100)] };
                notes.push(format!("{} bytes appended", extra.len()));
                append.extend(extra);
                must_refuse = true;
            }
            _ => {
                if rng.chance(0.5) {
                    no_newline = true;
                    must_refuse = true;
                    notes.push("no newline after the header".into());
                } else {
                    let key = *rng.pick(&NATIVE_KEYS);
                    duplicate = Some(key);
                    must_refuse = true;
                    notes.push(format!("{key} given twice"));
                }
            }
        }
    }
    // the keys in the order the library writes them (is_native looks for `{"format":...`)
    let mut keys: Vec<&String> = header.keys().collect();
    keys.sort_by_key(|k| {
        ["format", "version", "group", "dims", "checksum", "metadata"].iter().position(|o| o == k)
    });
    let entries: Vec<String> = keys.iter().map(|k| format!("{:?}:{}", k, header[k.as_str()])).collect();
    let mut text = format!("{{{}}}", entries.join(","));
    if let Some(key) = duplicate {
        text.insert_str(1, &format!("{:?}:{},", key, json_value(rng)));
    }
    must_refuse |= unfixed_flip || checksum_broken;
    let mut bytes = text.into_bytes();
    for (at, mask) in raw {
        if at < bytes.len() {
            bytes[at] ^= mask;
        }
    }
    if !no_newline {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&data);
    bytes.extend_from_slice(&append);
    // a cut past the end (of a header that became shorter) leaves the file whole
    if let Some(t) = tail.filter(|&t| t < bytes.len()) {
        bytes.truncate(t);
        must_refuse = true;
    }
    MutatedFile { bytes, notes, must_refuse }
}

// ---------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------

/// How a case ended.
enum Outcome {
    /// Exit 0.
    Finished,
    /// Stopped while its chain was running (a valid card).
    Running,
    /// Exit 2 with one error line: the line.
    Refused(String),
    /// Anything else: what went wrong.
    Failed(String),
}

/// Runs `flowhmc ARGS` in `dir` under the address-space limit and the timeouts; `output` is
/// the run directory whose measurements.jsonl shows a started chain.
fn run_case(dir: &Path, args: &[&str], output: &Path) -> Outcome {
    let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
    let stderr_path = dir.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ULIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_flowhmc"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let running = chain_started(output);
        let elapsed = started.elapsed();
        if (running && elapsed > RUNNING_LIMIT) || elapsed > HANG_LIMIT {
            child.kill().unwrap();
            child.wait().unwrap();
            if running || chain_started(output) {
                return Outcome::Running;
            }
            let err = String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap()).into_owned();
            return Outcome::Failed(format!(
                "hang: no chain after {HANG_LIMIT:?}; stderr:\n{}",
                excerpt(&err)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap()).into_owned();
    judge(status, &err)
}

/// The time stamp of the measurements of a run to be resumed, before it is resumed.
const LONG_AGO: std::time::SystemTime = std::time::SystemTime::UNIX_EPOCH;

/// Whether the run in `output` has started its chain: measurements.jsonl was written by the
/// case (a run to be resumed has one stamped [`LONG_AGO`]).
fn chain_started(output: &Path) -> bool {
    let modified = std::fs::metadata(output.join("measurements.jsonl")).and_then(|m| m.modified());
    modified.is_ok_and(|t| t > LONG_AGO)
}

/// `s`, or its first and last 1500 bytes when it is longer than 3000.
fn excerpt(s: &str) -> String {
    if s.len() <= 3000 {
        return s.to_string();
    }
    let (mut head, mut tail) = (1500, s.len() - 1500);
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n...\n{}", &s[..head], &s[tail..])
}

/// The outcome of a command that exited with `status` and wrote `stderr`.
fn judge(status: std::process::ExitStatus, stderr: &str) -> Outcome {
    let lines: Vec<&str> = stderr.lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("flowhmc: error:")).count();
    let panicked = lines.iter().any(|l| l.contains("panicked") || l.contains("RUST_BACKTRACE"));
    match (status.code(), status.signal()) {
        (Some(0), _) if !panicked => Outcome::Finished,
        (Some(2), _)
            if !panicked
                && errors == 1
                && lines.last().is_some_and(|l| l.starts_with("flowhmc: error: ")) =>
        {
            Outcome::Refused(lines.last().unwrap().to_string())
        }
        (code, signal) => Outcome::Failed(format!(
            "exit code {code:?}, signal {signal:?}, {errors} error lines; stderr:\n{}",
            excerpt(stderr)
        )),
    }
}

/// One case's description for a failure report.
struct Report {
    case: usize,
    what: String,
    notes: Vec<String>,
    input: String,
    problem: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(f, "=== case {} ({}): {}", self.case, self.what, self.notes.join("; "))?;
        writeln!(f, "{}", self.input)?;
        writeln!(f, "--- {}", self.problem)
    }
}

/// Tallies of a fuzzing run.
#[derive(Default)]
struct Tally {
    cards: usize,
    files: usize,
    finished: usize,
    running: usize,
    refused: usize,
    failures: Vec<Report>,
}

/// Everything the cases share.
struct Fixture {
    scratch: PathBuf,
    model: PathBuf,
    corpus: Vec<String>,
    files: Vec<BaseFile>,
    seed: u64,
}

/// The text of a card or file for a report: lossy, long ones cut.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut at = text.len().min(4000);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    if at < text.len() { format!("{}\n...[{} bytes in all]", &text[..at], text.len()) } else { text.into() }
}

/// Runs case `case` (a card or a file case) and records its outcome.
fn run_one(fx: &Fixture, case: usize, tally: &mut Tally) {
    let mut rng = Rng::new(fx.seed, case);
    let dir = fx.scratch.join(format!("case-{case}"));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("out");
    let card_path = dir.join("card.toml");
    let file_case = case % FILE_EVERY == FILE_EVERY - 1;
    let (what, notes, input, outcome) = if !file_case {
        tally.cards += 1;
        let (card, mut notes) = mutated_card(&mut rng, &fx.corpus, &fx.model, &output);
        std::fs::write(&card_path, &card).unwrap();
        let mut args = vec!["run", card_path.to_str().unwrap()];
        if rng.chance(0.05) {
            args.push("--resume");
            notes.push("--resume".into());
        }
        ("card", notes, shown(&card), run_case(&dir, &args, &output))
    } else {
        tally.files += 1;
        let base = &fx.files[rng.below(fx.files.len())];
        let mutated = if base.bytes.starts_with(b"BEGIN_HEADER") {
            mutate_nersc(&mut rng, &base.bytes)
        } else if base.run.is_some() {
            mutate_native(&mut rng, &base.bytes)
        } else {
            mutate_bytes(&mut rng, &base.bytes)
        };
        let mut notes = vec![base.name.to_string()];
        notes.extend(mutated.notes.iter().cloned());
        let resume = base.run.as_ref().filter(|_| rng.chance(0.4));
        let card_of = if rng.chance(0.1) { &fx.files[rng.below(fx.files.len())] } else { base };
        let (file, args);
        if let Some(run) = resume {
            notes.push("resumed from it".into());
            copy_dir(run, &output);
            let measurements = std::fs::File::options().write(true).open(output.join("measurements.jsonl"));
            measurements.unwrap().set_modified(LONG_AGO).unwrap();
            file = output.join("checkpoint.cfg");
            // the card the run was made with, writing here, with more trajectories
            let text = card_of.card.replace("START", "hot").replace("trajectories = 2", "trajectories = 4");
            let text = force_output_line(&text, &output);
            if let Ok(card) = Card::parse(&text, "card") {
                std::fs::write(output.join("card.toml"), card.to_toml()).unwrap();
            }
            std::fs::write(&card_path, text).unwrap();
            args = vec!["run", card_path.to_str().unwrap(), "--resume"];
        } else {
            file = dir.join("start.cfg");
            let text = card_of.card.replace("START", file.to_str().unwrap());
            std::fs::write(&card_path, force_output_line(&text, &output)).unwrap();
            args = vec!["run", card_path.to_str().unwrap()];
        }
        if !std::ptr::eq(card_of, base) {
            notes.push(format!("card of {}", card_of.name));
        }
        std::fs::write(&file, &mutated.bytes).unwrap();
        let mut outcome = run_case(&dir, &args, &output);
        if resume.is_none() && std::fs::read(&file).unwrap() != mutated.bytes {
            outcome = Outcome::Failed("the start file was changed".into());
        }
        let accepted = matches!(outcome, Outcome::Finished | Outcome::Running);
        if mutated.must_refuse && std::ptr::eq(card_of, base) && accepted {
            outcome = Outcome::Failed("a file that cannot be valid was accepted".into());
        }
        let input = format!(
            "file ({} bytes):\n{}",
            mutated.bytes.len(),
            shown(&mutated.bytes[..mutated.bytes.len().min(1200)])
        );
        ("file", notes, input, outcome)
    };
    match outcome {
        Outcome::Finished => tally.finished += 1,
        Outcome::Running => tally.running += 1,
        Outcome::Refused(_) => tally.refused += 1,
        Outcome::Failed(problem) => {
            let card = shown(&std::fs::read(&card_path).unwrap_or_default());
            let input = if what == "file" { format!("{input}\ncard:\n{card}") } else { input };
            tally.failures.push(Report { case, what: what.into(), notes, input, problem })
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Copies a run directory (files only, plots/ left out).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The number in the environment variable `key`, if set.
fn env_number(key: &str) -> Option<u64> {
    std::env::var(key).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v}: not a number")))
}

#[test]
fn mutated_cards_and_files_never_crash_the_command() {
    let scratch = std::env::temp_dir().join(format!("flowhmc-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let model = scratch.join("model.safetensors");
    std::fs::write(&model, b"stands in for a trained model").unwrap();
    let fx = Fixture {
        corpus: corpus(&model),
        files: base_files(&scratch),
        model,
        seed: env_number("FLOWHMC_FUZZ_SEED").unwrap_or(SEED),
        scratch: scratch.clone(),
    };
    let budget = env_number("FLOWHMC_FUZZ_SECONDS").map_or(BUDGET, Duration::from_secs);
    let cases: Vec<usize> = match env_number("FLOWHMC_FUZZ_CASE") {
        Some(case) => vec![case as usize],
        None => (0..CASES).collect(),
    };
    let started = Instant::now();
    let mut tally = Tally::default();
    for case in cases {
        if started.elapsed() > budget {
            break;
        }
        run_one(&fx, case, &mut tally);
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    for failure in &tally.failures {
        eprintln!("{failure}");
    }
    // straight to stderr, which the test harness does not capture: CI logs show the tally
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz: {} cases ({} cards, {} files) in {:.1} s: {} valid ({} finished, {} stopped while running), \
         {} refused, {} failures",
        tally.cards + tally.files,
        tally.cards,
        tally.files,
        started.elapsed().as_secs_f64(),
        tally.finished + tally.running,
        tally.finished,
        tally.running,
        tally.refused,
        tally.failures.len()
    );
    assert!(tally.failures.is_empty(), "{} failures (above)", tally.failures.len());
}

// ---------------------------------------------------------------------------------------
// What the fuzzer found, as plain CLI tests
// ---------------------------------------------------------------------------------------

/// `flowhmc ARGS` (in `dir`), judged as a fuzz case.
fn flowhmc(dir: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_flowhmc")).args(args).current_dir(dir).output().unwrap();
    judge(out.status, &String::from_utf8_lossy(&out.stderr))
}

/// The error line of a refused command (the test fails otherwise).
fn refused(outcome: Outcome) -> String {
    match outcome {
        Outcome::Refused(line) => line,
        Outcome::Failed(why) => panic!("{why}"),
        Outcome::Finished | Outcome::Running => panic!("accepted"),
    }
}

/// The files of a run directory and their bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_resume_refused_for_its_checkpoint_leaves_the_run_as_it_was() {
    let dir = std::env::temp_dir().join(format!("flowhmc-fuzz-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("out");
    let card = small_card("u1", "[4, 4]")
        .replace("START", "hot")
        .replace("\"out\"", &format!("{:?}", out.display().to_string()));
    std::fs::create_dir_all(&dir).unwrap();
    let card_path = dir.join("card.toml");
    std::fs::write(&card_path, card).unwrap();
    let path = card_path.to_str().unwrap();
    assert!(matches!(flowhmc(&dir, &["run", path]), Outcome::Finished));
    // a killed run leaves records past its checkpoint; a resume would drop them
    let mut records = std::fs::read(out.join("measurements.jsonl")).unwrap();
    records.extend_from_slice(b"{\"trajectory\": 4}\n");
    std::fs::write(out.join("measurements.jsonl"), records).unwrap();
    let checkpoint = out.join("checkpoint.cfg");
    let other = GaugeField::<U1>::hot(Arc::new(Lattice::new(&[4, 6]).unwrap()), 1);
    native::write(&other, serde_json::json!({"next_update": 3, "measured": 2}), &checkpoint).unwrap();
    let before = snapshot(&out);
    let e = refused(flowhmc(&dir, &["run", path, "--resume"]));
    assert!(e.contains("checkpoint.cfg: the file holds dims [4, 6], the lattice is [4, 4]"), "{e}");
    assert!(snapshot(&out) == before, "a refused resume changed the run");
    // metadata that a run with this card cannot have written
    let u = GaugeField::<U1>::hot(Arc::new(Lattice::new(&[4, 4]).unwrap()), 1);
    for (next, measured) in [(u64::MAX, 2), (3, 1), (1, 2)] {
        native::write(&u, serde_json::json!({"next_update": next, "measured": measured}), &checkpoint)
            .unwrap();
        let before = snapshot(&out);
        let e = refused(flowhmc(&dir, &["run", path, "--resume"]));
        let expected =
            format!("next_update = {next} and measured = {measured} disagree with run.thermalization = 1");
        assert!(e.contains(&expected), "{e}");
        assert!(snapshot(&out) == before, "a refused resume changed the run");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
