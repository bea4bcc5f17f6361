//! `lvslab test --html` and `lvslab trace --run DIR --html` on real runs of nat-rr and
//! dr-rr (root: each scenario builds a lab; the runner always takes it down), read back by
//! headless Chromium: the DOM it builds must hold a hop row for every hop the trace has,
//! both lab drawings and the pass cells; a screenshot is kept in the target directory.
//! Without Chromium the browser half prints SKIPPED (scripts/deps installs it).
mod support;
use lvslab_capture::{analyze, NormalizeOptions};
use lvslab_trace::{load_run, trace_report};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::repo;

fn lvslab(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_lvslab"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run lvslab");
    assert!(
        o.status.success(),
        "lvslab {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Every hop of every packet of every conversation, as `lvslab trace --run` counts them.
fn trace_hops(dir: &Path) -> usize {
    let run = load_run(dir, None).expect("run dir");
    let report = analyze(&run.captures, &run.roles, NormalizeOptions::default());
    trace_report(&report, &run.roles, &run.picks, None)
        .expect("trace")
        .iter()
        .flat_map(|t| &t.packets)
        .map(|p| p.hops.len())
        .sum()
}

/// The run directory of scenario `name` under the captures directory (`<lab>/<name>`).
fn run_dir(captures: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(captures)
        .expect("captures")
        .filter_map(|e| e.ok().map(|e| e.path().join(name)))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no run dir of {name} in {}", captures.display()))
}

/// The hop rows of an HTML text (as written or as Chromium serializes its DOM), checked
/// to have all seven cells: a row the parser tore apart would show here.
fn hop_rows(html: &str) -> usize {
    let rows: Vec<&str> = html
        .split("<tr class=\"hop\">")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap_or(""))
        .collect();
    for r in &rows {
        assert_eq!(r.matches("<td").count(), 7, "a hop row lost cells: {r}");
    }
    rows.len()
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Runs Chromium headless on `page` with `extra` flags and returns its stdout; it runs in
/// its own process group, which is killed (only it) if it takes over 90 s.
fn headless(chromium: &Path, profile: &Path, extra: &[String], page: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    // The DOM is larger than a pipe holds: read it while Chromium writes.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let t0 = Instant::now();
    while child.try_wait().expect("wait chromium").is_none() {
        if t0.elapsed() > Duration::from_secs(90) {
            let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().expect("chromium status");
    assert!(status.success(), "chromium failed: {status}");
    reader.join().expect("reading chromium's output")
}

#[test]
fn html_report_of_nat_and_dr_renders_in_chromium() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "lab tests build network namespaces and must run as root (sudo ./scripts/test)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let caps = tmp.path().join("captures");
    let pending = tmp.path().join("pending");
    std::fs::create_dir_all(&pending).unwrap();
    let report = tmp.path().join("report.html");
    lvslab(&[
        "test",
        "nat-rr",
        "dr-rr",
        "--captures",
        caps.to_str().unwrap(),
        "--pending",
        pending.to_str().unwrap(),
        "--html",
        report.to_str().unwrap(),
    ]);
    let nat = run_dir(&caps, "nat-rr");
    let dr = run_dir(&caps, "dr-rr");
    let hops = trace_hops(&nat) + trace_hops(&dr);
    assert!(hops > 40, "only {hops} hops traced");
    let html = std::fs::read_to_string(&report).unwrap();
    assert_eq!(hop_rows(&html), hops);
    assert!(
        html.contains("href=\"captures/"),
        "links are relative to the report"
    );

    // One run directory, through `lvslab trace`.
    let single = tmp.path().join("nat.html");
    let o = lvslab(&[
        "trace",
        "--run",
        nat.to_str().unwrap(),
        "--html",
        single.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrote"));
    let one = std::fs::read_to_string(&single).unwrap();
    assert_eq!(hop_rows(&one), trace_hops(&nat));
    assert_eq!(
        one.matches("<svg").count(),
        1,
        "the saved topology is drawn"
    );

    let Some(chromium) = chromium() else {
        println!("SKIPPED: chromium is not installed (scripts/deps installs it); the HTML was checked as text only");
        return;
    };
    let profile = tmp.path().join("chromium-profile");
    let dom = headless(&chromium, &profile, &["--dump-dom".to_owned()], &report);
    assert!(dom.contains("<table class=\"overview\">"), "{dom}");
    assert_eq!(hop_rows(&dom), hops, "hop rows in Chromium's DOM");
    assert_eq!(dom.matches("<svg").count(), 2, "one drawing per scenario");
    assert_eq!(
        dom.matches("<td class=\"result pass\">pass</td>").count(),
        2,
        "a pass cell per scenario"
    );
    assert!(dom.contains("id=\"count-pass\">2 passed</span>"));
    assert!(dom.contains("<span class=\"kind nat\">NAT</span>"));
    assert!(dom.contains("<span class=\"kind dr\">DR</span>"));

    // The screenshot stays beside the test output for a person to look at.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_owned();
    let shot = target.join("report.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &chromium,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".to_owned(),
        ],
        &report,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!("report screenshot: {}", shot.display());
    println!(
        "report (removed with the test's scratch): {}",
        report.display()
    );
}
