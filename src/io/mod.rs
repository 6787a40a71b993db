//! Gauge configuration files: NERSC (4D SU(3)) and flowhmc's native format (any group and
//! dimension, also used for checkpoints).

pub mod native;
pub mod nersc;

use crate::error::{Error, Result};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// synced and renamed over `path`, so a reader (or a crash) never sees a partial file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        path.file_name().ok_or_else(|| Error::Config(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(temporary_name(&name.to_string_lossy(), std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all(); // make the rename durable where the platform allows
    }
    Ok(())
}

/// The name of the temporary file [`write_atomically`] writes before renaming it to `name`:
/// `.NAME.tmpPID`, PID the writing process.
fn temporary_name(name: &str, pid: u32) -> String {
    format!(".{name}.tmp{pid}")
}

/// The process id in a name of [`temporary_name`]'s form, if it has that form.
fn temporary_writer(name: &str) -> Option<u32> {
    let (stem, pid) = name.strip_prefix('.')?.rsplit_once(".tmp")?;
    (!stem.is_empty()).then_some(())?;
    pid.parse().ok()
}

/// Whether `name` is the name of a temporary file of [`write_atomically`].
pub fn is_temporary(name: &str) -> bool {
    temporary_writer(name).is_some()
}

/// Removes the temporary files that [`write_atomically`] left in `dir` when its process was
/// killed before the rename: those whose writer is no longer running. Where running processes
/// cannot be listed (no /proc), nothing is removed. A missing `dir` has none.
pub fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = temporary_writer(&name)
            && !proc.join(pid.to_string()).exists()
        {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = std::env::temp_dir().join(format!("flowhmc-io-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // pid_max on Linux is at most 2^22: this writer cannot be running
        let dead = temporary_name("checkpoint.cfg", 4_194_305);
        let alive = temporary_name("checkpoint.cfg", std::process::id());
        for name in [&dead, &alive, &".notes.tmpfile".to_string(), &"data.tmp12".to_string()] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        remove_stale_temporaries(&dir).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".checkpoint.cfg.tmp".to_string() + &std::process::id().to_string(),
                ".notes.tmpfile".into(),
                "data.tmp12".into()
            ]
        );
        assert_eq!(temporary_writer(".card.toml.tmp42"), Some(42));
        assert_eq!(temporary_writer(".tmp42"), None);
        remove_stale_temporaries(&dir.join("missing")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
