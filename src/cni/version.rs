//! CNI specification versions this plugin speaks.

use std::fmt;

/// A CNI spec version we support. Ordered, so `v >= CniVersion::V0_4_0` reads naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// The `cniVersion` of a config, as far as it can be read; used to version error replies
/// even when the rest of the config is bad.
pub fn peek(stdin: &[u8]) -> Option<CniVersion> {
    let v: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    CniVersion::parse(v.get("cniVersion")?.as_str()?)
}

impl CniVersion {
    pub const ALL: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// Newest version the reference host-device 1.1.x understands; we cap what we send it.
    pub const DELEGATE_MAX: CniVersion = CniVersion::V1_0_0;

    pub fn parse(s: &str) -> Option<CniVersion> {
        CniVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Results before 1.0.0 tag every IP with `"version": "4" | "6"`.
    pub fn ips_carry_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    pub fn supports_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    pub fn supports_status_and_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_what_it_can() {
        assert_eq!(peek(br#"{"cniVersion":"0.4.0"}"#), Some(CniVersion::V0_4_0));
        assert_eq!(peek(b"{"), None);
    }

    #[test]
    fn parses_every_supported_version_and_nothing_else() {
        for v in CniVersion::ALL {
            assert_eq!(CniVersion::parse(v.as_str()), Some(v));
        }
        for bad in ["0.1.0", "0.2.0", "1.2.0", "", "1.0", "v1.0.0"] {
            assert_eq!(CniVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_are_ordered() {
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(CniVersion::V1_1_0 > CniVersion::DELEGATE_MAX);
        assert!(CniVersion::V0_4_0.ips_carry_version());
        assert!(!CniVersion::V1_0_0.ips_carry_version());
        assert!(!CniVersion::V0_3_1.supports_check());
        assert!(CniVersion::V1_1_0.supports_status_and_gc());
    }
}
