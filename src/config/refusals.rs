//! What a value the network config may not choose does to the parse: an error for the verbs
//! that attach or inspect, the node's value (and a note for the node's log) for the verbs
//! that give NICs back.
//!
//! ADD and CHECK refuse such a config (code 7) before anything is captured or moved. DEL and
//! GC cannot: the config is the one ADD had, and the node's policy may have been tightened
//! since (or an earlier release accepted what this one refuses). A DEL that fails is retried
//! forever and blocks the pod's deletion, so DEL uses the node's value instead, logs that it
//! did, and gives the NIC back from what the node's own value finds.

use crate::error::Error;
use crate::node::policy::NodePolicy;

type Result<T> = std::result::Result<T, Error>;

pub(super) enum Refusals {
    /// A refused value is an error (code 7).
    Fatal,
    /// A refused value is replaced by the node's, and why is kept for the log.
    Ignored(Vec<String>),
}

impl Refusals {
    /// `Ok(())` if the refusal is ignored (the caller then uses the node's value).
    pub(super) fn refuse(&mut self, error: Error) -> Result<()> {
        match self {
            Refusals::Fatal => Err(error),
            Refusals::Ignored(notes) => {
                notes.push(error.to_string());
                Ok(())
            }
        }
    }

    /// [`NodePolicy::choose`] under these refusals: the NAD's value if the policy lets it
    /// decide, the node's if the NAD says nothing or (when ignored) what the policy refuses.
    pub(super) fn choose<T: PartialEq>(
        &mut self,
        policy: &NodePolicy,
        key: &str,
        from_nad: Option<T>,
        node: T,
    ) -> Result<T> {
        self.choose_shown(policy, key, key, from_nad, node)
    }

    /// [`Refusals::choose`] for a key a NAD sets under another name (`ipam.poolFile`).
    pub(super) fn choose_shown<T: PartialEq>(
        &mut self,
        policy: &NodePolicy,
        key: &str,
        shown: &str,
        from_nad: Option<T>,
        node: T,
    ) -> Result<T> {
        match from_nad {
            Some(v) if policy.lets_nad_set(key, &v, &node) => Ok(v),
            Some(_) => self.refuse(policy.refuses(shown)).map(|()| node),
            None => Ok(node),
        }
    }

    /// The notes of what was ignored (none when refusals are fatal).
    pub(super) fn into_notes(self) -> Vec<String> {
        match self {
            Refusals::Fatal => Vec::new(),
            Refusals::Ignored(notes) => notes,
        }
    }
}
