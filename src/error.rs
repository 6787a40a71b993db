//! The one error type of the library: every failure names what is wrong.

use std::fmt;

/// Everything that can go wrong in flowhmc, each variant carrying a message that names the
/// offending input (file, key, value) so a user can act on it without reading the code.
#[derive(Debug)]
pub enum Error {
    /// A run card (or parameter set) is malformed or has an invalid value.
    Card(String),
    /// A gauge configuration or checkpoint file is missing, corrupt or does not match.
    Config(String),
    /// An operating-system I/O failure.
    Io {
        /// The file or directory it concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A numerical failure (non-finite energy, non-unitary link, ...).
    Numerical(String),
    /// A flow model is malformed, belongs to another theory or lattice, or its tensor
    /// computation failed.
    Model(String),
    /// A host code's input through the library interface: a buffer of the wrong size, a
    /// non-finite value, a link outside the group, an unknown layout or parameter.
    Host(String),
    /// A compute device is missing or failed: no CUDA driver or GPU, a kernel that does not
    /// compile, a failed device call.
    Device(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}

impl Error {
    /// The error as bytes from which [`Error::decode`] rebuilds an error of the same kind and
    /// message (for the ranks that did not see it).
    pub fn encode(&self) -> Vec<u8> {
        let (kind, a, b) = match self {
            Error::Card(m) => (0, m.clone(), String::new()),
            Error::Config(m) => (1, m.clone(), String::new()),
            Error::Io { path, source } => (2, path.clone(), source.to_string()),
            Error::Numerical(m) => (3, m.clone(), String::new()),
            Error::Model(m) => (4, m.clone(), String::new()),
            Error::Host(m) => (5, m.clone(), String::new()),
            Error::Device(m) => (6, m.clone(), String::new()),
        };
        serde_json::to_vec(&(kind, a, b)).unwrap_or_default()
    }

    /// The error encoded by [`Error::encode`] (a numerical failure naming the bytes when they
    /// are not such an encoding).
    pub fn decode(bytes: &[u8]) -> Error {
        match serde_json::from_slice::<(u8, String, String)>(bytes) {
            Ok((0, m, _)) => Error::Card(m),
            Ok((1, m, _)) => Error::Config(m),
            Ok((2, path, source)) => Error::Io { path, source: std::io::Error::other(source) },
            Ok((3, m, _)) => Error::Numerical(m),
            Ok((4, m, _)) => Error::Model(m),
            Ok((5, m, _)) => Error::Host(m),
            Ok((6, m, _)) => Error::Device(m),
            _ => Error::Numerical(format!("an undecodable error from another rank ({} bytes)", bytes.len())),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Card(m) => write!(f, "invalid run card: {m}"),
            Error::Config(m) => write!(f, "bad configuration file: {m}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Numerical(m) => write!(f, "numerical failure: {m}"),
            Error::Model(m) => write!(f, "flow model: {m}"),
            Error::Host(m) => write!(f, "host input: {m}"),
            Error::Device(m) => write!(f, "device: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(e.to_string())
    }
}

/// How a card or file spells a value of one of the library's enums (its serde name, e.g.
/// "flow-mh", "su3"), for messages: a user never sees Rust's debug names.
pub fn spelling(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Result with the library's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_ranks_with_their_messages() {
        let errors = [
            Error::Card("run.seed: bad".into()),
            Error::Config("x".into()),
            Error::io("/tmp/f", std::io::Error::other("gone")),
            Error::Numerical("NaN".into()),
            Error::Model("m".into()),
            Error::Host("h".into()),
            Error::Device("d".into()),
        ];
        for e in &errors {
            assert_eq!(Error::decode(&e.encode()).to_string(), e.to_string());
        }
        assert!(Error::decode(b"junk").to_string().contains("undecodable"));
    }
}
