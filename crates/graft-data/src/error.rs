use std::path::PathBuf;

/// A problem with one file or one dataset, always naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },

    #[error("{path}: not an image graft can read (JPEG, PNG, GIF, BMP, WebP): {detail}")]
    NotAnImage { path: PathBuf, detail: String },

    #[error("{path}: corrupt or truncated image: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "{path}: image is {width}x{height}, over the limit of {limit} (a decompression bomb, or \
         a very large scan); graft refuses it rather than exhaust memory"
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: String,
    },

    #[error("dataset {path}: {detail}")]
    Dataset { path: PathBuf, detail: String },

    #[error("{path}:{line}: {detail}")]
    ListFile {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

impl DataError {
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::NotAnImage { path, .. }
            | Self::Corrupt { path, .. }
            | Self::TooLarge { path, .. }
            | Self::ListFile { path, .. }
            | Self::Dataset { path, .. } => path,
        }
    }
}
