//! The CNI error reply, `{"cniVersion","code","msg","details"}`, and the protocol's own
//! failures (environment, decoding, stdin).
//!
//! Which code a plugin error gets is the plugin's business ([`CniError`]); this module only
//! knows the shape of the reply, and how an OS error is said to a person: a `msg` is read in
//! `kubectl describe pod`, so it says the errno in words ([`errno_in_words`]) and leaves the
//! number to `details` ([`errno_details`]).

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
            ProtocolError::ReadStdin(e) => write!(f, "reading stdin: {}", io_error_in_words(e)),
        }
    }
}

pub type Result<T> = std::result::Result<T, ProtocolError>;

/// What an errno means, in words and without its number: `file exists`.
pub fn errno_in_words(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("the kernel refused it (error {errno})"),
        known => lower_first(known.desc()),
    }
}

/// An errno for the `details` field: `errno 17 (EEXIST: File exists)`.
pub fn errno_details(errno: i32) -> String {
    format!("errno {errno} ({})", nix::errno::Errno::from_raw(errno))
}

/// An I/O error in words: its errno without the number (`permission denied`), or its own
/// text when it has no errno.
pub fn io_error_in_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => errno_in_words(errno),
        None => e.to_string(),
    }
}

/// The low-level account of an I/O error for `details`: its errno, or nothing when the
/// message said it all already.
pub fn io_error_details(e: &std::io::Error) -> String {
    e.raw_os_error().map(errno_details).unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

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

    #[test]
    fn an_errno_is_words_in_the_message_and_its_number_in_the_details() {
        assert_eq!(errno_in_words(nix::libc::EEXIST), "file exists");
        assert_eq!(
            errno_details(nix::libc::EEXIST),
            "errno 17 (EEXIST: File exists)"
        );
        let denied = std::io::Error::from_raw_os_error(nix::libc::EACCES);
        assert_eq!(io_error_in_words(&denied), "permission denied");
        assert_eq!(
            io_error_details(&denied),
            "errno 13 (EACCES: Permission denied)"
        );
        let plain = std::io::Error::other("pipe closed");
        assert_eq!(
            (io_error_in_words(&plain), io_error_details(&plain)),
            ("pipe closed".to_owned(), String::new())
        );
        assert!(errno_in_words(4000).starts_with("the kernel refused it"));
    }
}
