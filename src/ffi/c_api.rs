//! The plain C ABI of `include/flowhmc/flowhmc.h` (read the header for the conventions).
//!
//! Every entry point catches panics, turns errors into a status code plus a message kept in
//! the context, and validates what the host passes (NULL pointers, enum values, buffer sizes,
//! alignment, overlapping buffers) before touching anything. Structs passed in carry their
//! size; only the bytes the host declared are read, the rest keep their defaults.
#![allow(non_camel_case_types)]

use super::context::{Context, HostSlice, HostSliceMut, ParameterSet, RngState, UpdateReport};
use super::{one_line, without_kind};
use crate::dirac::gamma::SpinBasis;
use crate::error::{Error, Result};
use crate::host::{
    GaugeLayout, LinkOrder, MatrixOrder, SiteOrder, SpinorLayout, SpinorOrder, host_directions,
};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Status codes of the C ABI (`flowhmc_status`).
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// A malformed or invalid parameter set.
    pub const PARAMETERS: i32 = 1;
    /// Bad host input (buffer, value, layout).
    pub const HOST_INPUT: i32 = 2;
    /// A missing, corrupt or mismatched file.
    pub const FILE: i32 = 3;
    /// A numerical failure.
    pub const NUMERICAL: i32 = 4;
    /// A bad flow model.
    pub const MODEL: i32 = 5;
    /// A NULL pointer where one is required.
    pub const NULL: i32 = 6;
    /// A caught panic.
    pub const INTERNAL: i32 = 7;
    /// A missing or failed compute device (CUDA driver, GPU, kernel compilation).
    pub const DEVICE: i32 = 8;
}

/// Why a call of the C ABI failed: a required pointer argument is NULL, or the library
/// refused or failed.
#[derive(Debug)]
enum Failure {
    /// The named argument is NULL (`FLOWHMC_ERROR_NULL`).
    Null(String),
    /// An error of the library; its variant gives the status code.
    Library(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Library(e)
    }
}

/// The result of a C ABI call's body.
type Outcome<T> = std::result::Result<T, Failure>;

/// A failed call as the host sees it: its status code and its message.
type Refusal = (c_int, String);

fn status_of(f: &Failure) -> c_int {
    match f {
        Failure::Null(_) => status::NULL,
        Failure::Library(Error::Card(_)) => status::PARAMETERS,
        Failure::Library(Error::Host(_)) => status::HOST_INPUT,
        Failure::Library(Error::Config(_) | Error::Io { .. }) => status::FILE,
        Failure::Library(Error::Numerical(_)) => status::NUMERICAL,
        Failure::Library(Error::Model(_)) => status::MODEL,
        Failure::Library(Error::Device(_)) => status::DEVICE,
    }
}

/// The message of a failure: one line naming the problem, without the kind that the status
/// code gives.
fn message_of(f: &Failure) -> String {
    match f {
        Failure::Null(what) => format!("{what}: NULL pointer"),
        Failure::Library(e) => one_line(&without_kind(e)),
    }
}

/// Fails with [`Failure::Null`] naming `what` if `p` is NULL.
fn non_null<T>(p: *const T, what: &str) -> Outcome<()> {
    if p.is_null() { Err(Failure::Null(what.into())) } else { Ok(()) }
}

/// Runs `f` with panics caught: its value, or the status code and message of its failure.
fn guarded<T>(f: impl FnOnce() -> Outcome<T>) -> std::result::Result<T, Refusal> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(failure)) => Err((status_of(&failure), message_of(&failure))),
        Err(panic) => {
            Err((status::INTERNAL, one_line(&format!("internal error: {}", panic_message(&panic)))))
        }
    }
}

/// Stores the message of an outcome in `last_error` ("" on success) and returns its status.
fn settle(last_error: &mut CString, outcome: std::result::Result<(), Refusal>) -> c_int {
    let (code, message) = outcome.err().unwrap_or((status::OK, String::new()));
    *last_error = CString::new(message.replace('\0', " ")).expect("no NUL left");
    code
}

/// `flowhmc_field`: a host buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowhmc_field {
    /// The reals.
    pub data: *mut c_void,
    /// How many reals.
    pub length: usize,
    /// 0: f64, 1: f32.
    pub precision: c_int,
}

/// `flowhmc_sites`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowhmc_sites {
    /// 0: x fastest, 1: t fastest, 2: table.
    pub order: c_int,
    /// Even sites first.
    pub even_odd: c_int,
    /// The table of order 2.
    pub site_table: *const usize,
}

/// `flowhmc_gauge_layout`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowhmc_gauge_layout {
    /// sizeof the host's struct.
    pub struct_size: usize,
    /// Site numbering.
    pub sites: flowhmc_sites,
    /// 0: site-major, 1: direction-major, 2: openQCD.
    pub links: c_int,
    /// The host's direction 0 is time.
    pub time_first: c_int,
    /// 0: row-major, 1: column-major.
    pub matrix: c_int,
}

/// `flowhmc_spinor_layout`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowhmc_spinor_layout {
    /// sizeof the host's struct.
    pub struct_size: usize,
    /// Site numbering.
    pub sites: flowhmc_sites,
    /// 0: `[spin][colour]`, 1: `[colour][spin]`.
    pub order: c_int,
    /// 0: DeGrand-Rossi, 1: openQCD.
    pub basis: c_int,
}

/// `flowhmc_params`: the field-by-field parameter set.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowhmc_params {
    /// sizeof the host's struct.
    pub struct_size: usize,
    /// 0: U(1), 1: SU(3).
    pub group: c_int,
    /// 0: Wilson, 1: Symanzik, 2: Iwasaki.
    pub action: c_int,
    /// beta.
    pub beta: f64,
    /// 0: leapfrog, 1: Omelyan, 2: Omelyan4, 3: force gradient.
    pub integrator: c_int,
    /// Integrator steps per trajectory.
    pub steps: c_int,
    /// MD time per trajectory.
    pub trajectory_length: f64,
    /// Run seed.
    pub seed: u64,
    /// Worker threads (0: all cores).
    pub threads: c_int,
    /// Two flavours of Wilson fermions.
    pub fermions: c_int,
    /// Hopping parameter.
    pub kappa: f64,
    /// Antiperiodic in time.
    pub antiperiodic: c_int,
    /// Even/odd preconditioning.
    pub even_odd: c_int,
    /// CG tolerance.
    pub solver_tolerance: f64,
    /// CG iteration limit.
    pub solver_max_iterations: c_int,
}

/// `flowhmc_update_report`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct flowhmc_update_report {
    /// 1 if accepted.
    pub accepted: c_int,
    /// H(proposal) - H(current).
    pub dh: f64,
    /// Plaquette after the step.
    pub plaquette: f64,
    /// Solver iterations.
    pub solver_iterations: u64,
}

/// `flowhmc_rng_state`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowhmc_rng_state {
    /// Run seed.
    pub seed: u64,
    /// Next update number.
    pub next_update: u64,
}

/// The opaque context of the C ABI.
pub struct flowhmc_context {
    context: Context,
    last_error: CString,
}

const DEFAULT_PARAMS: flowhmc_params = flowhmc_params {
    struct_size: std::mem::size_of::<flowhmc_params>(),
    group: 1,
    action: 0,
    beta: 6.0,
    integrator: 1,
    steps: 10,
    trajectory_length: 1.0,
    seed: 1,
    threads: 0,
    fermions: 0,
    kappa: 0.125,
    antiperiodic: 1,
    even_odd: 1,
    solver_tolerance: 1e-10,
    solver_max_iterations: 10000,
};

const DEFAULT_SITES: flowhmc_sites = flowhmc_sites { order: 0, even_odd: 0, site_table: std::ptr::null() };

const DEFAULT_GAUGE_LAYOUT: flowhmc_gauge_layout = flowhmc_gauge_layout {
    struct_size: std::mem::size_of::<flowhmc_gauge_layout>(),
    sites: DEFAULT_SITES,
    links: 0,
    time_first: 0,
    matrix: 0,
};

const DEFAULT_SPINOR_LAYOUT: flowhmc_spinor_layout = flowhmc_spinor_layout {
    struct_size: std::mem::size_of::<flowhmc_spinor_layout>(),
    sites: DEFAULT_SITES,
    order: 0,
    basis: 0,
};

/// Reads a sized struct: the first `struct_size` bytes the host declared over `default`.
///
/// # Safety
/// `p` must point to at least `struct_size` readable bytes, `struct_size` being its first field.
/// `argument` names the pointer, `what` the struct.
unsafe fn read_sized<T: Copy>(p: *const T, default: T, argument: &str, what: &str) -> Outcome<T> {
    non_null(p, argument)?;
    // SAFETY: every sized struct starts with its size; the caller guarantees p is readable.
    let declared = unsafe { std::ptr::read_unaligned(p as *const usize) };
    if declared < std::mem::size_of::<usize>() {
        let m = format!("{argument}: struct_size = {declared}; set it to sizeof({what})");
        return Err(Error::Host(m).into());
    }
    let mut value = default;
    let n = declared.min(std::mem::size_of::<T>());
    // SAFETY: n bytes are readable (declared by the host) and fit in value.
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, &mut value as *mut T as *mut u8, n) };
    Ok(value)
}

/// Runs `f`, catching panics, and stores a failure's message in the context.
fn call(ctx: *mut flowhmc_context, f: impl FnOnce(&mut Context) -> Outcome<()>) -> c_int {
    // SAFETY: a non-NULL handle comes from flowhmc_context_create and is used by one thread.
    let Some(c) = (unsafe { ctx.as_mut() }) else { return status::NULL };
    let outcome = guarded(|| f(&mut c.context));
    settle(&mut c.last_error, outcome)
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Writes a required out-value.
fn put<T>(out: *mut T, value: T, what: &str) -> Outcome<()> {
    // SAFETY: a non-NULL out-pointer points to a writable T (the header's contract).
    unsafe { out.as_mut() }.map(|o| *o = value).ok_or_else(|| Failure::Null(what.into()))
}

/// Writes an optional out-value (NULL: not wanted).
fn put_optional<T>(out: *mut T, value: T) {
    // SAFETY: as in put.
    if let Some(o) = unsafe { out.as_mut() } {
        *o = value;
    }
}

/// Checks a host buffer's precision, data pointer and alignment.
fn check_buffer(f: &flowhmc_field, what: &str) -> Outcome<()> {
    let align = match f.precision {
        0 => std::mem::align_of::<f64>(),
        1 => std::mem::align_of::<f32>(),
        p => {
            let m = format!("{what}: precision {p} is neither FLOWHMC_F64 nor FLOWHMC_F32");
            return Err(Error::Host(m).into());
        }
    };
    non_null(f.data, &format!("{what}.data"))?;
    if !(f.data as usize).is_multiple_of(align) {
        return Err(Error::Host(format!("{what}: data is not aligned for its precision")).into());
    }
    Ok(())
}

fn bytes(f: &flowhmc_field) -> std::ops::Range<usize> {
    let size = if f.precision == 0 { 8 } else { 4 };
    f.data as usize..f.data as usize + f.length * size
}

/// A read-only view of a host buffer.
fn slice<'a>(f: &flowhmc_field, what: &str) -> Outcome<HostSlice<'a>> {
    check_buffer(f, what)?;
    // SAFETY: the host guarantees `length` reals at `data` (checked non-NULL and aligned).
    Ok(unsafe {
        match f.precision {
            0 => HostSlice::F64(std::slice::from_raw_parts(f.data as *const f64, f.length)),
            _ => HostSlice::F32(std::slice::from_raw_parts(f.data as *const f32, f.length)),
        }
    })
}

/// A writable view of a host buffer, refused if it overlaps any of `others`.
fn slice_mut<'a>(f: &flowhmc_field, what: &str, others: &[&flowhmc_field]) -> Outcome<HostSliceMut<'a>> {
    check_buffer(f, what)?;
    let mine = bytes(f);
    if others.iter().any(|o| {
        let r = bytes(o);
        r.start < mine.end && mine.start < r.end
    }) {
        return Err(Error::Host(format!("{what}: the buffer overlaps another argument")).into());
    }
    // SAFETY: as in slice; no other argument aliases it.
    Ok(unsafe {
        match f.precision {
            0 => HostSliceMut::F64(std::slice::from_raw_parts_mut(f.data as *mut f64, f.length)),
            _ => HostSliceMut::F32(std::slice::from_raw_parts_mut(f.data as *mut f32, f.length)),
        }
    })
}

/// A string argument (NUL-terminated UTF-8).
fn c_str<'a>(p: *const c_char, what: &str) -> Outcome<&'a str> {
    non_null(p, what)?;
    // SAFETY: a non-NULL string argument is NUL-terminated (the header's contract).
    Ok(unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Error::Host(format!("{what}: not UTF-8")))?)
}

/// The option that the enum value `value` selects; an error of kind `kind` (host input for
/// layouts, parameters for the parameter set) names any other value.
fn pick<T: Copy>(value: c_int, options: &[T], what: &str, kind: fn(String) -> Error) -> Result<T> {
    usize::try_from(value)
        .ok()
        .and_then(|i| options.get(i).copied())
        .ok_or_else(|| kind(format!("{what} = {value}: not one of the header's values")))
}

/// The host's site numbering of a layout struct.
fn site_order(s: &flowhmc_sites, volume: usize, ndim: usize) -> Outcome<SiteOrder> {
    let even_odd = s.even_odd != 0;
    match s.order {
        0 => Ok(SiteOrder::x_fastest(ndim, even_odd)),
        1 => Ok(SiteOrder::t_fastest(ndim, even_odd)),
        2 => {
            non_null(s.site_table, "layout.sites.site_table")?;
            // SAFETY: the table holds `volume` entries (the header's contract).
            Ok(SiteOrder::Table(unsafe { std::slice::from_raw_parts(s.site_table, volume) }.to_vec()))
        }
        o => Err(Error::Host(format!("site order {o}: not one of the header's values")).into()),
    }
}

/// The gauge layout of a layout struct.
fn gauge_layout(l: &flowhmc_gauge_layout, dims: &[usize]) -> Outcome<GaugeLayout> {
    let d = dims.len();
    let links = [LinkOrder::SiteMajor, LinkOrder::DirectionMajor, LinkOrder::OpenQcd];
    Ok(GaugeLayout {
        sites: site_order(&l.sites, dims.iter().product(), d)?,
        links: pick(l.links, &links, "links", Error::Host)?,
        directions: host_directions(d, l.time_first != 0),
        matrix: pick(l.matrix, &[MatrixOrder::RowMajor, MatrixOrder::ColumnMajor], "matrix", Error::Host)?,
    })
}

/// The spinor layout of a layout struct.
fn spinor_layout(l: &flowhmc_spinor_layout, dims: &[usize]) -> Outcome<SpinorLayout> {
    Ok(SpinorLayout {
        sites: site_order(&l.sites, dims.iter().product(), dims.len())?,
        order: pick(l.order, &[SpinorOrder::SpinColor, SpinorOrder::ColorSpin], "order", Error::Host)?,
        basis: pick(l.basis, &[SpinBasis::DegrandRossi, SpinBasis::OpenQcd], "basis", Error::Host)?,
    })
}

/// A count of the parameter set, refused (naming it) below `least`.
fn count(value: c_int, least: usize, what: &str) -> Result<usize> {
    usize::try_from(value).ok().filter(|&v| v >= least).ok_or_else(|| {
        Error::Card(match least {
            0 => format!("{what} = {value}: must not be negative"),
            _ => format!("{what} = {value}: must be at least {least}"),
        })
    })
}

/// The TOML parameter set of a field-by-field one.
pub fn params_toml(p: &flowhmc_params) -> Result<String> {
    let group = pick(p.group, &["u1", "su3"], "group", Error::Card)?;
    let action = pick(p.action, &["wilson", "symanzik", "iwasaki"], "action", Error::Card)?;
    let schemes = ["leapfrog", "omelyan", "omelyan4", "force-gradient"];
    let integrator = pick(p.integrator, &schemes, "integrator", Error::Card)?;
    let (steps, threads) = (count(p.steps, 1, "steps")?, count(p.threads, 0, "threads")?);
    let mut text = format!(
        "[gauge]\ngroup = \"{group}\"\naction = \"{action}\"\nbeta = {:?}\n\
         [update]\nkind = \"hmc\"\ntrajectory_length = {:?}\nintegrator = \"{integrator}\"\nsteps = {steps}\n\
         [run]\nseed = {}\nthreads = {threads}\n",
        p.beta, p.trajectory_length, p.seed
    );
    if p.fermions != 0 {
        text += &format!(
            "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = {:?}\nboundary = \"{}\"\neven_odd = {}\n\
             solver = {{ kind = \"cg\", tolerance = {:?}, max_iterations = {} }}\n",
            p.kappa,
            if p.antiperiodic != 0 { "antiperiodic" } else { "periodic" },
            p.even_odd != 0,
            p.solver_tolerance,
            count(p.solver_max_iterations, 0, "solver_max_iterations")?
        );
    }
    Ok(text)
}

/// Creates a context from dims and parameter text, catching panics.
fn create(
    dims: *const usize,
    ndim: usize,
    parameters: impl FnOnce() -> Outcome<String>,
    out: *mut *mut flowhmc_context,
    error: *mut c_char,
    capacity: usize,
) -> c_int {
    create_with(dims, ndim, parameters, Context::new, out, error, capacity)
}

/// [`create`] with the context made by `make(dims, parameters)`.
fn create_with(
    dims: *const usize,
    ndim: usize,
    parameters: impl FnOnce() -> Outcome<String>,
    make: impl FnOnce(&[usize], &str) -> crate::Result<Context>,
    out: *mut *mut flowhmc_context,
    error: *mut c_char,
    capacity: usize,
) -> c_int {
    // SAFETY: a non-NULL out is writable (the header's contract).
    if let Some(out) = unsafe { out.as_mut() } {
        *out = std::ptr::null_mut();
    }
    let made = guarded(|| {
        non_null(out, "out")?;
        non_null(dims, "dims")?;
        // SAFETY: dims holds ndim entries (the header's contract).
        let dims = unsafe { std::slice::from_raw_parts(dims, ndim) };
        Ok(make(dims, &parameters()?)?)
    });
    match made {
        Ok(context) => {
            let handle = Box::new(flowhmc_context { context, last_error: CString::default() });
            // SAFETY: out is writable (checked non-NULL).
            unsafe { *out = Box::into_raw(handle) };
            status::OK
        }
        Err((code, message)) => {
            write_message(&message, error, capacity);
            code
        }
    }
}

/// Writes up to `capacity` bytes of `message`, NUL-terminated, to `error` (if not NULL).
fn write_message(message: &str, error: *mut c_char, capacity: usize) {
    if !error.is_null() && capacity > 0 {
        let n = message.len().min(capacity - 1);
        // SAFETY: error has `capacity` writable bytes (the header's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), error as *mut u8, n);
            *error.add(n) = 0;
        }
    }
}

/// `flowhmc_version`.
#[unsafe(no_mangle)]
pub extern "C" fn flowhmc_version() -> *const c_char {
    static VERSION: std::sync::OnceLock<CString> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| CString::new(crate::VERSION).expect("no NUL")).as_ptr()
}

/// `flowhmc_context_create`.
///
/// # Safety
/// As the header says: `dims` holds `ndim` entries, `parameters` is a NUL-terminated string,
/// `out` is writable, `error` has `error_capacity` bytes or is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_context_create(
    dims: *const usize,
    ndim: usize,
    parameters: *const c_char,
    out: *mut *mut flowhmc_context,
    error: *mut c_char,
    error_capacity: usize,
) -> c_int {
    create(dims, ndim, || c_str(parameters, "parameters").map(String::from), out, error, error_capacity)
}

/// `flowhmc_context_create_mpi`.
///
/// # Safety
/// As [`flowhmc_context_create`]; `grid` and `coords` hold `ndim` entries; `comm` is the
/// Fortran handle of a live MPI communicator (`MPI_Comm_c2f`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_context_create_mpi(
    dims: *const usize,
    ndim: usize,
    parameters: *const c_char,
    comm: i32,
    grid: *const usize,
    coords: *const usize,
    out: *mut *mut flowhmc_context,
    error: *mut c_char,
    error_capacity: usize,
) -> c_int {
    let make = |dims: &[usize], parameters: &str| -> crate::Result<Context> {
        let (grid, coords) = match (grid.is_null(), coords.is_null()) {
            // SAFETY: non-NULL grid and coords hold ndim entries (the header's contract)
            (false, false) => unsafe {
                (std::slice::from_raw_parts(grid, ndim), std::slice::from_raw_parts(coords, ndim))
            },
            _ => return Err(crate::Error::Host("grid and coords: NULL".into())),
        };
        // SAFETY: comm is a live communicator's handle (the header's contract)
        let comm = unsafe { super::host_comm(comm, grid, coords) }?;
        Context::on_ranks(dims, parameters, comm)
    };
    let parameters = || c_str(parameters, "parameters").map(String::from);
    create_with(dims, ndim, parameters, make, out, error, error_capacity)
}

/// `flowhmc_params_default`.
///
/// # Safety
/// `params` is NULL or points to a writable `flowhmc_params`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_params_default(params: *mut flowhmc_params) {
    put_optional(params, DEFAULT_PARAMS);
}

/// `flowhmc_context_create_from_params`.
///
/// # Safety
/// As [`flowhmc_context_create`]; `params` points to `struct_size` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_context_create_from_params(
    dims: *const usize,
    ndim: usize,
    params: *const flowhmc_params,
    out: *mut *mut flowhmc_context,
    error: *mut c_char,
    error_capacity: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let text =
        || Ok(params_toml(&unsafe { read_sized(params, DEFAULT_PARAMS, "params", "flowhmc_params") }?)?);
    create(dims, ndim, text, out, error, error_capacity)
}

/// The opaque key-by-key parameter set of the C ABI.
pub struct flowhmc_parameters {
    set: ParameterSet,
    last_error: CString,
}

/// `flowhmc_parameters_create`.
#[unsafe(no_mangle)]
pub extern "C" fn flowhmc_parameters_create() -> *mut flowhmc_parameters {
    catch_unwind(|| {
        Box::into_raw(Box::new(flowhmc_parameters {
            set: ParameterSet::new(),
            last_error: CString::default(),
        }))
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `flowhmc_parameters_destroy`.
///
/// # Safety
/// `p` is NULL or a handle from `flowhmc_parameters_create` not destroyed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_parameters_destroy(p: *mut flowhmc_parameters) {
    if !p.is_null() {
        // SAFETY: the handle came from Box::into_raw.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(p) })));
    }
}

/// `flowhmc_parameters_set`.
///
/// # Safety
/// `p` is a live handle; `key` and `value` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_parameters_set(
    p: *mut flowhmc_parameters,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    // SAFETY: the caller's contract.
    let Some(p) = (unsafe { p.as_mut() }) else { return status::NULL };
    let outcome = guarded(|| Ok(p.set.set(c_str(key, "key")?, c_str(value, "value")?)?));
    settle(&mut p.last_error, outcome)
}

/// `flowhmc_parameters_last_error`.
///
/// # Safety
/// `p` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_parameters_last_error(p: *const flowhmc_parameters) -> *const c_char {
    // SAFETY: the caller's contract.
    match unsafe { p.as_ref() } {
        Some(p) => p.last_error.as_ptr(),
        None => c"flowhmc_parameters_last_error: NULL parameter set".as_ptr(),
    }
}

/// `flowhmc_context_create_from_set`.
///
/// # Safety
/// As [`flowhmc_context_create`]; `p` is a live parameter-set handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_context_create_from_set(
    dims: *const usize,
    ndim: usize,
    p: *const flowhmc_parameters,
    out: *mut *mut flowhmc_context,
    error: *mut c_char,
    error_capacity: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let text = || {
        non_null(p, "parameter set p")?;
        // SAFETY: p is a live handle (checked non-NULL).
        Ok(unsafe { &*p }.set.to_toml())
    };
    create(dims, ndim, text, out, error, error_capacity)
}

/// `flowhmc_context_destroy`.
///
/// # Safety
/// `ctx` is NULL or a handle from `flowhmc_context_create*` not destroyed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_context_destroy(ctx: *mut flowhmc_context) {
    if !ctx.is_null() {
        // SAFETY: the handle came from Box::into_raw.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(ctx) })));
    }
}

/// `flowhmc_last_error`.
///
/// # Safety
/// `ctx` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_last_error(ctx: *const flowhmc_context) -> *const c_char {
    // SAFETY: the caller's contract.
    match unsafe { ctx.as_ref() } {
        Some(c) => c.last_error.as_ptr(),
        None => c"flowhmc_last_error: NULL context".as_ptr(),
    }
}

/// `flowhmc_gauge_layout_default`.
///
/// # Safety
/// `layout` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_gauge_layout_default(layout: *mut flowhmc_gauge_layout) {
    put_optional(layout, DEFAULT_GAUGE_LAYOUT);
}

/// `flowhmc_spinor_layout_default`.
///
/// # Safety
/// `layout` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_spinor_layout_default(layout: *mut flowhmc_spinor_layout) {
    put_optional(layout, DEFAULT_SPINOR_LAYOUT);
}

/// `flowhmc_set_gauge_layout`.
///
/// # Safety
/// `ctx` is a live handle; `layout` points to `struct_size` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_set_gauge_layout(
    ctx: *mut flowhmc_context,
    layout: *const flowhmc_gauge_layout,
) -> c_int {
    call(ctx, |c| {
        // SAFETY: the caller's contract.
        let l = unsafe { read_sized(layout, DEFAULT_GAUGE_LAYOUT, "layout", "flowhmc_gauge_layout") }?;
        let layout = gauge_layout(&l, &c.card().lattice.dims)?;
        Ok(c.set_gauge_layout(&layout)?)
    })
}

/// `flowhmc_set_spinor_layout`.
///
/// # Safety
/// `ctx` is a live handle; `layout` points to `struct_size` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_set_spinor_layout(
    ctx: *mut flowhmc_context,
    layout: *const flowhmc_spinor_layout,
) -> c_int {
    call(ctx, |c| {
        // SAFETY: the caller's contract.
        let l = unsafe { read_sized(layout, DEFAULT_SPINOR_LAYOUT, "layout", "flowhmc_spinor_layout") }?;
        let layout = spinor_layout(&l, &c.card().lattice.dims)?;
        Ok(c.set_spinor_layout(&layout)?)
    })
}

/// `flowhmc_set_unitarity_tolerance`.
///
/// # Safety
/// `ctx` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_set_unitarity_tolerance(ctx: *mut flowhmc_context, tolerance: f64) -> c_int {
    call(ctx, |c| Ok(c.set_unitarity_tolerance(tolerance)?))
}

/// `flowhmc_gauge_length` (0 for a NULL context).
///
/// # Safety
/// `ctx` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_gauge_length(ctx: *const flowhmc_context) -> usize {
    // SAFETY: the caller's contract.
    unsafe { ctx.as_ref() }.map_or(0, |c| c.context.gauge_len())
}

/// `flowhmc_spinor_length` (0 for a NULL context).
///
/// # Safety
/// `ctx` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_spinor_length(ctx: *const flowhmc_context) -> usize {
    // SAFETY: the caller's contract.
    unsafe { ctx.as_ref() }.map_or(0, |c| c.context.spinor_len())
}

fn report(r: &UpdateReport) -> flowhmc_update_report {
    flowhmc_update_report {
        accepted: c_int::from(r.accepted),
        dh: r.dh,
        plaquette: r.plaquette,
        solver_iterations: r.solver_iterations as u64,
    }
}

/// `flowhmc_update`.
///
/// # Safety
/// `ctx` is a live handle; `gauge` describes a valid buffer; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_update(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    out: *mut flowhmc_update_report,
) -> c_int {
    call(ctx, |c| {
        let r = c.update(slice_mut(&gauge, "gauge", &[])?)?;
        put_optional(out, report(&r));
        Ok(())
    })
}

/// `flowhmc_trajectories`.
///
/// # Safety
/// As [`flowhmc_update`]; `reports` is NULL or has `n` writable entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_trajectories(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    n: usize,
    reports: *mut flowhmc_update_report,
) -> c_int {
    call(ctx, |c| {
        let rs = c.trajectories(slice_mut(&gauge, "gauge", &[])?, n)?;
        if !reports.is_null() {
            // SAFETY: reports has n entries (the header's contract).
            let out = unsafe { std::slice::from_raw_parts_mut(reports, n) };
            out.iter_mut().zip(&rs).for_each(|(o, r)| *o = report(r));
        }
        Ok(())
    })
}

/// `flowhmc_plaquette`.
///
/// # Safety
/// `ctx` is a live handle; `gauge` describes a valid buffer; `plaquette` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_plaquette(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    plaquette: *mut f64,
) -> c_int {
    call(ctx, |c| put(plaquette, c.plaquette(slice(&gauge, "gauge")?)?, "plaquette"))
}

/// `flowhmc_polyakov_loop`.
///
/// # Safety
/// `ctx` is a live handle; `gauge` describes a valid buffer; `re` and `im` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_polyakov_loop(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    re: *mut f64,
    im: *mut f64,
) -> c_int {
    call(ctx, |c| {
        non_null(re, "re")?;
        non_null(im, "im")?;
        let l = c.polyakov_loop(slice(&gauge, "gauge")?)?;
        put(re, l.re, "re")?;
        put(im, l.im, "im")
    })
}

/// `flowhmc_topological_charge`.
///
/// # Safety
/// `ctx` is a live handle; `gauge` describes a valid buffer; `q` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_topological_charge(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    q: *mut f64,
) -> c_int {
    call(ctx, |c| put(q, c.topological_charge(slice(&gauge, "gauge")?)?, "q"))
}

/// `flowhmc_apply_dirac`.
///
/// # Safety
/// `ctx` is a live handle; the fields describe valid buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_apply_dirac(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    input: flowhmc_field,
    out: flowhmc_field,
) -> c_int {
    call(ctx, |c| {
        let y = slice_mut(&out, "out", &[&gauge, &input])?;
        Ok(c.apply_dirac(slice(&gauge, "gauge")?, slice(&input, "in")?, y)?)
    })
}

/// `flowhmc_solve`.
///
/// # Safety
/// `ctx` is a live handle; the fields describe valid buffers; `iterations` and `residual` are
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_solve(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    b: flowhmc_field,
    x: flowhmc_field,
    iterations: *mut u64,
    residual: *mut f64,
) -> c_int {
    call(ctx, |c| {
        let out = slice_mut(&x, "x", &[&gauge, &b])?;
        let r = c.solve(slice(&gauge, "gauge")?, slice(&b, "b")?, out)?;
        put_optional(iterations, r.iterations as u64);
        put_optional(residual, r.residual);
        Ok(())
    })
}

/// `flowhmc_gauge_force`.
///
/// # Safety
/// `ctx` is a live handle; the fields describe valid buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_gauge_force(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    force: flowhmc_field,
) -> c_int {
    force_call(ctx, gauge, force, Context::gauge_force)
}

/// Runs a force call of the context on checked buffers.
fn force_call(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    force: flowhmc_field,
    f: fn(&mut Context, HostSlice<'_>, HostSliceMut<'_>) -> Result<()>,
) -> c_int {
    call(ctx, |c| {
        let out = slice_mut(&force, "force", &[&gauge])?;
        Ok(f(c, slice(&gauge, "gauge")?, out)?)
    })
}

/// `flowhmc_refresh_pseudofermions`.
///
/// # Safety
/// `ctx` is a live handle; `gauge` describes a valid buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_refresh_pseudofermions(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
) -> c_int {
    call(ctx, |c| Ok(c.refresh_pseudofermions(slice(&gauge, "gauge")?)?))
}

/// `flowhmc_fermion_force`.
///
/// # Safety
/// `ctx` is a live handle; the fields describe valid buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_fermion_force(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    force: flowhmc_field,
) -> c_int {
    force_call(ctx, gauge, force, Context::fermion_force)
}

/// `flowhmc_action`.
///
/// # Safety
/// `ctx` is a live handle; `gauge` describes a valid buffer; `action` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_action(
    ctx: *mut flowhmc_context,
    gauge: flowhmc_field,
    action: *mut f64,
) -> c_int {
    call(ctx, |c| put(action, c.action(slice(&gauge, "gauge")?)?, "action"))
}

/// `flowhmc_load_model`.
///
/// # Safety
/// `ctx` is a live handle; `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_load_model(ctx: *mut flowhmc_context, path: *const c_char) -> c_int {
    call(ctx, |c| Ok(c.load_model(c_str(path, "path")?)?))
}

/// `flowhmc_set_update`.
///
/// # Safety
/// `ctx` is a live handle; `update` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_set_update(ctx: *mut flowhmc_context, update: *const c_char) -> c_int {
    call(ctx, |c| Ok(c.set_update(c_str(update, "update")?)?))
}

/// `flowhmc_train`.
///
/// # Safety
/// `ctx` is a live handle; the out-pointers are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_train(
    ctx: *mut flowhmc_context,
    loss: *mut f64,
    ess: *mut f64,
    acceptance: *mut f64,
) -> c_int {
    call(ctx, |c| {
        let point = c.train()?;
        put_optional(loss, point.loss);
        put_optional(ess, point.ess);
        put_optional(acceptance, point.acceptance);
        Ok(())
    })
}

/// `flowhmc_get_rng_state`.
///
/// # Safety
/// `ctx` is a live handle; `state` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_get_rng_state(
    ctx: *const flowhmc_context,
    state: *mut flowhmc_rng_state,
) -> c_int {
    call(ctx as *mut flowhmc_context, |c| {
        let s = c.rng_state();
        put(state, flowhmc_rng_state { seed: s.seed, next_update: s.next_update }, "state")
    })
}

/// `flowhmc_set_rng_state`.
///
/// # Safety
/// `ctx` is a live handle; `state` is readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flowhmc_set_rng_state(
    ctx: *mut flowhmc_context,
    state: *const flowhmc_rng_state,
) -> c_int {
    call(ctx, |c| {
        // SAFETY: the caller's contract.
        let s = unsafe { state.as_ref() }.ok_or_else(|| Failure::Null("state".into()))?;
        Ok(c.set_rng_state(RngState { seed: s.seed, next_update: s.next_update })?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_sized_struct_keeps_the_defaults_of_the_fields_it_lacks() {
        let mut p = DEFAULT_PARAMS;
        p.beta = 2.5;
        p.kappa = 0.2;
        // a host that knew only the fields up to beta
        p.struct_size = std::mem::offset_of!(flowhmc_params, beta) + std::mem::size_of::<f64>();
        let read = unsafe { read_sized(&p, DEFAULT_PARAMS, "params", "flowhmc_params") }.unwrap();
        assert_eq!(read.beta, 2.5);
        assert_eq!(read.kappa, DEFAULT_PARAMS.kappa);
        p.struct_size = 0;
        let e = unsafe { read_sized(&p, DEFAULT_PARAMS, "params", "flowhmc_params") }.unwrap_err();
        assert!(message_of(&e).contains("struct_size = 0"), "{e:?}");
    }

    #[test]
    fn a_panic_inside_a_call_becomes_a_status_and_a_message() {
        let mut p = DEFAULT_PARAMS;
        p.group = 0;
        let text = params_toml(&p).unwrap();
        let context = Context::new(&[4, 4], &text).unwrap();
        let handle = Box::into_raw(Box::new(flowhmc_context { context, last_error: CString::default() }));
        let code = call(handle, |_| panic!("injected fault"));
        assert_eq!(code, status::INTERNAL);
        let message = unsafe { CStr::from_ptr(flowhmc_last_error(handle)) }.to_str().unwrap().to_string();
        assert!(message.contains("internal error: injected fault"), "{message}");
        // the next call works and clears the message
        let mut q = 0.0;
        let cold: Vec<f64> = (0..64).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let field = flowhmc_field { data: cold.as_ptr() as *mut c_void, length: cold.len(), precision: 0 };
        assert_eq!(unsafe { flowhmc_plaquette(handle, field, &mut q) }, status::OK);
        assert_eq!(q, 1.0);
        assert_eq!(unsafe { CStr::from_ptr(flowhmc_last_error(handle)) }.to_bytes(), b"");
        unsafe { flowhmc_context_destroy(handle) };
    }

    #[test]
    fn the_field_by_field_parameters_make_a_valid_card() {
        let mut p = DEFAULT_PARAMS;
        p.fermions = 1;
        let card = super::super::context::parse_parameters(&[4, 4, 4, 4], &params_toml(&p).unwrap()).unwrap();
        assert_eq!(card.fermions.len(), 1);
        assert_eq!(card.update.steps, Some(10));
        p.integrator = 7;
        assert!(params_toml(&p).unwrap_err().to_string().contains("integrator = 7"));
    }
}
