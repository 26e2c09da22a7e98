//! The one error type of `common`.

use std::path::PathBuf;

/// Everything that can go wrong in `common` outside of a [`crate::Verdict`].
///
/// A `Verdict` is the answer to "is this OTP good"; an `Error` means the question could not be
/// asked properly (bad configuration, unreadable file) or an administrative call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read or parsed. Fix the file named.
    #[error("{file}: {message}")]
    ConfigFile { file: String, message: String },

    /// A configuration key has a bad value. Fix the key named in the file named.
    #[error("{file}: key `{key}`: {message}")]
    ConfigKey {
        file: String,
        key: String,
        message: String,
    },

    /// A file holding a secret can be read by other users. Run the `chmod` in the message.
    #[error("{file}: holds a secret (key `{key}`) but is readable by other users (mode {mode:04o}); run `chmod o-rwx {file}`")]
    SecretFileMode {
        file: PathBuf,
        key: String,
        mode: u32,
    },

    /// A file holding a secret or a mapping could not be read.
    #[error("{file}: cannot read (key `{key}`): {source}")]
    ReadFile {
        file: PathBuf,
        key: String,
        #[source]
        source: std::io::Error,
    },

    /// A line of the token map is malformed. Fix that line.
    #[error("{file}:{line}: {message}")]
    TokenMap {
        file: PathBuf,
        line: usize,
        message: String,
    },

    /// The HTTP client could not be built (bad CA file, client certificate or key).
    #[error("cannot set up the SxS HTTP client: {0}")]
    HttpClient(String),

    /// SxS answered an administrative call with an exception or a SOAP fault.
    #[error("SxS {operation} failed: SxS {code}: {message}")]
    Sxs {
        operation: &'static str,
        code: String,
        message: String,
    },

    /// No usable answer to an administrative call (network, TLS, timeout, malformed body).
    #[error("SxS {operation} failed: {cause}")]
    SxsUnavailable {
        operation: &'static str,
        cause: String,
    },

    /// A value given to an administrative call is not acceptable; nothing was sent.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
