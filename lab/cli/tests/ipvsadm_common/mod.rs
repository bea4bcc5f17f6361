//! What the `lvslab ipvsadm` tests share: one IPVS table written as ipvsadm lines, the
//! listings compared, the fixtures (Debian's ipvsadm 1.31 printing that table from kernel
//! IPVS in lvslab's VM, checked again by every kernel run), and a lab that goes down
//! however the test ends.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Added to nat-topology's service: every flag ipvsadm prints (scheduler flags,
/// persistence with a netmask, DR with thresholds, TUN, UDP one-packet, a firewall mark,
/// port 0), and addresses whose order shows libipvs's signed-difference sort
/// (192.168.1.250 before 10.0.0.1).
pub const TABLE: &[&str] = &[
    "-A -t 10.0.0.1:22 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.255.0",
    "-a -t 10.0.0.1:22 -r 192.168.1.201 -g -w 3 -x 100 -y 50",
    "-a -t 10.0.0.1:22 -r 192.168.1.203 -i",
    "-A -u 192.168.1.250:53 -s rr -o",
    "-a -u 192.168.1.250:53 -r 192.168.1.201:5353 -m",
    "-A -f 7 -s wlc -p",
    "-a -f 7 -r 192.168.1.203 -m -w 0",
    "-A -t 192.168.1.250:0 -s lc -p 1800",
];

/// Fixture name and the ipvsadm arguments that print it.
pub const LISTINGS: &[(&str, &str)] = &[
    ("Ln", "-Ln"),
    ("Ln_stats", "-Ln --stats"),
    ("Ln_stats_exact", "-Ln --stats --exact"),
    ("Ln_rate", "-Ln --rate"),
    ("Ln_thresholds", "-Ln --thresholds"),
    ("Ln_persistent-conn", "-Ln --persistent-conn"),
    ("Ln_tun-info", "-Ln --tun-info"),
    ("S_n", "-S -n"),
    ("S", "-S"),
    ("L", "-L"),
    ("L_timeout", "-L --timeout"),
    ("Ln_t", "-Ln -t 192.168.1.250:80"),
    ("L_n_u_stats", "-L -n -u 192.168.1.250:53 --stats"),
    ("Lnc", "-Lnc"),
];

/// What real ipvsadm prints for `name` of [`LISTINGS`] with [`TABLE`] applied.
pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ipvsadm")
        .join(format!("{name}.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Exit code, stdout, stderr.
pub type Out = (i32, String, String);

/// Runs lvslab with `args`, feeding `stdin`.
pub fn lvslab(args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvslab"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lvslab");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for lvslab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A lab that is taken down when the test ends, however it ends.
pub struct Lab {
    pub name: String,
}

impl Lab {
    pub fn up(backend: &str, tag: &str) -> Lab {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "lab tests need root"
        );
        let lab = Lab {
            name: format!("{tag}{}", std::process::id()),
        };
        let (code, out, err) = lvslab(
            &[
                "up",
                "nat-topology",
                "--name",
                &lab.name,
                "--backend",
                backend,
                "--quiet",
            ],
            "",
        );
        assert_eq!(code, 0, "up: {out}{err}");
        lab
    }

    /// `ipvsadm ARGS` typed in the director's namespace (`lvslab exec ... -- ipvsadm`): the
    /// real one with kernel IPVS, the lab's script with the userspace director.
    pub fn ipvsadm(&self, args: &str) -> Out {
        let mut a = vec!["exec", "--lab", &self.name, "director", "--", "ipvsadm"];
        a.extend(args.split_whitespace());
        lvslab(&a, "")
    }

    /// `lvslab ipvsadm --lab LAB -- ARGS`.
    pub fn lvslab_ipvsadm(&self, args: &str, stdin: &str) -> Out {
        let mut a = vec!["ipvsadm", "--lab", &self.name, "--"];
        a.extend(args.split_whitespace());
        lvslab(&a, stdin)
    }

    /// `lvslab request` of `n` connections from the client to 192.168.1.250:80.
    pub fn traffic(&self, n: &str) -> String {
        let (code, out, err) = lvslab(
            &[
                "request",
                "--lab",
                &self.name,
                "--from",
                "client",
                "--to",
                "192.168.1.250:80",
                "-n",
                n,
            ],
            "",
        );
        assert_eq!(code, 0, "request: {out}{err}");
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lvslab(&["down", "--lab", &self.name], "");
    }
}

/// The same table with other counters: equal headers, names and line lengths, numbers
/// where the numbers are (`--stats`, `--rate`: counters differ from run to run).
pub fn assert_same_counter_layout(real: &str, mine: &str) {
    let (r, m): (Vec<&str>, Vec<&str>) = (real.lines().collect(), mine.lines().collect());
    assert_eq!(r.len(), m.len(), "real:\n{real}\nlvslab:\n{mine}");
    for (a, b) in r.iter().zip(&m) {
        if a.starts_with("TCP ")
            || a.starts_with("UDP ")
            || a.starts_with("FWM ")
            || a.starts_with("  -> ") && a.len() > 40
        {
            assert_eq!(a.len(), b.len(), "line length:\n{a}\n{b}");
            assert_eq!(a[..33], b[..33], "name column:\n{a}\n{b}");
            for tok in b[33..].split_whitespace() {
                assert!(
                    tok.trim_end_matches(['K', 'M', 'G', 'T'])
                        .chars()
                        .all(|c| c.is_ascii_digit()),
                    "not a counter: {tok} in\n{b}"
                );
            }
        } else {
            assert_eq!(a, b, "real:\n{real}\nlvslab:\n{mine}");
        }
    }
}

/// `-Lnc` with the expire column left out (the two reads are a moment apart).
pub fn without_expire(conns: &str) -> Vec<String> {
    conns
        .lines()
        .map(|l| {
            if l.len() > 11
                && (l.starts_with("TCP ") || l.starts_with("UDP ") || l.starts_with("IP  "))
            {
                format!("{}{}", &l[..4], &l[10..])
            } else {
                l.to_owned()
            }
        })
        .collect()
}
