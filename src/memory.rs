//! Memory sizes: what this machine has available, and bytes in words a person reads.
//!
//! Runs refuse, before allocating anything, a lattice or card whose estimated memory need
//! exceeds what the machine has available (see [`crate::geometry::Lattice::check_dims`] and
//! [`crate::chain::card::Card::memory_need`]). The available memory is the least of Linux's
//! `MemAvailable` (free memory plus reclaimable caches, /proc/meminfo), the process's
//! address-space limit (`ulimit -v`, /proc/self/limits) and what its cgroup may still use
//! (memory.max - memory.current, as batch systems set it); where none can be read, only sizes
//! that overflow are refused.

/// Bytes of memory this process can have now (see the module notes), if the system says.
pub fn available_bytes() -> Option<u128> {
    [meminfo_available(), address_space_limit(), cgroup_headroom()].into_iter().flatten().min()
}

/// `MemAvailable` of /proc/meminfo.
fn meminfo_available() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of the address space (`ulimit -v`), when one is set.
fn address_space_limit() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// memory.max - memory.current of this process's cgroup (v2), when a limit is set.
fn cgroup_headroom() -> Option<u128> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read =
        |name: &str| -> Option<u128> { std::fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok() };
    let max = read("memory.max")?;
    Some(max.saturating_sub(read("memory.current").unwrap_or(0)))
}

/// `bytes` in binary units with three significant figures, e.g. "1.50 GiB", "2.7e21 bytes" for
/// sizes beyond a thousand TiB.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    for unit in UNITS {
        if value < 1024.0 || unit == "TiB" {
            return match unit {
                "bytes" => format!("{bytes} bytes"),
                _ if value >= 1000.0 * 1024.0 => format!("{:.2e} bytes", bytes as f64),
                _ => format!("{value:.3} {unit}"),
            };
        }
        value /= 1024.0;
    }
    unreachable!("the loop returns at the last unit")
}

/// Refuses `need` bytes when they exceed the machine's available memory; `what` names the
/// thing that needs them (e.g. "lattice.dims = [...]").
pub fn check_available(what: &str, need: u128) -> crate::Result<()> {
    match available_bytes() {
        Some(have) if need > have => Err(crate::Error::Card(format!(
            "{what}: needs about {} of memory, this machine has {} available",
            human(need),
            human(have)
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_writes_them() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1536), "1.500 KiB");
        assert_eq!(human(3 << 30), "3.000 GiB");
        assert_eq!(human(1 << 70), "1.18e21 bytes");
    }

    #[test]
    fn this_machine_reports_its_memory() {
        let have = available_bytes().expect("Linux reports MemAvailable");
        assert!(have > 1 << 20, "{have} bytes available");
        assert!(check_available("a test", have * 2).is_err());
        assert!(check_available("a test", 1024).is_ok());
    }
}
