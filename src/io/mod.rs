//! Gauge configuration files: NERSC, ILDG and openQCD's export format (4D SU(3)), and
//! flowhmc's native format (any group and dimension, also used for checkpoints).

pub mod ildg;
pub mod lime;
pub mod links;
pub mod native;
pub mod nersc;
pub mod openqcd;
pub mod slices;

use crate::comm;
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::Su3;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The configuration file formats, told apart by their first bytes (and openQCD's by its size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// flowhmc's native format ([`native`]): any group and dimension.
    Native,
    /// NERSC ([`nersc`]), 4D SU(3).
    Nersc,
    /// ILDG ([`ildg`]), 4D SU(3).
    Ildg,
    /// openQCD's export format ([`openqcd`]), 4D SU(3).
    OpenQcd,
}

impl FileFormat {
    /// The format of the file `path`, or an error naming the file when it is none of them.
    pub fn detect(path: &Path) -> Result<FileFormat> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut start = Vec::new();
        file.take(32).read_to_end(&mut start).map_err(|e| Error::io(path, e))?;
        if native::is_native(&start) {
            Ok(FileFormat::Native)
        } else if nersc::is_nersc(&start) {
            Ok(FileFormat::Nersc)
        } else if ildg::is_ildg(&start) {
            Ok(FileFormat::Ildg)
        } else if openqcd::is_openqcd(&start, len) {
            Ok(FileFormat::OpenQcd)
        } else {
            Err(Error::Config(format!(
                "{}: not a configuration file (flowhmc, NERSC, ILDG or openQCD)",
                path.display()
            )))
        }
    }

    /// The format's name in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Native => "flowhmc",
            FileFormat::Nersc => "nersc",
            FileFormat::Ildg => "ildg",
            FileFormat::OpenQcd => "openqcd",
        }
    }

    /// Every format.
    pub const ALL: [FileFormat; 4] =
        [FileFormat::Native, FileFormat::Nersc, FileFormat::Ildg, FileFormat::OpenQcd];

    /// The format of name `name` ([`FileFormat::name`]).
    pub fn named(name: &str) -> Option<FileFormat> {
        FileFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// [`FileFormat::detect`] on rank 0, after `check` of what it found there, agreed on by
    /// every rank (collective; an error is every rank's).
    pub fn detect_on_root(
        path: &Path,
        comm: &dyn comm::Comm,
        check: impl FnOnce(FileFormat) -> Result<()>,
    ) -> Result<FileFormat> {
        let found = comm::on_root(comm, || {
            let format = FileFormat::detect(path)?;
            check(format)?;
            Ok(vec![FileFormat::ALL.iter().position(|&f| f == format).expect("a listed format") as u8])
        })?;
        Ok(FileFormat::ALL[comm.broadcast(found.unwrap_or_default())[0] as usize])
    }
}

/// Reads a 4D SU(3) field from a file of any format onto `lattice` (collective on a cut
/// lattice): the format is detected on rank 0 and agreed on.
pub fn read_su3(path: &Path, lattice: &Arc<Lattice>) -> Result<GaugeField<Su3>> {
    let format = FileFormat::detect_on_root(path, lattice.comm().as_ref(), |_| Ok(()))?;
    read_su3_as(format, path, lattice)
}

/// Reads a 4D SU(3) field from a file in `format` onto `lattice` (collective on a cut lattice).
pub fn read_su3_as(format: FileFormat, path: &Path, lattice: &Arc<Lattice>) -> Result<GaugeField<Su3>> {
    match format {
        FileFormat::Native => Ok(native::read_into(path, lattice)?.0),
        FileFormat::Nersc => nersc::read_into(path, lattice),
        FileFormat::Ildg => ildg::read_into(path, lattice),
        FileFormat::OpenQcd => openqcd::read_into(path, lattice),
    }
}

/// Reads a 4D SU(3) field from a file of any format onto the whole lattice it states, open in
/// time with `open_time` (the removed links may then be stored as zero matrices).
pub fn read_su3_whole(path: &Path, open_time: bool) -> Result<GaugeField<Su3>> {
    match FileFormat::detect(path)? {
        FileFormat::Native => Ok(native::read(path, open_time)?.0),
        FileFormat::Nersc => nersc::read(path, open_time),
        FileFormat::Ildg => ildg::read(path, open_time),
        FileFormat::OpenQcd => openqcd::read(path, open_time),
    }
}

/// The whole lattice of extents `dims` on one process, open in time with `open_time`.
fn whole_lattice(dims: &[usize], open: bool) -> Result<Lattice> {
    let lattice = Lattice::new(dims)?;
    Ok(if open { lattice.open_in_time() } else { lattice })
}

/// Writes a 4D SU(3) field in `format` (collective on a cut lattice): NERSC with whole
/// matrices, ILDG and NERSC in f64 (the precision of the field), native with empty metadata.
pub fn write_su3(u: &GaugeField<Su3>, path: &Path, format: FileFormat) -> Result<()> {
    match format {
        FileFormat::Native => native::write(u, serde_json::json!({}), path),
        FileFormat::Nersc => nersc::write(u, path, nersc::Storage::Full, links::Precision::F64),
        FileFormat::Ildg => ildg::write(u, path, links::Precision::F64),
        FileFormat::OpenQcd => openqcd::write(u, path),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// synced and renamed over `path`, so a reader (or a crash) never sees a partial file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file written in pieces and published atomically (see [`write_atomically`]): it lives
/// under a temporary name until [`AtomicFile::commit`], and a file dropped before that is
/// removed, so `path` holds the old file or the whole new one.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

impl AtomicFile {
    /// Creates the temporary file of `path` in `path`'s directory.
    pub fn create(path: &Path) -> Result<Self> {
        let dir = directory_of(path);
        let name =
            path.file_name().ok_or_else(|| Error::Config(format!("{}: not a file path", path.display())))?;
        let tmp = dir.join(temporary_name(&name.to_string_lossy(), std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile { path: path.to_path_buf(), tmp, file: Some(file) })
    }

    fn file(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("an atomic file is open until it is committed")
    }

    /// Appends `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let tmp = self.tmp.clone();
        self.file().write_all(bytes).map_err(|e| Error::io(&tmp, e))
    }

    /// Overwrites the bytes at `offset` (within what was written) and goes on appending after
    /// the end.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let tmp = self.tmp.clone();
        let file = self.file();
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(bytes))
            .and_then(|_| file.seek(SeekFrom::End(0)).map(drop))
            .map_err(|e| Error::io(&tmp, e))
    }

    /// Syncs the file and renames it to its path.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("an atomic file is committed once");
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.path, e));
        }
        if let Ok(d) = std::fs::File::open(directory_of(&self.path)) {
            let _ = d.sync_all(); // make the rename durable where the platform allows
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The directory a file path lies in ("." for a bare name).
fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
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

/// Writes a field file through rank 0 with bounded memory (collective on a cut lattice): the
/// header, then the global data in lexicographic order, `bytes_per_site` a site, from every
/// rank's block bytes `local` ([`slices::gather_slices`]), then the trailer, published
/// atomically. `frame` gives the header and the trailer for a checksum state, the header of
/// the same length for every state: it is written first with the initial state and rewritten
/// with the state after `update` has seen all data in file order, which also gives the
/// trailer. Errors are the same on every rank.
pub fn write_field_file<S>(
    lattice: &Lattice,
    path: &Path,
    local: &[u8],
    bytes_per_site: usize,
    frame: impl Fn(&S) -> (Vec<u8>, Vec<u8>),
    mut state: S,
    mut update: impl FnMut(&mut S, &[u8]),
) -> Result<()> {
    let root = lattice.comm().rank() == 0;
    let mut file = root.then(|| -> Result<AtomicFile> {
        let mut file = AtomicFile::create(path)?;
        file.write_all(&frame(&state).0)?;
        Ok(file)
    });
    let streamed = slices::gather_slices(lattice, local, bytes_per_site, |slice| match &mut file {
        Some(Ok(f)) => {
            update(&mut state, slice);
            f.write_all(slice)
        }
        _ => Ok(()),
    });
    let written = file.map_or(Ok(()), |opened| {
        let mut f = opened?;
        streamed?;
        let (header, trailer) = frame(&state);
        f.write_all(&trailer)?;
        f.write_at(0, &header)?;
        f.commit()
    });
    lattice.comm().agree(written)
}

/// Reads the global data of a field file, positioned at its start in `reader` on rank 0
/// (`None` elsewhere), into every rank's block bytes ([`slices::scatter_slices`]), `inspect`
/// seeing the data in file order on rank 0. Returns the block bytes and, on rank 0, the first
/// read error (the caller agrees on it).
pub fn read_sites(
    lattice: &Lattice,
    path: &Path,
    mut reader: Option<&mut impl std::io::Read>,
    bytes_per_site: usize,
    mut inspect: impl FnMut(&[u8]),
) -> (Vec<u8>, Result<()>) {
    slices::scatter_slices(lattice, bytes_per_site, |slice| {
        let reader = reader.as_mut().expect("rank 0 reads the file");
        reader.read_exact(slice).map_err(|e| Error::io(path, e))?;
        inspect(slice);
        Ok(())
    })
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field on a lattice open in time goes through every format with its zero links (the
    /// openQCD header's plaquette is the plain sum over all 6 V plaquettes, absent ones 0, as
    /// openQCD's `export_cnfg` writes it); the same file on a periodic lattice is refused at the
    /// first zero link, and a periodic field's file read as open has those links set to zero.
    #[test]
    fn open_boundary_fields_keep_their_zero_links_in_every_format() {
        use crate::group::{LinkMatrix, Su3Matrix};
        use crate::loops::plaquette_re_tr_sum;
        let dir = std::env::temp_dir().join(format!("flowhmc-io-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dims = [4, 4, 2, 6];
        let open = Arc::new(whole_lattice(&dims, true).unwrap());
        let u = GaugeField::<Su3>::hot(open.clone(), 4);
        let t = 3;
        let removed: Vec<usize> = (0..open.volume()).filter(|&s| open.is_removed_link(s, t)).collect();
        assert_eq!(removed.len(), 32);
        let periodic = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&dims).unwrap()), 4);
        for format in FileFormat::ALL {
            let path = dir.join(format!("open.{}", format.name()));
            write_su3(&u, &path, format).unwrap();
            let back = read_su3_whole(&path, true).unwrap();
            assert!(back.max_distance(&u) == 0.0, "{}", format.name());
            assert!(removed.iter().all(|&s| back.link(s, t) == Su3Matrix::zero()));
            let e = read_su3_whole(&path, false).unwrap_err().to_string().to_lowercase();
            assert!(
                e.contains("in direction 3 is not in su") && e.contains(", 5]"),
                "{}: {e}",
                format.name()
            );
            assert!(e.contains("a removed link of open boundaries in time"), "{}: {e}", format.name());
            write_su3(&periodic, &path, format).unwrap();
            let cut = read_su3_whole(&path, true).unwrap();
            assert!(removed.iter().all(|&s| cut.link(s, t) == Su3Matrix::zero()));
            assert_eq!(cut.link(0, t), periodic.link(0, t));
        }
        let path = dir.join("header.openqcd");
        write_su3(&u, &path, FileFormat::OpenQcd).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let stated = f64::from_le_bytes(bytes[16..24].try_into().unwrap());
        assert_eq!(stated, plaquette_re_tr_sum(&u) / (6.0 * open.volume() as f64));
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
