//! What every per-attachment operation works from: the runtime's environment and the
//! parsed network config.

use crate::cni::{CniVersion, Environment};
use crate::config::NetConf;

pub struct Context {
    pub env: Environment,
    pub conf: NetConf,
}

impl Context {
    /// The spec version the config asked for (results and errors are written in it).
    pub fn version(&self) -> CniVersion {
        self.conf.cni_version
    }
}
