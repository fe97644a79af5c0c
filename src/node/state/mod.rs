//! Per-attachment state on disk: one JSON file per (container, ifname), written atomically
//! before anything moves, plus flock-based locks and device claims.
//!
//! Layout under the state dir (0700):
//!   `<containerID>-<ifname>.json`   the captured host configuration (0600); an id too
//!                                   long for a file name becomes `<prefix>+<FNV-1a 64>`
//!                                   (`record::state_file_name`)
//!   `claim-<device key>`            hard link to the state file that owns a device (a
//!                                   second name, so no inode of its own to create or free)
//!   `locks/attachments.lock`        one byte-range lock per attachment, all in one file
//!   `locks/dev-<device key>.lock`   flock target, one per device
//!   `.spare-<n>`                    state files of finished attachments, kept for reuse
//!   `ip-interface-mappings.json`    the vendor plugin's state, on nodes migrating from it
//!
//! An ADD costs one file fsync and one directory fsync; a DEL none (see `remove`).
//! A DEL parks its state file as a spare rather than deleting it, and the next ADD writes
//! into a spare: deleting a file frees its data block, which was the slowest step of a DEL
//! on ext4 (≈ 0.3 ms on the benchmark VM, mounted with `discard`), and a reused block needs
//! no allocation at ADD either.
//!
//! One file per concern: `record` (what a state file holds, and the keys), `salvage` (reading
//! a damaged one), `store` (load, save, remove), `claims` (who owns a device), `locks`,
//! `spares` (the pool of parked files), `vendor` (the vendor plugin's mapping file) and `fs`
//! (the file-system primitives under them all).

mod claims;
mod fs;
mod locks;
mod record;
mod salvage;
mod spares;
mod store;
#[cfg(test)]
mod testing;
mod vendor;

pub use claims::Claim;
pub use locks::Lock;
pub use record::{device_key, name_key, pci_key, AttachmentState, PodRef, SCHEMA_VERSION};
pub use store::{StateStore, VENDOR_MAPPINGS_FILE};
pub use vendor::VendorEntry;

use crate::error::Error;

type Result<T> = std::result::Result<T, Error>;
