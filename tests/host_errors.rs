//! Refusals of the C ABI (issue 17): input that cannot make a right run gets a status code and
//! one line naming the problem, changes nothing the caller owns and prints nothing. Extents,
//! step counts and update numbers too large for the machine are refused before anything is
//! allocated; NULL pointers are FLOWHMC_ERROR_NULL naming the argument; messages carry no kind
//! prefix (the status says the kind) and no newline.
//!
//! The cases that used to abort the process or print a panic run in a child process (this
//! test binary again, under a 4 GiB address-space limit) whose stderr must stay empty.

use flowhmc::ffi::c_api::*;
use std::ffi::{CStr, CString, c_char, c_void};
use std::io::Write;
use std::process::Command;
use std::ptr::{null, null_mut};

/// The environment variable that makes a test run its body as the child of itself.
const CHILD: &str = "FLOWHMC_HOST_ERRORS_CHILD";
/// The prefix of the lines a child reports to its parent.
const REPORT: &str = "child report: ";

/// Runs `body` in a child process (this test binary, only the test `name`, with at most 4 GiB
/// of address space) and returns the lines `body` reported; the child must exit 0 and write
/// nothing to stderr. In the child itself, runs `body`, prints its lines and exits.
fn in_child(name: &str, body: fn() -> Vec<String>) -> Vec<String> {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        // the harness has begun a line ("test NAME ... ")
        println!();
        body().iter().for_each(|l| println!("{REPORT}{l}"));
        std::io::stdout().flush().unwrap();
        std::process::exit(0);
    }
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("sh")
        .args(["-c", "ulimit -v 4194304 && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([name, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the child of {name} failed ({}):\n{stdout}\n{stderr}", output.status);
    assert_eq!(stderr, "", "the child of {name} wrote to stderr");
    let lines: Vec<String> =
        stdout.lines().filter_map(|l| l.strip_prefix(REPORT)).map(String::from).collect();
    assert!(!lines.is_empty(), "the child of {name} reported nothing:\n{stdout}");
    lines
}

/// A message of the ABI as a Rust string.
fn text(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

/// Asserts what every message retrieved through the ABI must be: one line, without the kind
/// prefix of the library's error display, and naming `names`.
fn assert_clear(message: &str, names: &str) {
    assert!(message.contains(names), "{message:?} does not name {names:?}");
    assert!(!message.contains('\n'), "{message:?} has more than one line");
    for prefix in ["invalid run card:", "host input:", "bad configuration file:", "numerical failure:"] {
        assert!(!message.contains(prefix), "{message:?} carries the kind prefix {prefix:?}");
    }
}

/// A context creation's status, handle (NULL on failure) and message.
struct Created {
    status: i32,
    ctx: *mut flowhmc_context,
    message: String,
}

/// Creates a context from TOML parameters on `dims`.
fn create_toml(dims: &[usize], parameters: &str) -> Created {
    let parameters = CString::new(parameters).unwrap();
    let (mut ctx, mut error) = (null_mut(), [0 as c_char; 512]);
    let status = unsafe {
        flowhmc_context_create(
            dims.as_ptr(),
            dims.len(),
            parameters.as_ptr(),
            &mut ctx,
            error.as_mut_ptr(),
            512,
        )
    };
    Created { status, ctx, message: text(error.as_ptr()) }
}

/// Creates a context from a field-by-field parameter set on `dims`.
fn create_params(dims: &[usize], params: &flowhmc_params) -> Created {
    let (mut ctx, mut error) = (null_mut(), [0 as c_char; 512]);
    let status = unsafe {
        flowhmc_context_create_from_params(
            dims.as_ptr(),
            dims.len(),
            params,
            &mut ctx,
            error.as_mut_ptr(),
            512,
        )
    };
    Created { status, ctx, message: text(error.as_ptr()) }
}

/// The default field-by-field set for 2D U(1) at beta 2 with `steps` leapfrog steps.
fn u1_params(steps: i32) -> flowhmc_params {
    let mut p = std::mem::MaybeUninit::<flowhmc_params>::uninit();
    unsafe { flowhmc_params_default(p.as_mut_ptr()) };
    let mut p = unsafe { p.assume_init() };
    (p.group, p.beta, p.integrator, p.steps, p.threads) = (0, 2.0, 0, steps, 1);
    p
}

/// A 2D U(1) context on 4 x 4 and its cold field.
fn u1_context() -> (*mut flowhmc_context, Vec<f64>) {
    let made = create_params(&[4, 4], &u1_params(4));
    assert_eq!(made.status, status::OK, "{}", made.message);
    let length = unsafe { flowhmc_gauge_length(made.ctx) };
    (made.ctx, (0..length).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect())
}

fn field(buffer: &mut [f64]) -> flowhmc_field {
    flowhmc_field { data: buffer.as_mut_ptr() as *mut c_void, length: buffer.len(), precision: 0 }
}

fn huge_extents_body() -> Vec<String> {
    let wrapping = [65536usize; 4];
    let mut lines = Vec::new();
    for made in [
        create_toml(
            &wrapping,
            "[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 1.0\n[update]\nkind = \"hmc\"\n\
             trajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 10\n",
        ),
        create_params(&wrapping, &u1_params(4)),
    ] {
        assert!(made.ctx.is_null());
        lines.push(format!("{} {}", made.status, made.message));
    }
    lines
}

#[test]
fn extents_whose_volume_overflows_are_refused_as_parameters_without_a_word_on_stderr() {
    for line in in_child(
        "extents_whose_volume_overflows_are_refused_as_parameters_without_a_word_on_stderr",
        huge_extents_body,
    ) {
        let (code, message) = line.split_once(' ').unwrap();
        assert_eq!(code, status::PARAMETERS.to_string(), "{message}");
        assert_clear(message, "[65536, 65536, 65536, 65536]");
    }
}

fn memory_extents_body() -> Vec<String> {
    let made = create_params(&[100000, 100000], &u1_params(4));
    assert!(made.ctx.is_null());
    vec![format!("{} {}", made.status, made.message)]
}

/// 10^10 sites: beyond the 32-bit site tables and the machine (it aborted on "memory
/// allocation of N bytes failed").
#[test]
fn extents_beyond_the_machine_are_refused_as_parameters_without_a_word_on_stderr() {
    for line in in_child(
        "extents_beyond_the_machine_are_refused_as_parameters_without_a_word_on_stderr",
        memory_extents_body,
    ) {
        let (code, message) = line.split_once(' ').unwrap();
        assert_eq!(code, status::PARAMETERS.to_string(), "{message}");
        assert_clear(message, "100000");
    }
}

fn huge_steps_body() -> Vec<String> {
    let made = create_params(&[4, 4], &u1_params(100_000_000));
    assert!(made.ctx.is_null());
    vec![format!("{} {}", made.status, made.message)]
}

#[test]
fn a_step_count_whose_schedule_cannot_fit_is_refused_naming_steps_without_a_word_on_stderr() {
    let lines = in_child(
        "a_step_count_whose_schedule_cannot_fit_is_refused_naming_steps_without_a_word_on_stderr",
        huge_steps_body,
    );
    let (code, message) = lines[0].split_once(' ').unwrap();
    assert_eq!(code, status::PARAMETERS.to_string(), "{message}");
    assert_clear(message, "steps = 100000000");
}

#[test]
fn negative_and_zero_steps_are_the_same_parameters_error_naming_steps() {
    for steps in [-3, 0] {
        let made = create_params(&[4, 4], &u1_params(steps));
        assert_eq!(made.status, status::PARAMETERS, "steps = {steps}: {}", made.message);
        assert!(made.ctx.is_null());
        assert_clear(&made.message, "steps");
    }
}

fn update_number_body() -> Vec<String> {
    let (ctx, mut cold) = u1_context();
    let mut state = flowhmc_rng_state { seed: 0, next_update: 0 };
    let mut lines = Vec::new();
    let past = flowhmc_rng_state { seed: 1, next_update: u64::MAX };
    let code = unsafe { flowhmc_set_rng_state(ctx, &past) };
    lines.push(format!("{code} {}", text(unsafe { flowhmc_last_error(ctx) })));
    assert_eq!(unsafe { flowhmc_get_rng_state(ctx, &mut state) }, status::OK);
    lines.push(format!("{} {}", state.seed, state.next_update));
    let code = unsafe { flowhmc_update(ctx, field(&mut cold), null_mut()) };
    assert_eq!(unsafe { flowhmc_get_rng_state(ctx, &mut state) }, status::OK);
    lines.push(format!("{code} {}", state.next_update));
    // the last update numbers: one step to the limit, none past it
    let last = flowhmc_rng_state { seed: 1, next_update: (1 << 63) - 1 };
    assert_eq!(unsafe { flowhmc_set_rng_state(ctx, &last) }, status::OK);
    let code = unsafe { flowhmc_trajectories(ctx, field(&mut cold), 2, null_mut()) };
    lines.push(format!("{code} {}", text(unsafe { flowhmc_last_error(ctx) })));
    let code = unsafe { flowhmc_update(ctx, field(&mut cold), null_mut()) };
    assert_eq!(unsafe { flowhmc_get_rng_state(ctx, &mut state) }, status::OK);
    lines.push(format!("{code} {}", state.next_update));
    unsafe { flowhmc_context_destroy(ctx) };
    lines
}

#[test]
fn an_update_number_past_the_limit_is_refused_and_leaves_the_chain_where_it_was() {
    let lines = in_child(
        "an_update_number_past_the_limit_is_refused_and_leaves_the_chain_where_it_was",
        update_number_body,
    );
    let (code, message) = lines[0].split_once(' ').unwrap();
    assert_eq!(code, status::HOST_INPUT.to_string(), "{message}");
    assert_clear(message, "next_update = 18446744073709551615");
    assert_clear(message, "9223372036854775808");
    assert_eq!(lines[1], "1 0", "the refused state changed the context");
    assert_eq!(lines[2], format!("{} 1", status::OK), "the chain no longer updates from where it was");
    let (code, message) = lines[3].split_once(' ').unwrap();
    assert_eq!(code, status::HOST_INPUT.to_string(), "{message}");
    assert_clear(message, "n = 2");
    assert_eq!(lines[4], format!("{} {}", status::OK, 1u64 << 63));
}

/// The status and error-buffer message of a context creation with a NULL argument.
fn create_null(dims: *const usize, parameters: *const c_char) -> (i32, String) {
    let (mut ctx, mut error) = (null_mut(), [0 as c_char; 256]);
    let code = unsafe { flowhmc_context_create(dims, 2, parameters, &mut ctx, error.as_mut_ptr(), 256) };
    assert!(ctx.is_null());
    (code, text(error.as_ptr()))
}

#[test]
fn every_null_required_pointer_is_flowhmc_error_null_naming_the_argument() {
    let dims = [4usize, 4];
    let toml = CString::new("[gauge]\ngroup = \"u1\"\nbeta = 1.0\n").unwrap();
    let mut cases: Vec<(&str, i32, String)> = Vec::new();
    let (code, m) = create_null(null(), toml.as_ptr());
    cases.push(("dims", code, m));
    let (code, m) = create_null(dims.as_ptr(), null());
    cases.push(("parameters", code, m));
    let mut error = [0 as c_char; 256];
    let code = unsafe {
        flowhmc_context_create(dims.as_ptr(), 2, toml.as_ptr(), null_mut(), error.as_mut_ptr(), 256)
    };
    cases.push(("out", code, text(error.as_ptr())));
    let mut ctx = null_mut();
    let code = unsafe {
        flowhmc_context_create_from_params(dims.as_ptr(), 2, null(), &mut ctx, error.as_mut_ptr(), 256)
    };
    cases.push(("params", code, text(error.as_ptr())));
    let code = unsafe {
        flowhmc_context_create_from_set(dims.as_ptr(), 2, null(), &mut ctx, error.as_mut_ptr(), 256)
    };
    cases.push(("parameter set", code, text(error.as_ptr())));

    let set = flowhmc_parameters_create();
    let value = CString::new("1.0").unwrap();
    let key = CString::new("gauge.beta").unwrap();
    let code = unsafe { flowhmc_parameters_set(set, null(), value.as_ptr()) };
    cases.push(("key", code, text(unsafe { flowhmc_parameters_last_error(set) })));
    let code = unsafe { flowhmc_parameters_set(set, key.as_ptr(), null()) };
    cases.push(("value", code, text(unsafe { flowhmc_parameters_last_error(set) })));
    unsafe { flowhmc_parameters_destroy(set) };

    let (ctx, cold) = u1_context();
    let message = || text(unsafe { flowhmc_last_error(ctx) });
    let no_data = flowhmc_field { data: null_mut(), length: cold.len(), precision: 0 };
    let mut re = 0.0;
    let re_ptr: *mut f64 = &mut re;
    type Call<'a> = (&'a str, Box<dyn Fn() -> i32 + 'a>);
    let calls: Vec<Call> = vec![
        ("gauge", Box::new(|| unsafe { flowhmc_update(ctx, no_data, null_mut()) })),
        ("gauge", Box::new(|| unsafe { flowhmc_plaquette(ctx, no_data, &mut 0.0) })),
        ("plaquette", Box::new(|| unsafe { flowhmc_plaquette(ctx, field(&mut cold.clone()), null_mut()) })),
        (
            "im",
            Box::new(|| unsafe { flowhmc_polyakov_loop(ctx, field(&mut cold.clone()), re_ptr, null_mut()) }),
        ),
        ("layout", Box::new(|| unsafe { flowhmc_set_gauge_layout(ctx, null()) })),
        ("layout", Box::new(|| unsafe { flowhmc_set_spinor_layout(ctx, null()) })),
        ("path", Box::new(|| unsafe { flowhmc_load_model(ctx, null()) })),
        ("update", Box::new(|| unsafe { flowhmc_set_update(ctx, null()) })),
        ("state", Box::new(|| unsafe { flowhmc_set_rng_state(ctx, null()) })),
        ("state", Box::new(|| unsafe { flowhmc_get_rng_state(ctx, null_mut()) })),
    ];
    for (name, f) in &calls {
        let code = f();
        cases.push((name, code, message()));
    }
    for (name, code, message) in &cases {
        assert_eq!(*code, status::NULL, "{name}: {message}");
        assert_clear(message, name);
    }
    assert_eq!(re, 0.0, "a refused call wrote an out-value");
    assert!(cold.iter().enumerate().all(|(i, &x)| x == if i % 2 == 0 { 1.0 } else { 0.0 }));
    unsafe { flowhmc_context_destroy(ctx) };
}

#[test]
fn a_bad_site_table_is_named_by_its_first_bad_entry_in_one_short_line() {
    let (ctx, _) = u1_context();
    let layout = |table: &[usize]| {
        let mut l = std::mem::MaybeUninit::<flowhmc_gauge_layout>::uninit();
        unsafe { flowhmc_gauge_layout_default(l.as_mut_ptr()) };
        let mut l = unsafe { l.assume_init() };
        (l.sites.order, l.sites.site_table) = (2, table.as_ptr());
        l
    };
    let mut outside: Vec<usize> = (0..16).collect();
    outside[5] = 99;
    let mut repeated: Vec<usize> = (0..16).collect();
    repeated[9] = 3;
    for (table, names) in [(outside, "site_table[5] = 99"), (repeated, "site_table[9] = 3")] {
        let code = unsafe { flowhmc_set_gauge_layout(ctx, &layout(&table)) };
        let message = text(unsafe { flowhmc_last_error(ctx) });
        assert_eq!(code, status::HOST_INPUT, "{message}");
        assert_clear(&message, names);
        assert!(message.len() < 100 && !message.contains("10, 11"), "{message:?} dumps the table");
    }
    unsafe { flowhmc_context_destroy(ctx) };
}

#[test]
fn messages_through_the_abi_are_single_lines_without_the_kind_prefix() {
    // a TOML syntax error (the parser's message spans several lines) and a bad value
    let made = create_toml(&[4, 4], "[gauge]\ngroup = \"u1\"\nbeta = \n");
    assert_eq!(made.status, status::PARAMETERS, "{}", made.message);
    assert_clear(&made.message, "line 3");
    let negative_beta = params_toml(&u1_params(4)).unwrap().replace("beta = 2.0", "beta = -1.0");
    let made = create_toml(&[4, 4], &negative_beta);
    assert_eq!(made.status, status::PARAMETERS, "{}", made.message);
    assert_clear(&made.message, "gauge.beta");
    // a host-input error on a context
    let (ctx, cold) = u1_context();
    let mut short = cold[..cold.len() - 1].to_vec();
    assert_eq!(unsafe { flowhmc_update(ctx, field(&mut short), null_mut()) }, status::HOST_INPUT);
    assert_clear(&text(unsafe { flowhmc_last_error(ctx) }), "the layout needs");
    let update = CString::new("kind = \"hmc\"\nsteps = [\n").unwrap();
    assert_eq!(unsafe { flowhmc_set_update(ctx, update.as_ptr()) }, status::PARAMETERS);
    assert_clear(&text(unsafe { flowhmc_last_error(ctx) }), "update");
    unsafe { flowhmc_context_destroy(ctx) };
}
