//! The fuzz targets' smoke run on stable Rust, inside `cargo test
//! --workspace` (cargo-fuzz needs nightly: `scripts/fuzz.sh` runs the real
//! fuzzing). It proves:
//! - every seed in `fuzz/corpus/<target>/` gives its recorded outcome
//!   (`ok-*` accepted, `bad-*` refused) and every other file there (a
//!   fuzzer's finding) runs without a panic;
//! - each target takes a fixed number of proptest cases, seeds mutated byte
//!   by byte plus arbitrary bytes and text, without a panic: each target
//!   asserts its own invariants (no 5xx, nothing accepted that the fixed
//!   keys did not sign, round trips), and the cases reach both its accept
//!   and its refuse paths;
//! - cargo-fuzz's binaries and the targets list agree.

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use latchkey_fuzz_targets::{Outcome, TARGETS, target};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A target's seed files, by name.
fn seeds(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut seeds: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn every_seed_gives_its_recorded_outcome() {
    for (name, run) in TARGETS {
        let (mut accepted, mut refused) = (0, 0);
        for (seed, bytes) in seeds(name) {
            let outcome = run(&bytes);
            if seed.starts_with("ok-") {
                assert_eq!(outcome, Outcome::Accepted, "{name}/{seed}");
                accepted += 1;
            } else if seed.starts_with("bad-") {
                assert_eq!(outcome, Outcome::Refused, "{name}/{seed}");
                refused += 1;
            }
        }
        assert!(accepted >= 2 && refused >= 2, "{name}: {accepted} ok and {refused} bad seeds");
    }
}

#[test]
fn cargo_fuzz_has_one_binary_per_target() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    assert_eq!(manifest.matches("[[bin]]").count(), TARGETS.len());
    for (name, _) in TARGETS {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "no [[bin]] {name}");
        let source = fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).expect("a fuzz target");
        assert!(source.contains(&format!("latchkey_fuzz_targets::{name}(data)")), "{name}.rs calls another target");
    }
}

/// Bytes a text format gives meaning to.
const SPECIAL: &[u8] = b"{}[]\":,.=_-+%/\\ \t\r\n\0\x7f\x80\xff09AZaz";

/// One edit of a seed; indexes scale to the seed's length.
#[derive(Debug, Clone)]
enum Mutation {
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    Truncate(Index),
    Repeat(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<Index>(), select(SPECIAL)).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<Index>(), vec(select(SPECIAL), 1..4)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<Index>(), 1..32usize).prop_map(|(at, len)| Mutation::Remove(at, len)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1..64usize).prop_map(|(at, len)| Mutation::Repeat(at, len)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        if bytes.is_empty() {
            break;
        }
        match mutation {
            Mutation::Set(at, byte) => {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
            Mutation::Insert(at, inserted) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, inserted.iter().copied());
            }
            Mutation::Remove(at, len) => {
                let at = at.index(bytes.len());
                bytes.drain(at..(at + len).min(bytes.len()));
            }
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Mutation::Repeat(at, len) => {
                let at = at.index(bytes.len());
                let copy = bytes[at..(at + len).min(bytes.len())].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

/// Mostly seeds with up to five edits (none: the seed itself), and some
/// arbitrary bytes and text.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (select(seeds), vec(mutation(), 0..6)).prop_map(|(seed, mutations)| apply(seed, &mutations)),
        1 => vec(any::<u8>(), 0..512),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

/// Runs `cases` inputs through the target `name`.
fn smoke(name: &str, cases: u32) {
    let run = target(name).expect("a target");
    let seeds = seeds(name).into_iter().map(|(_, bytes)| bytes).collect();
    // No failure files: a failure prints its shrunk input, which belongs in
    // fuzz/corpus/<target>/ as a `regress-*` seed once fixed.
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let (executed, accepted) = (Cell::new(0u32), Cell::new(0u32));
    let result = TestRunner::new(config).run(&inputs(seeds), |input| {
        executed.set(executed.get() + 1);
        if run(&input) == Outcome::Accepted {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{name}: {failure}");
    }
    assert_eq!(executed.get(), cases, "{name}");
    assert!(0 < accepted.get() && accepted.get() < cases, "{name}: {} of {cases} accepted", accepted.get());
}

macro_rules! smoke_tests {
    ($($name:ident: $cases:expr,)*) => {
        $(
            #[test]
            fn $name() {
                smoke(stringify!($name), $cases);
            }
        )*
    };
}

// Sized to run in well under a minute together, in a debug build on two
// cores (measured: see fuzz/README.md).
smoke_tests! {
    access_token: 10_000,
    client_assertion: 10_000,
    refresh_token: 10_000,
    api_key: 10_000,
    webhook_headers: 10_000,
    request_body: 10_000,
    apigw_event: 10_000,
    authorizer_event: 10_000,
}
