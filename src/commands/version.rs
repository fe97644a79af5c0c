//! VERSION: which spec versions we speak.

use serde_json::{json, Value};

use crate::cni::{CniVersion, Error};

pub fn version(_stdin: &[u8]) -> Result<Value, Error> {
    let supported: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
    Ok(json!({
        "cniVersion": CniVersion::LATEST.as_str(),
        "supportedVersions": supported,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_supported_version() {
        let v = version(b"").unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
}
