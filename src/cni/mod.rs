//! The CNI protocol: environment, versions, results and errors.
//!
//! Nothing here knows about NICs; it is the contract with the runtime.

pub mod env;
pub mod error;
pub mod result;
pub mod version;

pub use env::{Command, Environment};
pub use error::{Error, ErrorCode};
pub use result::CniResult;
pub use version::CniVersion;
