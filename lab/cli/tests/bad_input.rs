//! Every kind of bad input a user gives, one table row each: the error must name what is
//! wrong, where (file:line:col when there is a file) and what to do, and nothing may be
//! left half-made (no namespace, no /run/lvslab entry, no half-written capture run, the
//! live lab untouched). Needs root (labs, a private mount namespace, dropping to another
//! uid); without root it fails and says so.
mod support;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::repo;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lvslab")
}

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "bad-input tests build labs and mount a tmpfs in a private mount namespace: run as root (sudo ./scripts/test)"
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run lvslab")
}

fn netns_of(lab: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let prefix = format!("lvs-{lab}-");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn unique(test: &str) -> String {
    format!("b{}-{test}", std::process::id())
}

/// Tears the lab down even when the test panics.
struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = run(&["down", &self.0]);
    }
}

/// How a row runs the command.
enum How {
    /// From the repository.
    Plain,
    /// From this directory.
    In(PathBuf),
    /// With this PATH (a directory lacking one tool).
    WithPath(PathBuf),
    /// As uid/gid 65534 (nobody), through setpriv.
    Unprivileged,
    /// From `dir`, whose captures/ is a full 64 KiB tmpfs in a private mount namespace
    /// (never the host's filesystem); afterwards what is left under captures/ is printed.
    FullCaptures(PathBuf),
}

struct Row {
    /// The kind of input and the case, for failure messages.
    case: &'static str,
    args: Vec<String>,
    how: How,
    /// Substrings of stderr: what is wrong, where, and what to do.
    what: String,
    place: String,
    fix: String,
    /// A lab name that must not exist afterwards.
    no_lab: Option<String>,
}

fn row(case: &'static str, args: &[&str], what: &str, place: &str, fix: &str) -> Row {
    Row {
        case,
        args: args.iter().map(|s| s.to_string()).collect(),
        how: How::Plain,
        what: what.into(),
        place: place.into(),
        fix: fix.into(),
        no_lab: None,
    }
}

impl Row {
    fn how(mut self, how: How) -> Row {
        self.how = how;
        self
    }
    fn no_lab(mut self, lab: &str) -> Row {
        self.no_lab = Some(lab.into());
        self
    }
}

/// A directory of symlinks to every program on the usual PATH except `missing`.
fn path_without(dir: &Path, missing: &str) -> PathBuf {
    let bin_dir = dir.join(format!("path-without-{missing}"));
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name == missing || bin_dir.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), bin_dir.join(&name));
        }
    }
    bin_dir
}

/// `# expect: LINE:COL: MESSAGE` of a topology fixture in lab/netns/tests/bad.
fn bad_topology(name: &str) -> (String, String, String) {
    let f = repo().join("lab/netns/tests/bad").join(name);
    let text = std::fs::read_to_string(&f).expect("fixture");
    let expect = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .expect("# expect: line");
    let (loc, msg) = expect.split_once(": ").expect("LINE:COL: MESSAGE");
    let path = f.display().to_string();
    (
        path.clone(),
        format!("{path}:{loc}: error: "),
        msg.to_string(),
    )
}

fn check(r: &Row, lab_root: &Path) {
    let o = match &r.how {
        How::Plain => run(&r.args.iter().map(String::as_str).collect::<Vec<_>>()),
        How::In(dir) => Command::new(bin())
            .args(&r.args)
            .current_dir(dir)
            .output()
            .expect("run"),
        How::WithPath(p) => Command::new(bin())
            .args(&r.args)
            .current_dir(repo())
            .env("PATH", p)
            .output()
            .expect("run"),
        How::Unprivileged => {
            let setpriv = Path::new("/usr/bin/setpriv");
            assert!(
                setpriv.exists(),
                "setpriv (util-linux) is missing: scripts/deps installs it"
            );
            Command::new(setpriv)
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    bin(),
                ])
                .args(&r.args)
                .current_dir(repo())
                .output()
                .expect("run setpriv")
        }
        How::FullCaptures(dir) => {
            std::fs::create_dir_all(dir.join("captures")).expect("mkdir");
            // unshare -m gives the shell a private copy of the mount table (propagation
            // private), so the tmpfs is never seen by the host and goes with the shell.
            let script = r#"mount -t tmpfs -o size=64k lvslab-full captures || exit 90
                dd if=/dev/zero of=captures/fill bs=4k 2>/dev/null
                "$@"; rc=$?
                echo "LEFT:$(ls -A captures | grep -v '^fill$' | while read d; do ls -A "captures/$d"; done | tr '\n' ' ')"
                exit $rc"#;
            Command::new("unshare")
                .args([
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    "sh",
                    bin(),
                ])
                .args(&r.args)
                .current_dir(dir)
                .output()
                .expect("run unshare")
        }
    };
    let out = String::from_utf8_lossy(&o.stdout);
    // `lvslab test` reports a scenario's error in its FAIL line on stdout; the rest on stderr.
    let err = format!("{}{out}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !o.status.success(),
        "{}: {:?} succeeded:\n{out}{err}",
        r.case,
        r.args
    );
    assert_ne!(
        o.status.code(),
        Some(90),
        "{}: could not mount the tmpfs: {err}",
        r.case
    );
    for (part, want) in [("what", &r.what), ("where", &r.place), ("fix", &r.fix)] {
        assert!(
            err.contains(want.as_str()),
            "{}: the error does not say {part} ({want:?}):\n{err}",
            r.case
        );
    }
    if let How::FullCaptures(_) = r.how {
        let left = out
            .lines()
            .find_map(|l| l.strip_prefix("LEFT:"))
            .expect("LEFT: line");
        assert!(
            left.trim().is_empty(),
            "{}: a half-written run was left: {left}",
            r.case
        );
    }
    if let Some(lab) = &r.no_lab {
        assert!(
            netns_of(lab).is_empty(),
            "{}: left {:?}",
            r.case,
            netns_of(lab)
        );
        assert!(
            !lab_root.join(lab).exists(),
            "{}: left /run/lvslab/{lab}",
            r.case
        );
    }
}

#[test]
fn every_bad_input_names_what_where_and_the_fix_and_leaves_nothing_half_made() {
    require_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let run_dir = Path::new("/run/lvslab");

    // One live lab: the name already taken, the control socket, exec, capture.
    let live = unique("live");
    let up = run(&["up", "-q", "nat-topology", "--name", &live]);
    assert!(
        up.status.success(),
        "up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _g = Guard(live.clone());
    let before = netns_of(&live);

    // Input files.
    std::fs::create_dir_all(t.join("scenarios")).expect("mkdir");
    let write = |name: &str, text: &str| {
        std::fs::write(t.join(name), text).expect("write");
        t.join(name).display().to_string()
    };
    write(
        "scenarios/unknown-field.toml",
        "description = \"x\"\ntopology = \"nat-topology\"\nbogus = 1\n",
    );
    write(
        "scenarios/unknown-step.toml",
        "description = \"x\"\ntopology = \"nat-topology\"\n[[steps]]\ndo = \"nosuch\"\n",
    );
    write(
        "scenarios/no-topology.toml",
        "description = \"x\"\ntopology = \"nosuch-topo\"\n",
    );
    let bogus = write("bogus.sim", "-A -t 192.168.1.250:80 -s rr\n\nbogus step\n");
    let noport = write(
        "noport.sim",
        "-A -t 192.168.1.250:80 -s rr\nconn 1.2.3.4 > 192.168.1.250:80\n",
    );
    let bigport = write("bigport.sim", "-A -t 192.168.1.250:99999 -s rr\n");
    let ha = std::fs::read_to_string(repo().join("topologies/ha-topology.toml")).expect("ha");
    let ka = write(
        "keepalived-pair.toml",
        &ha.replacen(
            "backup = \"director2\"",
            "backup = \"director2\"\nvrrp = { keepalived = [\"director2\"] }",
            1,
        ),
    );
    assert!(std::fs::read_to_string(&ka)
        .expect("ka")
        .contains("keepalived = ["));

    let mut rows = Vec::new();
    // Topology files: the located message of the validator (every class is in
    // lab/netns/tests/bad_topologies.rs; these go through `up`).
    for (i, f) in [
        "syntax.toml",
        "unknown-scheduler.toml",
        "port-out-of-range.toml",
    ]
    .into_iter()
    .enumerate()
    {
        let (path, place, msg) = bad_topology(f);
        let lab = format!("{}{i}", unique("topo"));
        rows.push(
            Row {
                case: "topology file",
                args: vec!["up".into(), path, "--name".into(), lab.clone()],
                how: How::Plain,
                what: msg,
                place,
                fix: "help: ".into(),
                no_lab: None,
            }
            .no_lab(&lab),
        );
    }
    // Scenario files.
    let sc = t.join("scenarios").display().to_string();
    rows.push(
        row(
            "scenario: unknown field",
            &["test", "unknown-field"],
            "unknown field `bogus`",
            &format!("{sc}/unknown-field.toml:3:1: error"),
            "help: compare with docs/scenarios.md",
        )
        .how(How::In(t.into())),
    );
    rows.push(
        row(
            "scenario: unknown step",
            &["test", "unknown-step"],
            "unknown variant `nosuch`",
            &format!("{sc}/unknown-step.toml:4:6: error"),
            "expected one of `request`",
        )
        .how(How::In(t.into())),
    );
    rows.push(
        row(
            "scenario: unknown topology",
            &["test", "no-topology"],
            "no topology named \"nosuch-topo\"",
            &format!("{sc}/no-topology.toml"),
            "help: give a path to a .toml file",
        )
        .how(How::In(t.into())),
    );
    rows.push(
        row(
            "scenario: no such name",
            &["test", "nosuch"],
            "no scenario \"nosuch\"",
            "nosuch.toml",
            "help: name a scenario file",
        )
        .how(How::In(t.into())),
    );
    // Simulate scripts.
    rows.push(row(
        "simulate: unknown step",
        &["simulate", &bogus],
        "unknown step `bogus`",
        &format!("{bogus}:3: "),
        "use ipvsadm, conn, open",
    ));
    rows.push(row(
        "simulate: client without port",
        &["simulate", &noport],
        "client `1.2.3.4` is not ADDRESS:PORT",
        &format!("{noport}:2: "),
        "expected `CIP:CPORT > VIP:VPORT",
    ));
    rows.push(row(
        "simulate: port out of range",
        &["simulate", &bigport],
        "port 99999 is out of range",
        &format!("{bigport}:1: "),
        "use 0-65535",
    ));
    rows.push(row(
        "simulate: missing file",
        &["simulate", "/nonexistent/x.sim"],
        "No such file or directory",
        "/nonexistent/x.sim",
        "help: give a script's path",
    ));
    // CLI flags.
    rows.push(row(
        "flag: unknown scheduler",
        &[
            "service",
            "add",
            "--lab",
            &live,
            "-t",
            "192.168.1.250:81",
            "-s",
            "nosuch",
        ],
        "unknown scheduler `nosuch`",
        "-s nosuch",
        "use one of rr wrr",
    ));
    rows.push(row(
        "flag: port out of range",
        &[
            "service",
            "add",
            "--lab",
            &live,
            "-t",
            "192.168.1.250:99999",
        ],
        "port 99999 is out of range",
        "-t `192.168.1.250:99999`",
        "use 0-65535",
    ));
    rows.push(row(
        "flag: bad address",
        &[
            "real",
            "add",
            "--lab",
            &live,
            "-t",
            "192.168.1.250:80",
            "-r",
            "300.1.1.1:80",
        ],
        "illegal real server address",
        "-r `300.1.1.1:80`",
        "expected ADDRESS[:PORT] such as",
    ));
    rows.push(row(
        "flag: unknown backend",
        &["up", "nat-topology", "--backend", "foo"],
        "invalid value 'foo'",
        "--backend",
        "use userspace or ipvs",
    ));
    // Lab names.
    rows.push(
        row(
            "lab name: slash",
            &["up", "nat-topology", "--name", "bad/name"],
            "lab name \"bad/name\" cannot be used",
            "bad/name",
            "help: use lower-case letters",
        )
        .no_lab("bad"),
    );
    let long = "n".repeat(40);
    rows.push(
        row(
            "lab name: too long",
            &["up", "nat-topology", "--name", &long],
            "cannot be used",
            &long,
            "at most 32",
        )
        .no_lab(&long),
    );
    rows.push(row(
        "lab name: already up",
        &["up", "nat-topology", "--name", &live],
        "is already up",
        &live,
        "help: `lvslab down --lab",
    ));
    // A missing system tool.
    let ka_lab = unique("ka");
    rows.push(
        row(
            "missing tool: keepalived",
            &["up", &ka, "--name", &ka_lab],
            "no keepalived executable",
            "director2",
            "apt-get install keepalived",
        )
        .how(How::WithPath(path_without(t, "keepalived")))
        .no_lab(&ka_lab),
    );
    rows.push(
        row(
            "missing tool: tcpdump",
            &["exec", "--lab", &live, "client", "--", "tcpdump", "-c1"],
            "No such file or directory",
            &format!("lvs-{live}-client"),
            "is not on PATH",
        )
        .how(How::WithPath(path_without(t, "tcpdump"))),
    );
    // Not root.
    let np = unique("nonroot");
    rows.push(
        row(
            "not root",
            &["up", "nat-topology", "--name", &np],
            "needs root",
            "uid 65534",
            "sudo lvslab up",
        )
        .how(How::Unprivileged)
        .no_lab(&np),
    );
    // A full disk under captures/.
    rows.push(
        row(
            "full disk under captures/",
            &["capture", "--lab", &live, "--", "true"],
            "No space left on device",
            &format!("captures/{live}/run-"),
            "--out DIR",
        )
        .how(How::FullCaptures(t.join("full"))),
    );

    for r in &rows {
        check(r, run_dir);
    }
    // The live lab went through all of that untouched.
    assert_eq!(netns_of(&live), before, "the live lab's namespaces changed");
    let st = run(&["service", "list", "--lab", &live]);
    let list = String::from_utf8_lossy(&st.stdout);
    assert!(
        st.status.success() && list.contains("192.168.1.250:80") && !list.contains(":81"),
        "{list}"
    );
}

/// One request line to a director's control socket, as `ControlClient` sends it.
fn control(sock: &Path, line: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect");
    s.write_all(line.as_bytes()).expect("send");
    s.write_all(b"\n").expect("send");
    let mut resp = String::new();
    BufReader::new(&s).read_line(&mut resp).expect("read");
    resp
}

#[test]
fn every_bad_control_request_is_refused_naming_the_fix_and_changes_nothing() {
    require_root();
    let lab = unique("ctl");
    let up = run(&["up", "-q", "nat-topology", "--name", &lab]);
    assert!(
        up.status.success(),
        "up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _g = Guard(lab.clone());
    let sock = Path::new("/run/lvslab")
        .join(&lab)
        .join("director-director.sock");
    let stats = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).expect("json");
        v["services"].clone()
    };
    let before = stats(&control(&sock, r#"{"op":"stats"}"#));
    for (line, what, fix) in [
        (
            "garbage",
            "expected value at line 1 column 1",
            "send one JSON object per line",
        ),
        (
            r#"{"op":"nosuch"}"#,
            "unknown variant `nosuch`",
            "expected one of `ipvsadm`",
        ),
        (
            r#"{"op":"ipvsadm"}"#,
            "missing field `line`",
            "send one JSON object per line",
        ),
        (
            r#"{"op":"ipvsadm","line":"-A -t 192.168.1.250:81 -s nosuch"}"#,
            "unknown scheduler `nosuch`",
            "use one of rr",
        ),
        (
            r#"{"op":"ipvsadm","line":"-A -t 192.168.1.250:80 -s rr"}"#,
            "already exists",
            "edit it with -E",
        ),
        (
            r#"{"op":"ipvsadm","line":"-a -t 192.168.1.250:80 -r 300.1.1.1:80 -m"}"#,
            "300.1.1.1:80",
            "expected ADDRESS[:PORT]",
        ),
        (
            r#"{"op":"sysctl","name":"nosuch","value":"1"}"#,
            "net.ipv4.vs.nosuch",
            "models only expire_nodest_conn",
        ),
        (
            r#"{"op":"sysctl","name":"expire_nodest_conn","value":"7"}"#,
            "expire_nodest_conn",
            "the value is 0 or 1",
        ),
        (
            r#"{"op":"failover"}"#,
            "not part of a VRRP pair",
            "name no backup director",
        ),
    ] {
        let resp = control(&sock, line);
        let v: serde_json::Value =
            serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{line}: {e}: {resp}"));
        assert_eq!(v["result"], "error", "{line}: {resp}");
        let msg = v["message"].as_str().expect("message");
        assert!(
            msg.contains(what),
            "{line}: does not say what ({what}): {msg}"
        );
        assert!(
            msg.contains(fix),
            "{line}: does not say the fix ({fix}): {msg}"
        );
    }
    assert_eq!(
        stats(&control(&sock, r#"{"op":"stats"}"#)),
        before,
        "a refused request changed the table"
    );
}
