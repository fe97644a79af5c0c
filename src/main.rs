//! Entry point: read the CNI command and stdin, dispatch, print the result or error JSON.

use std::io::{Read, Write};
use std::process::ExitCode;

use amd_host_device::arena::{Arena, PLUGIN_ARENA_BYTES};
use amd_host_device::cni::{CniVersion, Command, Error};
use amd_host_device::{admin, commands, config};

#[global_allocator]
static ALLOCATOR: Arena<PLUGIN_ARENA_BYTES> = Arena::new();

fn main() -> ExitCode {
    // A person with arguments and no CNI_COMMAND gets the admin commands.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("CNI_COMMAND").is_none() && !args.is_empty() {
        return ExitCode::from(admin::run(&args) as u8);
    }
    let command = match std::env::var("CNI_COMMAND") {
        Ok(c) => Command::parse(&c).ok_or_else(|| {
            Error::invalid_env("CNI_COMMAND", format!("{c:?} is not a CNI command"))
        }),
        Err(_) => Err(Error::invalid_env("CNI_COMMAND", "must be set")),
    };
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = command.and_then(|c| {
        read.map_err(|e| Error::io("read stdin", e))?;
        commands::run(c, &stdin).inspect_err(|e| commands::log_failure(c, e))
    });
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(Some(json)) => {
            let _ = writeln!(stdout, "{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let version = config::peek_version(&stdin).unwrap_or(CniVersion::LATEST);
            let _ = writeln!(stdout, "{}", e.to_json(version));
            ExitCode::FAILURE
        }
    }
}
