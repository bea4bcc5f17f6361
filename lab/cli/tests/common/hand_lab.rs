//! A lab built by the script `lvslab commands` prints, run in bash as a person would run
//! it, under a namespace prefix of its own; dropping it always runs the script's teardown
//! and then removes whatever of that prefix is still there.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The seed's NAT lab, typed by hand.
pub struct HandLab {
    pub prefix: String,
    script: PathBuf,
    _dir: tempfile::TempDir,
    torn_down: bool,
}

fn lvslab() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lvslab"))
}

/// PATH with the lvslab under test first: the script calls plain `lvslab`.
fn path_env() -> String {
    let bin = lvslab().parent().expect("the binary sits in a directory");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list runs");
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Pids of the processes in namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids runs");
    text(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks the pid exists; a zombie is gone for our purpose once reaped by init.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

impl HandLab {
    /// Print the script for `topology` with `backend` under a prefix unique to this test.
    pub fn print(topology: &str, backend: &str, tag: &str) -> HandLab {
        let prefix = format!("lvsc{}{tag}-", std::process::id());
        let out = Command::new(lvslab())
            .args([
                "commands",
                topology,
                "--backend",
                backend,
                "--prefix",
                &prefix,
            ])
            .output()
            .expect("lvslab commands runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = dir.path().join(format!("{topology}.sh"));
        std::fs::write(&script, &out.stdout).expect("write the script");
        HandLab {
            prefix,
            script,
            _dir: dir,
            torn_down: false,
        }
    }

    /// The script's text.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.script).expect("read the script")
    }

    /// `bash SCRIPT ARG`.
    pub fn run(&self, arg: &str) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .arg(arg)
            .env("PATH", path_env())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs")
    }

    /// `bash SCRIPT up`, which must succeed.
    pub fn up(&self) -> String {
        let out = self.run("up");
        assert!(
            out.status.success(),
            "bash SCRIPT up failed\n--- stdout\n{}\n--- stderr\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// A command inside node `node` of the lab.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}{node}", self.prefix)])
            .args(cmd)
            .env("PATH", path_env())
            .output()
            .expect("ip netns exec runs")
    }

    /// The body of one HTTP request from the client to `url`.
    pub fn curl(&self, url: &str) -> String {
        let out = self.exec("client", &["curl", "-sS", "--max-time", "5", url]);
        assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }

    /// Every tcpdump of step 4, started with `-c 1`; then requests to `url` until each has
    /// seen a packet (at most `within`). Returns what each printed.
    pub fn watch(&self, url: &str, within: Duration) -> Vec<(String, String)> {
        let dumps: Vec<String> = self
            .text()
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("#   "))
            .filter(|l| l.starts_with("ip netns exec") && l.contains(" tcpdump "))
            .map(|l| l.replacen(" tcpdump ", " tcpdump -c 1 ", 1))
            .collect();
        assert!(
            dumps.len() >= 5,
            "step 4 names a tcpdump per role: {dumps:?}"
        );
        let mut children: Vec<(String, Child)> = dumps
            .iter()
            .map(|d| {
                let c = Command::new("bash")
                    .args(["-c", &format!("exec {d}")])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("tcpdump starts");
                (d.clone(), c)
            })
            .collect();
        let t0 = Instant::now();
        let mut done: Vec<(String, String)> = Vec::new();
        while !children.is_empty() && t0.elapsed() < within {
            // tcpdump needs a moment to attach; requests go on until every one saw its packet.
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.exec("client", &["curl", "-s", "--max-time", "2", url]);
            let mut i = 0;
            while i < children.len() {
                if children[i].1.try_wait().ok().flatten().is_some() {
                    let (d, c) = children.remove(i);
                    let out = c.wait_with_output().expect("tcpdump output");
                    done.push((d, text(&out.stdout)));
                } else {
                    i += 1;
                }
            }
        }
        let silent: Vec<String> = children
            .into_iter()
            .map(|(d, mut c)| {
                let _ = c.kill();
                let _ = c.wait();
                d
            })
            .collect();
        assert!(
            silent.is_empty(),
            "saw no packet within {within:?}: {silent:?}"
        );
        done
    }

    /// `bash SCRIPT down`, then: no namespace of the prefix is left and no process that
    /// ran in one is alive.
    pub fn down(mut self) {
        let pids: Vec<i32> = namespaces_with(&self.prefix)
            .iter()
            .flat_map(|ns| pids_in(ns))
            .collect();
        assert!(!pids.is_empty(), "the lab runs its servers");
        let out = self.run("down");
        self.torn_down = true;
        assert!(out.status.success(), "down: {}", text(&out.stderr));
        assert_eq!(namespaces_with(&self.prefix), Vec::<String>::new());
        let t0 = Instant::now();
        while pids.iter().any(|p| alive(*p)) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<&i32> = pids.iter().filter(|p| alive(**p)).collect();
        assert!(left.is_empty(), "processes left after down: {left:?}");
    }
}

impl Drop for HandLab {
    fn drop(&mut self) {
        if !self.torn_down {
            let _ = self.run("down");
        }
        // Whatever the teardown missed (a failed test, a half-built lab): by pid, by name.
        for ns in namespaces_with(&self.prefix) {
            for pid in pids_in(&ns) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}
