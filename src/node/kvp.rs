//! Hyper-V KVP pool: the IPoIB addresses Azure publishes for its RDMA VMs.
//!
//! `hv_kvp_daemon` keeps each pool as a flat file of fixed-size records: a 512-byte
//! NUL-padded key followed by a 2048-byte NUL-padded value. The host publishes the InfiniBand
//! addresses under the key `IPoIB_Data` as `NUMPAIRS:<n>|<12-hex MAC>:<IPv4>|…`, one pair per
//! IPoIB interface, keyed by a 6-byte MAC derived from the 20-byte IPoIB hardware address.

use std::fs::File;
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg};

use crate::cni::error::{errno_in_words, io_error_in_words};
use crate::device_id::MacAddress;
use crate::error::KvpError;
use crate::node::lock_wait::{byte_range, poll_lock, Waited};

type Result<T> = std::result::Result<T, KvpError>;

/// Where `hv_kvp_daemon` keeps pool 0 (host → guest, where `IPoIB_Data` lives).
pub const DEFAULT_POOL: &str = "/var/lib/hyperv/.kvp_pool_0";
/// Azure's IPoIB subnets are /16 (what WALinuxAgent configures).
pub const DEFAULT_PREFIX_LEN: u8 = 16;

/// The key of the record holding the MAC/IPv4 pairs.
pub const IPOIB_KEY: &str = "IPoIB_Data";
/// `HV_KVP_EXCHANGE_MAX_KEY_SIZE` and `HV_KVP_EXCHANGE_MAX_VALUE_SIZE` (linux/hyperv.h).
pub const KEY_SIZE: usize = 512;
pub const VALUE_SIZE: usize = 2048;
pub const RECORD_SIZE: usize = KEY_SIZE + VALUE_SIZE;

/// A pool is a few dozen records; anything far larger is not a KVP pool (or is /dev/zero).
const MAX_POOL_BYTES: u64 = 8 << 20;
/// hv_kvp_daemon holds its lock only while it rewrites the file.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The 6-byte MAC the KVP pairs are keyed by: an Ethernet address as is; for a 20-byte IPoIB
/// address (4 bytes QPN + 16 bytes GID) bytes 12–14 and 17–19: the port GUID (bytes 12–19)
/// without its two middle bytes, the way Azure derives the MAC it publishes.
pub fn mac_of_hardware_address(hw: &[u8]) -> Option<[u8; 6]> {
    match hw.len() {
        6 => hw.try_into().ok(),
        20 => Some([hw[12], hw[13], hw[14], hw[17], hw[18], hw[19]]),
        _ => None,
    }
}

/// Every MAC/IPv4 pair of the pool's `IPoIB_Data` record, read under a shared fcntl lock
/// (the kind hv_kvp_daemon takes), so we never see a half-rewritten pool.
pub fn read_ipoib_pairs(pool: &Path) -> Result<Vec<([u8; 6], Ipv4Addr)>> {
    let bytes = read_locked(pool)?;
    let value = ipoib_value(&bytes, pool)?;
    parse_ipoib_value(value).map_err(|e| match e {
        KvpError::Malformed(m) => {
            KvpError::Malformed(format!("{IPOIB_KEY} record in {}: {m}", pool.display()))
        }
        other => other,
    })
}

/// The IPv4 address the pool lists for the interface with hardware address `hwaddr`.
pub fn lookup(pool: &Path, hwaddr: &[u8]) -> Result<Ipv4Addr> {
    let shown = MacAddress::from_bytes(hwaddr);
    let mac = mac_of_hardware_address(hwaddr).ok_or_else(|| {
        KvpError::NoEntry(format!(
            "hardware address {shown} is neither a 6-byte Ethernet nor a 20-byte IPoIB address"
        ))
    })?;
    let pairs = read_ipoib_pairs(pool)?;
    pairs
        .iter()
        .find(|(m, _)| *m == mac)
        .map(|(_, ip)| *ip)
        .ok_or_else(|| {
            let listed: Vec<String> = pairs.iter().map(|(m, _)| show_mac(m)).collect();
            let from = if hwaddr.len() == 6 {
                String::new()
            } else {
                format!(" (from hardware address {shown})")
            };
            KvpError::NoEntry(format!(
                "{IPOIB_KEY} in {} has no address for MAC {}{from}; it lists [{}]",
                pool.display(),
                show_mac(&mac),
                listed.join(", ")
            ))
        })
}

fn show_mac(mac: &[u8; 6]) -> String {
    MacAddress::from_bytes(mac).to_string()
}

/// The whole pool file, read while holding a shared lock on it.
fn read_locked(pool: &Path) -> Result<Vec<u8>> {
    let unavailable = |what: &str, e: &std::io::Error| {
        KvpError::PoolUnavailable(format!(
            "cannot {what} KVP pool {}: {}",
            pool.display(),
            io_error_in_words(e)
        ))
    };
    let file = File::open(pool).map_err(|e| unavailable("open", &e))?;
    lock_shared(&file, pool)?;
    let mut bytes = Vec::new();
    file.take(MAX_POOL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable("read", &e))?;
    if bytes.len() as u64 > MAX_POOL_BYTES {
        return Err(KvpError::Malformed(format!(
            "KVP pool {} is larger than {MAX_POOL_BYTES} bytes: not a KVP pool",
            pool.display()
        )));
    }
    // `take` consumed the file: closing it released the lock once the read was done.
    Ok(bytes)
}

/// fcntl F_RDLCK on the whole file, polled (not F_SETLKW) so a stuck writer costs us
/// [`LOCK_TIMEOUT`] and a "try again later", not a hung CNI call.
fn lock_shared(file: &File, pool: &Path) -> Result<()> {
    let whole_file = byte_range(nix::libc::F_RDLCK, 0, 0);
    match poll_lock(LOCK_TIMEOUT, || {
        fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&whole_file)).map(drop)
    }) {
        Waited::Acquired(()) => Ok(()),
        Waited::TimedOut => Err(KvpError::Busy(format!(
            "KVP pool {} stayed write-locked for {}s",
            pool.display(),
            LOCK_TIMEOUT.as_secs()
        ))),
        Waited::Failed(e) => Err(KvpError::PoolUnavailable(format!(
            "cannot lock KVP pool {}: {}",
            pool.display(),
            errno_in_words(e as i32)
        ))),
    }
}

/// One record: key and value with their NUL padding cut off.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    key: &'a [u8],
    value: &'a [u8],
}

/// The whole records of a pool, and the bytes of a trailing partial record (empty if none).
fn split_records(bytes: &[u8]) -> (Vec<Record<'_>>, &[u8]) {
    let chunks = bytes.chunks_exact(RECORD_SIZE);
    let trailing = chunks.remainder();
    let records = chunks
        .map(|r| Record {
            key: until_nul(&r[..KEY_SIZE]),
            value: until_nul(&r[KEY_SIZE..]),
        })
        .collect();
    (records, trailing)
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Keys are compared ASCII-case-insensitively, as Azure's own readers do.
fn is_ipoib_key(key: &[u8]) -> bool {
    key.eq_ignore_ascii_case(IPOIB_KEY.as_bytes())
}

/// The value of the `IPoIB_Data` record.
///
/// hv_kvp_daemon only ever writes whole records, so a file whose length is not a multiple of
/// the record size was cut short. Like the daemon (which reads whole records only) we ignore
/// such a tail, unless it is, or may be, the `IPoIB_Data` record we want: then the pool is
/// corrupt, which must not look like "the host published nothing".
fn ipoib_value<'a>(bytes: &'a [u8], pool: &Path) -> Result<&'a str> {
    let (records, trailing) = split_records(bytes);
    if let Some(r) = records.iter().find(|r| is_ipoib_key(r.key)) {
        return std::str::from_utf8(r.value).map_err(|_| {
            KvpError::Malformed(format!(
                "{IPOIB_KEY} record in {} is not UTF-8",
                pool.display()
            ))
        });
    }
    if tail_may_be_ipoib(trailing) {
        return Err(KvpError::Malformed(format!(
            "KVP pool {} is truncated: its last record ({IPOIB_KEY}) has {} of {RECORD_SIZE} bytes",
            pool.display(),
            trailing.len()
        )));
    }
    let mut msg = format!(
        "KVP pool {} has no {IPOIB_KEY} record ({} records",
        pool.display(),
        records.len()
    );
    if !trailing.is_empty() {
        msg += &format!(", and a truncated record of {} bytes", trailing.len());
    }
    msg += "); is this an Azure VM with InfiniBand, and is hv_kvp_daemon running?";
    Err(KvpError::NoRecord(msg))
}

/// Whether a partial record's key is, or could have grown into, `IPoIB_Data`.
fn tail_may_be_ipoib(trailing: &[u8]) -> bool {
    let key_bytes = &trailing[..trailing.len().min(KEY_SIZE)];
    let key = until_nul(key_bytes);
    if key.is_empty() {
        return false;
    }
    let cut_in_key = key.len() == key_bytes.len() && key_bytes.len() < KEY_SIZE;
    if cut_in_key {
        // Only a prefix survived: it may be ours if it is a prefix of our key.
        key.len() <= IPOIB_KEY.len() && key.eq_ignore_ascii_case(&IPOIB_KEY.as_bytes()[..key.len()])
    } else {
        is_ipoib_key(key)
    }
}

/// Parses `NUMPAIRS:<n>|<MAC>:<IPv4>|…` (one trailing `|` and surrounding whitespace are
/// tolerated; MACs are 12 hex digits, either case). The count must match the pairs listed.
fn parse_ipoib_value(value: &str) -> Result<Vec<([u8; 6], Ipv4Addr)>> {
    let value = value.trim();
    let mut parts = value.split('|');
    let head = parts.next().unwrap_or_default();
    let count = head
        .split_once(':')
        .filter(|(label, _)| label.trim().eq_ignore_ascii_case("NUMPAIRS"))
        .ok_or_else(|| KvpError::Malformed(format!("{value:?} does not start with NUMPAIRS:<n>")))?
        .1;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| KvpError::Malformed(format!("NUMPAIRS {count:?} is not a number")))?;
    let mut items: Vec<&str> = parts.collect();
    if items.last() == Some(&"") {
        items.pop();
    }
    if items.len() != count {
        return Err(KvpError::Malformed(format!(
            "NUMPAIRS says {count} but {} pairs follow",
            items.len()
        )));
    }
    let mut pairs: Vec<([u8; 6], Ipv4Addr)> = Vec::with_capacity(count);
    for item in items {
        let (mac, ip) = parse_pair(item.trim())?;
        if pairs.iter().any(|(m, other)| *m == mac && *other != ip) {
            return Err(KvpError::Malformed(format!(
                "MAC {} is listed twice with different addresses",
                show_mac(&mac)
            )));
        }
        pairs.push((mac, ip));
    }
    Ok(pairs)
}

/// One `<12 hex digits>:<IPv4>` pair.
fn parse_pair(item: &str) -> Result<([u8; 6], Ipv4Addr)> {
    let (mac, ip) = item
        .split_once(':')
        .ok_or_else(|| KvpError::Malformed(format!("pair {item:?} is not <MAC>:<IPv4>")))?;
    let mac = parse_hex_mac(mac).ok_or_else(|| {
        KvpError::Malformed(format!("pair {item:?}: {mac:?} is not 12 hex digits"))
    })?;
    let ip = ip.parse::<Ipv4Addr>().map_err(|_| {
        KvpError::Malformed(format!("pair {item:?}: {ip:?} is not an IPv4 address"))
    })?;
    Ok((mac, ip))
}

fn parse_hex_mac(s: &str) -> Option<[u8; 6]> {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// One record as hv_kvp_daemon writes it.
    fn record(key: &str, value: &str) -> Vec<u8> {
        assert!(key.len() < KEY_SIZE && value.len() < VALUE_SIZE);
        let mut r = vec![0u8; RECORD_SIZE];
        r[..key.len()].copy_from_slice(key.as_bytes());
        r[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value.as_bytes());
        r
    }

    fn pool_of(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    /// A realistic pool: unrelated records around the IPoIB one.
    fn pool_with(ipoib_value: &str) -> Vec<u8> {
        [
            record("HostName", "hv-host-17"),
            record("PhysicalHostName", "HV17"),
            record(IPOIB_KEY, ipoib_value),
            record("VirtualMachineName", "vm-0"),
        ]
        .concat()
    }

    const TWO: &str = "NUMPAIRS:2|00155D33FF0B:172.16.1.4|00155d33ff0c:172.16.1.5";
    const IB_HW: [u8; 20] = [
        0x00, 0x00, 0x01, 0x49, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x15, 0x5d, 0xff, 0xfd, 0x33,
        0xff, 0x0b,
    ];

    /// The CNI code the runtime would see.
    fn code(e: &KvpError) -> u32 {
        crate::error::Error::from(e.clone()).code() as u32
    }

    #[test]
    fn mac_of_ipoib_and_ethernet_addresses() {
        assert_eq!(
            mac_of_hardware_address(&IB_HW),
            Some([0x00, 0x15, 0x5d, 0x33, 0xff, 0x0b])
        );
        let eth = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
        assert_eq!(mac_of_hardware_address(&eth), Some(eth));
        assert_eq!(mac_of_hardware_address(&[]), None);
        assert_eq!(mac_of_hardware_address(&[1, 2, 3, 4, 5, 6, 7, 8]), None);
    }

    #[test]
    fn parses_several_pairs_in_either_case() {
        let pairs = parse_ipoib_value(TWO).unwrap();
        assert_eq!(
            pairs,
            vec![
                (
                    [0x00, 0x15, 0x5d, 0x33, 0xff, 0x0b],
                    "172.16.1.4".parse().unwrap()
                ),
                (
                    [0x00, 0x15, 0x5d, 0x33, 0xff, 0x0c],
                    "172.16.1.5".parse().unwrap()
                ),
            ]
        );
        // A trailing '|', whitespace and a lower-case label are tolerated.
        let loose = " numpairs:1|00155d33ff0b:172.16.1.4|\n";
        assert_eq!(parse_ipoib_value(loose).unwrap().len(), 1);
        assert_eq!(parse_ipoib_value("NUMPAIRS:0").unwrap(), vec![]);
    }

    #[test]
    fn rejects_malformed_values_with_precise_messages() {
        let cases = [
            ("", "does not start with NUMPAIRS"),
            ("garbage", "does not start with NUMPAIRS"),
            (
                "PAIRS:1|00155D33FF0B:172.16.1.4",
                "does not start with NUMPAIRS",
            ),
            ("NUMPAIRS:x|00155D33FF0B:172.16.1.4", "is not a number"),
            ("NUMPAIRS:-1", "is not a number"),
            (
                "NUMPAIRS:3|00155D33FF0B:172.16.1.4",
                "says 3 but 1 pairs follow",
            ),
            ("NUMPAIRS:1", "says 1 but 0 pairs follow"),
            ("NUMPAIRS:1|00155D33FF0B", "is not <MAC>:<IPv4>"),
            ("NUMPAIRS:1|00155D33FF:172.16.1.4", "is not 12 hex digits"),
            ("NUMPAIRS:1|00155D33FFZZ:172.16.1.4", "is not 12 hex digits"),
            ("NUMPAIRS:1|+0155D33FF0B:172.16.1.4", "is not 12 hex digits"),
            ("NUMPAIRS:1|00155D33FF0B:172.16.1", "is not an IPv4 address"),
            ("NUMPAIRS:1|00155D33FF0B:fe80::1", "is not an IPv4 address"),
            (
                "NUMPAIRS:2|00155D33FF0B:172.16.1.4|00155D33FF0B:172.16.1.9",
                "listed twice",
            ),
        ];
        for (value, want) in cases {
            let err = parse_ipoib_value(value).unwrap_err();
            assert_eq!(code(&err), 112, "{value:?}: {err}");
            assert!(err.to_string().contains(want), "{value:?}: {err}");
        }
    }

    #[test]
    fn splits_records_and_trims_nul_padding() {
        let bytes = [record("a", "1"), record("bb", "")].concat();
        let (records, trailing) = split_records(&bytes);
        assert_eq!(
            records,
            vec![
                Record {
                    key: b"a",
                    value: b"1"
                },
                Record {
                    key: b"bb",
                    value: b""
                }
            ]
        );
        assert!(trailing.is_empty());
        let (records, trailing) = split_records(&bytes[..RECORD_SIZE + 7]);
        assert_eq!(records.len(), 1);
        assert_eq!(trailing.len(), 7);
    }

    #[test]
    fn reads_a_well_formed_pool() {
        let f = pool_of(&pool_with(TWO));
        let pairs = read_ipoib_pairs(f.path()).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            lookup(f.path(), &IB_HW).unwrap(),
            "172.16.1.4".parse::<Ipv4Addr>().unwrap()
        );
        let eth = [0x00, 0x15, 0x5d, 0x33, 0xff, 0x0c];
        assert_eq!(
            lookup(f.path(), &eth).unwrap(),
            "172.16.1.5".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn the_key_is_matched_without_regard_to_case() {
        let f = pool_of(&record("ipoib_data", TWO));
        assert_eq!(read_ipoib_pairs(f.path()).unwrap().len(), 2);
    }

    #[test]
    fn missing_pool_is_110_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        let err = read_ipoib_pairs(&path).unwrap_err();
        assert_eq!(code(&err), 110);
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        // A directory is no pool either.
        assert_eq!(code(&read_ipoib_pairs(dir.path()).unwrap_err()), 110);
    }

    #[test]
    fn no_ipoib_record_is_111() {
        for bytes in [
            vec![],
            [record("HostName", "h"), record("IPoIB_Dat", TWO)].concat(),
            [record("IPoIB_Data2", TWO), record("X", "")].concat(),
            // A truncated record that cannot be ours is ignored, as hv_kvp_daemon does.
            [
                record("HostName", "h"),
                record("Other", "v")[..600].to_vec(),
            ]
            .concat(),
        ] {
            let f = pool_of(&bytes);
            let err = read_ipoib_pairs(f.path()).unwrap_err();
            assert_eq!(code(&err), 111, "{err}");
            assert!(err.to_string().contains("no IPoIB_Data record"), "{err}");
        }
    }

    #[test]
    fn truncated_ipoib_record_is_112() {
        let full = pool_with(TWO);
        // Cut inside the IPoIB record's value, and inside its key.
        for len in [2 * RECORD_SIZE + KEY_SIZE + 20, 2 * RECORD_SIZE + 5] {
            let f = pool_of(&full[..len]);
            let err = read_ipoib_pairs(f.path()).unwrap_err();
            assert_eq!(code(&err), 112, "cut at {len}: {err}");
            assert!(err.to_string().contains("truncated"), "{err}");
        }
        // A truncated record after a whole IPoIB record does not matter.
        let f = pool_of(&full[..3 * RECORD_SIZE + 100]);
        assert_eq!(read_ipoib_pairs(f.path()).unwrap().len(), 2);
    }

    #[test]
    fn garbage_is_112_or_111_never_a_panic() {
        // Garbage in the IPoIB value.
        let f = pool_of(&pool_with("\u{1}\u{2}garbage|||:"));
        assert_eq!(code(&read_ipoib_pairs(f.path()).unwrap_err()), 112);
        // Non-UTF-8 value.
        let mut bytes = record(IPOIB_KEY, "NUMPAIRS:1|");
        bytes[KEY_SIZE + 11] = 0xff;
        let f = pool_of(&bytes);
        assert_eq!(code(&read_ipoib_pairs(f.path()).unwrap_err()), 112);
        // Random bytes of every length around a record: never a panic, only KVP errors.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [0, 1, 10, 511, 512, 513, 2559, 2560, 2561, 5121, 7680] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let f = pool_of(&bytes);
            let err = read_ipoib_pairs(f.path()).unwrap_err();
            assert!(matches!(code(&err), 111 | 112), "{len}: {err}");
        }
    }

    #[test]
    fn bad_numpairs_is_112_naming_the_pool() {
        let f = pool_of(&pool_with("NUMPAIRS:3|00155D33FF0B:172.16.1.4"));
        let err = read_ipoib_pairs(f.path()).unwrap_err();
        assert_eq!(code(&err), 112);
        assert!(
            err.to_string().contains(&*f.path().to_string_lossy()),
            "{err}"
        );
        assert!(err.to_string().contains("NUMPAIRS says 3"), "{err}");
    }

    #[test]
    fn no_entry_for_this_mac_is_113_naming_the_mac() {
        let f = pool_of(&pool_with(TWO));
        let err = lookup(f.path(), &[0x02, 0, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(code(&err), 113);
        assert!(err.to_string().contains("02:00:00:00:00:01"), "{err}");
        assert!(err.to_string().contains("00:15:5d:33:ff:0b"), "{err}");
        let err = lookup(f.path(), &[1, 2, 3]).unwrap_err();
        assert_eq!(code(&err), 113);
    }

    #[test]
    fn a_write_lock_held_elsewhere_is_waited_for() {
        let f = pool_of(&pool_with(TWO));
        let path = f.path().to_path_buf();
        // fcntl locks are per process: hold the write lock in a child.
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import fcntl,sys,time\n\
                 f=open(sys.argv[1],'r+b'); fcntl.lockf(f, fcntl.LOCK_EX)\n\
                 print('locked', flush=True); time.sleep(0.5)",
            )
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(ref mut child) = child else {
            eprintln!("python3 not available: skipping");
            return;
        };
        let mut line = [0u8; 7];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        assert_eq!(&line, b"locked\n");
        let start = std::time::Instant::now();
        assert_eq!(read_ipoib_pairs(&path).unwrap().len(), 2);
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "did not wait"
        );
        child.wait().unwrap();
    }
}
