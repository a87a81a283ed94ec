//! File formats the command-line tool and the tests read and write. The library API itself works
//! on caller buffers ([`crate::VolumeView`]) and never touches files except the model folder.

pub mod nifti;
pub mod npy;
