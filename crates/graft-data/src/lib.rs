//! Images and datasets for graft: decoding with size limits, torchvision-compatible
//! preprocessing (shorter-side resize with PIL's antialiased bilinear filter, center crop,
//! normalisation), and the dataset forms users have (list files and folders).

pub mod dataset;
mod error;
pub mod image;
mod jpeg;
pub mod list;
pub mod selection;
pub mod transform;

pub use dataset::{Dataset, Sample, SplitOptions, SplitSource, open_dataset};
pub use error::DataError;
pub use image::{DecodeLimits, check_image_header, decode_rgb, decode_rgb_bytes};
pub use list::{LabeledImage, find_images, read_list_file};
pub use selection::{Protocol, Selection};
pub use transform::Preprocess;
