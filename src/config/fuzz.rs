//! The config parser against arbitrary input: it may refuse anything, but never panics.

use super::*;
use serde_json::json;

/// A tiny deterministic generator (xorshift) for the fuzz tests below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KEYS: [&str; 18] = [
    "cniVersion",
    "name",
    "type",
    "deviceID",
    "pciBusID",
    "runtimeConfig",
    "device",
    "hwaddr",
    "ipam",
    "podInterfaceName",
    "stateDir",
    "delegate",
    "logFile",
    "logLevel",
    "allowDefaultRouteDevice",
    "prevResult",
    "cni.dev/valid-attachments",
    "containerID",
];
const STRINGS: [&str; 12] = [
    "0.3.1",
    "1.1.0",
    "9.9.9",
    "0000:5e:00.1",
    "../../etc",
    "host",
    "cni",
    "/tmp/x",
    "aa:bb:cc:dd:ee:ff",
    "",
    "static",
    "\u{0}\u{ffff}",
];

/// An arbitrary JSON value, biased towards our own keys and plausible strings.
fn arbitrary_json(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() as f64) / 7.0),
        4 => json!(STRINGS[rng.below(STRINGS.len() as u64) as usize]),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| arbitrary_json(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(8))
                .map(|_| {
                    let key = KEYS[rng.below(KEYS.len() as u64) as usize].to_owned();
                    (key, arbitrary_json(rng, depth + 1))
                })
                .collect(),
        ),
    }
}

/// Arbitrary bytes never panic the parser (a dependency-free fuzz).
#[test]
fn parser_never_panics_on_arbitrary_bytes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = br#"{}[]":,0123456789.-abcdeEfnrtul \deviceIDpciBusIDcniVersionname"#;
    for _ in 0..20_000 {
        let len = rng.below(96) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if r.is_multiple_of(4) {
                    r as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        let _ = NetConf::parse(&bytes, &NodePolicy::default());
        let _ = crate::cni::version::peek(&bytes);
    }
}

/// Arbitrary JSON documents never panic the parser, and whatever parses is usable.
#[test]
fn parser_never_panics_on_arbitrary_json() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut doc = arbitrary_json(&mut rng, 0);
        if rng.below(2) == 0 {
            // Often start from a valid base so deeper checks are reached.
            let mut base = json!({"cniVersion": "1.1.0", "name": "n"});
            if let Value::Object(extra) = doc {
                base.as_object_mut().unwrap().extend(extra);
            }
            doc = base;
        }
        if let Ok(conf) = NetConf::parse(doc.to_string().as_bytes(), &NodePolicy::default()) {
            accepted += 1;
            assert!(conf.state_dir.is_absolute());
            let _ = conf.selector.require_some();
        }
    }
    assert!(
        accepted > 100,
        "the generator should also produce valid configs ({accepted})"
    );
}
