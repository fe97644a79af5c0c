//! The floor under a cycle's own cost: what any wrapper that records a NIC's state
//! before moving it must pay whatever its code does. Two process starts (ADD and DEL;
//! the benchmark times them as VERSION twice, with the same environment and stdin) and
//! one durable write of a state-file-sized file, which this module times in this
//! process, in the benchmark's file system:
//!
//! create a temp file, write it, `fsync` it, rename it over the final name, `fsync` the
//! directory (without the last step a crash may lose the rename).
//!
//! The file is removed afterwards, outside the timed section, so every write creates a
//! new file, as a first ADD does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// About a state file's size (they are 0.7–1 KiB); anything under one block costs the
/// same.
pub const STATE_FILE_BYTES: usize = 1024;

/// Durable writes into one directory.
pub struct DurableWrite {
    dir: PathBuf,
    data: Vec<u8>,
}

impl DurableWrite {
    /// Writes go to `dir`, which is created if missing.
    pub fn new(dir: PathBuf) -> io::Result<DurableWrite> {
        fs::create_dir_all(&dir)?;
        let data = (0..STATE_FILE_BYTES).map(|k| b"{}\n"[k % 3]).collect();
        Ok(DurableWrite { dir, data })
    }

    /// One durable write, timed; `k` makes the names unique.
    pub fn time(&self, k: usize) -> io::Result<Duration> {
        let tmp = self.dir.join(format!(".tmp-{k}"));
        let done = self.dir.join(format!("state-{k}.json"));
        let start = Instant::now();
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&self.data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &done)?;
        File::open(&self.dir)?.sync_all()?;
        let elapsed = start.elapsed();
        fs::remove_file(&done)?;
        Ok(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_leaves_nothing_behind_and_takes_some_time() {
        let dir = std::env::temp_dir().join(format!("bench-floor-{}", std::process::id()));
        let w = DurableWrite::new(dir.join("sub")).unwrap();
        assert_eq!(w.data.len(), STATE_FILE_BYTES);
        let t = w.time(1).unwrap();
        assert!(t > Duration::ZERO);
        assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 0);
        // A name left over from an interrupted run is not overwritten silently.
        fs::write(dir.join("sub/.tmp-2"), b"x").unwrap();
        assert!(w.time(2).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
