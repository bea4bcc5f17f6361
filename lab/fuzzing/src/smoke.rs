//! The bounded smoke run of a target on stable Rust: every seed file and regression input,
//! then pseudo-random inputs and mutations of the seeds, from a fixed seed so a failure
//! reproduces. It is what CI runs when it has no nightly; libFuzzer (scripts/fuzz) goes
//! much further with coverage feedback.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// splitmix64: small, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Tokens the mutator splices into text inputs: the words the parsers branch on.
const DICT: &[&str] = &[
    "[[nodes]]",
    "[[services]]",
    "[[links]]",
    "[[steps]]",
    "[service]",
    "[expect]",
    "=",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    " ",
    "#",
    "-A",
    "-a",
    "-t",
    "-u",
    "-f",
    "-s",
    "-r",
    "-w",
    "-p",
    "-m",
    "-g",
    "-i",
    "--set",
    "conn",
    "open",
    "close",
    "load",
    "sleep",
    "rst",
    ">",
    "udp",
    "mark",
    "active=",
    "inactive=",
    "virtual_server",
    "real_server",
    "vrrp_instance",
    "lb_algo",
    "lb_kind",
    "weight",
    "0",
    "-1",
    "65536",
    "4294967296",
    "1e400",
    "nan",
    "192.168.1.250:80",
    "::1",
    "255.255.255.255",
    "/33",
    "ipvsadm",
    "$VIP",
    "${X}",
    "\\",
    "case",
    "esac",
    ")",
    ";;",
    "'",
    "\u{0}",
    "\u{feff}",
    "é",
];

/// One mutation of `input` (byte flips, cuts, duplicated ranges, dictionary words, a
/// splice with `other`), like libFuzzer's own mutators but without coverage.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                v.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            4 | 5 => {
                let w = DICT[rng.below(DICT.len())].as_bytes();
                let at = rng.below(len + 1);
                v.splice(at..at, w.iter().copied());
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let at = rng.below(len + 1);
                let n = rng.below(16);
                let b = rng.bytes(n);
                v.splice(at..at, b);
            }
        }
    }
    v
}

/// Every file directly in the directories `dirs` (relative to `root`), sorted.
pub fn read_dirs(root: &Path, dirs: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(root.join(d)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            if let Ok(b) = std::fs::read(&f) {
                out.push((f, b));
            }
        }
    }
    out
}

/// What a smoke run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Seed files and regression inputs run.
    pub seeds: usize,
    /// Pseudo-random inputs run.
    pub random: usize,
    /// Mutated seeds run.
    pub mutated: usize,
}

/// Run `harness` on the seeds and regression inputs of `target`, `random` pseudo-random
/// inputs of up to `max_len` bytes and `mutated` mutations of the seeds. On a panic, the
/// input is written to `crash_dir` and the run fails naming it, so it can be replayed
/// (`cargo +nightly fuzz run TARGET FILE`) and kept under fuzz/regressions/.
pub fn run(
    root: &Path,
    target: &str,
    harness: fn(&[u8]),
    random: usize,
    mutated: usize,
    max_len: usize,
    crash_dir: &Path,
) -> Summary {
    let mut seeds = read_dirs(root, crate::seed_dirs(target));
    seeds.extend(read_dirs(root, &[&crate::regression_dir(target)]));
    let mut rng = Rng::new(0x1f5b_0000 ^ target.len() as u64 ^ (target.as_bytes()[0] as u64) << 8);
    let attempt = |what: &str, input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| harness(input))).is_err() {
            let _ = std::fs::create_dir_all(crash_dir);
            let file = crash_dir.join(format!("crash-{target}-{}", what.replace(['/', ' '], "_")));
            let _ = std::fs::write(&file, input);
            panic!(
                "fuzz target {target} failed on {what}; the input is in {}",
                file.display()
            );
        }
    };
    let mut s = Summary::default();
    for (path, bytes) in &seeds {
        attempt(&path.display().to_string(), bytes);
        s.seeds += 1;
    }
    for i in 0..random {
        let n = rng.below(max_len + 1);
        let input = rng.bytes(n);
        attempt(&format!("random {i}"), &input);
        s.random += 1;
    }
    if !seeds.is_empty() {
        for i in 0..mutated {
            let a = &seeds[rng.below(seeds.len())].1;
            let b = &seeds[rng.below(seeds.len())].1;
            let input = mutate(&mut rng, a, b);
            attempt(&format!("mutation {i}"), &input);
            s.mutated += 1;
        }
    }
    s
}
