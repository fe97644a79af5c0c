//! The CNI protocol: environment, versions, results, the error reply, and the process
//! every plugin binary of this crate is (its skeleton, its allocator and its memcpy).
//!
//! Nothing here knows about NICs; it is the contract with the runtime. A leaf: it imports
//! nothing of this crate.

pub mod arena;
pub mod env;
pub mod error;
pub mod memcpy;
pub mod result;
pub mod skel;
pub mod version;

pub use env::{Command, Environment};
pub use error::{error_reply, CniError, ProtocolError};
pub use result::CniResult;
pub use version::CniVersion;
