//! The `amd-host-device` binary: a CNI plugin when a runtime starts it (`CNI_COMMAND` set),
//! the admin commands when a person gives it arguments.

use std::process::ExitCode;

use amd_host_device::cni::arena::{Arena, PLUGIN_ARENA_BYTES};
use amd_host_device::cni::skel;
use amd_host_device::{admin, verbs};

#[global_allocator]
static ALLOCATOR: Arena<PLUGIN_ARENA_BYTES> = Arena::new();

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !skel::is_cni_invocation() && !args.is_empty() {
        return admin::run(&args);
    }
    skel::run(verbs::run)
}
