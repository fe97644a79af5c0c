//! The CNI error reply, `{"cniVersion","code","msg","details"}`, and the protocol's own
//! failures (environment, decoding, stdin).
//!
//! Which code a plugin error gets is the plugin's business ([`CniError`]); this module only
//! knows the shape of the reply.

use std::fmt;

use serde::Serialize;

use super::CniVersion;

/// An error that can be reported to the runtime.
pub trait CniError: fmt::Display {
    /// The CNI error code (1–99 the spec's, 100 and up the plugin's).
    fn code(&self) -> u32;
    /// Extra text for the `details` field; empty means none.
    fn details(&self) -> String {
        String::new()
    }
}

/// The error JSON for `e`, in the shape of `version`.
pub fn error_reply(e: &dyn CniError, version: CniVersion) -> String {
    #[derive(Serialize)]
    struct Wire<'a> {
        #[serde(rename = "cniVersion")]
        cni_version: &'a str,
        code: u32,
        msg: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        details: String,
    }
    let wire = Wire {
        cni_version: version.as_str(),
        code: e.code(),
        msg: e.to_string(),
        details: e.details(),
    };
    serde_json::to_string(&wire).expect("error JSON always serialises")
}

/// What can go wrong at the protocol level, before the plugin's own work starts.
#[derive(Debug)]
pub enum ProtocolError {
    /// A `CNI_*` variable is missing or malformed.
    InvalidEnvironment { var: &'static str, reason: String },
    /// Input that should be CNI JSON is not.
    Decode(String),
    /// stdin could not be read.
    ReadStdin(std::io::Error),
}

impl ProtocolError {
    pub fn invalid_env(var: &'static str, reason: impl Into<String>) -> ProtocolError {
        ProtocolError::InvalidEnvironment {
            var,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::InvalidEnvironment { var, reason } => {
                write!(f, "invalid {var}: {reason}")
            }
            ProtocolError::Decode(m) => f.write_str(m),
            ProtocolError::ReadStdin(e) => write!(f, "read stdin: {e}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, ProtocolError>;

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain(u32, &'static str);
    impl fmt::Display for Plain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
    }
    impl CniError for Plain {
        fn code(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn the_reply_carries_version_code_and_message_and_omits_empty_details() {
        let v: serde_json::Value =
            serde_json::from_str(&error_reply(&Plain(7, "bad"), CniVersion::V1_0_0)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion": "1.0.0", "code": 7, "msg": "bad"})
        );
    }
}
