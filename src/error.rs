//! One error type for the whole crate. Every failure a caller can cause is a typed `Error`,
//! never a panic; the JS layer turns `ErrorKind` into the matching JS `Error` subclass.

use std::fmt;

/// What went wrong, coarse enough to branch on (JS: `err.name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Lengths or shapes that do not fit together, or sizes beyond what we can address.
    Shape,
    /// Unknown adapter name, a name collision, an adapter that does not fit the layer.
    Adapter,
    /// Bad option values: NaN or infinite scales or data, unknown backend names.
    Config,
    /// The requested backend is missing, or the GPU failed (device lost, out of memory).
    Backend,
    /// A file that is truncated, corrupt or not what it claims to be.
    Format,
    /// Valid input that lorafuse does not handle (yet): a quant type, an architecture.
    Unsupported,
    /// A model's context length (or another hard limit) would be exceeded.
    Limit,
    /// The caller aborted the operation (AbortSignal).
    Aborted,
}

impl ErrorKind {
    /// Name of the JS `Error` subclass that carries this kind.
    pub fn js_name(self) -> &'static str {
        match self {
            ErrorKind::Shape => "ShapeError",
            ErrorKind::Adapter => "AdapterError",
            ErrorKind::Config => "ConfigError",
            ErrorKind::Backend => "BackendError",
            ErrorKind::Format => "FormatError",
            ErrorKind::Unsupported => "UnsupportedError",
            ErrorKind::Limit => "LimitError",
            ErrorKind::Aborted => "AbortError",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn shape(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Shape, m)
    }
    pub fn adapter(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Adapter, m)
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, m)
    }
    pub fn backend(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Backend, m)
    }
    pub fn format(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, m)
    }
    pub fn unsupported(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, m)
    }
    pub fn limit(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, m)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.js_name(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `a * b` for sizes, as a `Shape` error instead of an overflow.
pub fn checked_len(what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::shape(format!("{what}: size {dims:?} overflows")))
}

/// Rejects NaN and infinities in caller data, naming the first bad element.
pub fn check_finite(what: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::config(format!("{what}: element {i} is {} (must be finite)", data[i]))),
    }
}
