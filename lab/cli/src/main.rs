//! The `lvslab` command line.
use clap::Parser;

mod cmd_bench;
mod cmd_bench_scale;
mod cmd_capture;
mod cmd_commands;
mod cmd_diagram;
mod cmd_down;
mod cmd_exec;
mod cmd_failover;
mod cmd_health;
mod cmd_import;
mod cmd_ipvsadm;
mod cmd_junit;
mod cmd_list;
mod cmd_request;
mod cmd_serve;
mod cmd_simulate;
mod cmd_status;
mod cmd_test;
mod cmd_trace;
mod cmd_up;
mod cmd_validate;
mod cmd_vm;
mod diagnose;
mod director;
mod labarg;
mod vmlab;

/// Build Linux Virtual Server labs out of network namespaces and check how packets flow.
///
/// A lab is a set of network namespaces (one per node: client, router, director, real
/// servers) wired as a topology file says. Start with `lvslab up nat-topology`, look with
/// `lvslab status`, send traffic with `lvslab request`, and clean up with `lvslab down`.
#[derive(Parser, Debug)]
#[command(name = "lvslab", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Up(cmd_up::Args),
    Commands(cmd_commands::Args),
    Down(cmd_down::Args),
    List(cmd_list::Args),
    Status(cmd_status::Args),
    Exec(cmd_exec::Args),
    Validate(cmd_validate::Args),
    Diagram(cmd_diagram::Args),
    Serve(cmd_serve::Args),
    Request(cmd_request::Args),
    Bench(cmd_bench::Args),
    Simulate(cmd_simulate::SimulateArgs),
    Capture(cmd_capture::Args),
    Test(cmd_test::Args),
    /// Merge JUnit files of `lvslab test --shard K/N` runs into one.
    JunitMerge(cmd_junit::Args),
    Trace(cmd_trace::Args),
    /// Run a lab's userspace director in the foreground (`up` starts it for you).
    Director(director::cmd_director::DirectorArgs),
    /// TUN-mode real-server side: decapsulate IPIP in userspace into a TUN device.
    Tunnel(director::cmd_tunnel::TunnelArgs),
    /// Health-check daemon of a director (`up` starts it for services with `health`).
    #[command(hide = true)]
    Health(cmd_health::Args),
    /// Add, edit or delete a virtual service of a running director (ipvsadm -A/-E/-D flags).
    Service(director::cmd_ctl::ServiceArgs),
    /// Add, edit or delete a real server of a running director (ipvsadm -a/-e/-d flags).
    Real(director::cmd_ctl::RealArgs),
    /// Service and real-server counters, like `ipvsadm -Ln --stats` (or `--rate`).
    Stats(director::cmd_stats::StatsArgs),
    /// The connection table, like `ipvsadm -Lnc`.
    Conns(director::cmd_stats::ConnsArgs),
    Ipvsadm(cmd_ipvsadm::Args),
    /// Why the live director picked each real server (`on`, `off`, `show`).
    Explain(director::cmd_stats::ExplainArgs),
    /// Make the VRRP MASTER of a director pair give up; the BACKUP takes the VIPs over.
    Failover(cmd_failover::Args),
    /// Read an ipvsadm rule set or a keepalived.conf as the real tools do and print its
    /// services (TOML for a topology, JSON, ipvsadm-save, keepalived.conf) or apply them to
    /// a running lab (--lab).
    Import(cmd_import::ImportArgs),
    /// Write a lab's or a topology's services as ipvsadm-save rules or keepalived.conf.
    Export(cmd_import::ExportArgs),
    Vm(cmd_vm::Args),
}

fn main() {
    let cli = Cli::parse();
    if cli.command.prints_a_report() {
        restore_default_sigpipe();
    }
    // A lab that lives in lvslab's VM is served there, by the same lvslab.
    match route_to_vm(&cli.command) {
        Ok(Some(code)) => std::process::exit(code),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
    let res = match cli.command {
        Command::Up(a) => cmd_up::run(a),
        Command::Commands(a) => cmd_commands::run(a),
        Command::Down(a) => cmd_down::run(a),
        Command::List(a) => cmd_list::run(a),
        Command::Status(a) => cmd_status::run(a),
        Command::Exec(a) => cmd_exec::run(a),
        Command::Validate(a) => cmd_validate::run(a),
        Command::Diagram(a) => cmd_diagram::run(a),
        Command::Serve(a) => cmd_serve::run(a),
        Command::Request(a) => cmd_request::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Simulate(a) => cmd_simulate::run(a),
        Command::Capture(a) => cmd_capture::run(a),
        Command::Test(a) => cmd_test::run(a),
        Command::JunitMerge(a) => cmd_junit::run(a),
        Command::Trace(a) => cmd_trace::run(a),
        Command::Director(a) => director::cmd_director::run(a),
        Command::Tunnel(a) => director::cmd_tunnel::run(a),
        Command::Health(a) => cmd_health::run(a),
        Command::Service(a) => director::cmd_ctl::run_service(a),
        Command::Real(a) => director::cmd_ctl::run_real(a),
        Command::Stats(a) => director::cmd_stats::run_stats(a),
        Command::Conns(a) => director::cmd_stats::run_conns(a),
        Command::Ipvsadm(a) => cmd_ipvsadm::run(a),
        Command::Explain(a) => director::cmd_stats::run_explain(a),
        Command::Vm(a) => cmd_vm::run(a),
        Command::Failover(a) => cmd_failover::run(a),
        Command::Import(a) => cmd_import::run_import(a),
        Command::Export(a) => cmd_import::run_export(a),
    };
    if let Err(e) = res {
        // Topology errors already carry `file:line:col: error:`.
        if e.downcast_ref::<lvslab_netns::TopologyError>().is_some() {
            eprintln!("{e:#}");
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

/// Runs `cmd` in lvslab's VM when it acts on a lab that lives there (or brings one up
/// there); `None` when it runs on the host. `down --all`, `list`, `capture`, `test` and
/// `simulate` do their VM part in their own modules.
fn route_to_vm(cmd: &Command) -> anyhow::Result<Option<i32>> {
    let forward_if = |named: Option<&str>| -> anyhow::Result<Option<i32>> {
        match vmlab::vm_lab_for(named) {
            Some(_) => Ok(Some(vmlab::forward(&vmlab::own_args())?)),
            None => Ok(None),
        }
    };
    match cmd {
        Command::Up(a) if a.backend == lvslab_netns::Backend::Ipvs && !vmlab::host_has_ipvs() => {
            let topo = lvslab_netns::Topology::find(&a.topology)?;
            let name = a.name.clone().unwrap_or(topo.name);
            Ok(Some(vmlab::up(&name)?))
        }
        Command::Down(a) if !a.all => match vmlab::vm_lab_for(a.lab.name()) {
            Some(name) => Ok(Some(vmlab::down(&name)?)),
            None => Ok(None),
        },
        Command::Status(a) => forward_if(a.lab.name()),
        Command::Exec(a) => forward_if(a.lab.as_deref()),
        Command::Request(a) => match vmlab::vm_lab_for(a.lab.as_deref()) {
            Some(_) => Ok(Some(vmlab::request()?)),
            None => Ok(None),
        },
        Command::Stats(a) => forward_if(a.lab.name()),
        Command::Conns(a) => forward_if(a.lab.name()),
        Command::Ipvsadm(a) => cmd_ipvsadm::route_to_vm(a),
        Command::Service(a) => forward_if(a.action.lab()),
        Command::Real(a) => forward_if(a.action.lab()),
        Command::Explain(a) => forward_if(a.lab.as_deref()),
        Command::Failover(a) => forward_if(a.lab.name()),
        Command::Import(a) if a.lab.is_some() => forward_if(a.lab.as_deref()),
        // Only a named lab can live in the VM; a topology file is drawn here.
        Command::Diagram(a) if a.lab.is_some() => forward_if(a.lab.as_deref()),
        Command::Capture(a) => match vmlab::vm_lab_for(a.lab.as_deref()) {
            Some(name) => Ok(Some(vmlab::capture(&name, a.out.as_deref())?)),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

impl Command {
    /// Commands whose output is a report meant for pipes like `| head`: they should end
    /// quietly when the reader goes away instead of panicking in `println!`. Daemons and
    /// traffic tools keep Rust's ignored SIGPIPE so a peer closing a socket is an error
    /// they handle, not a silent death.
    fn prints_a_report(&self) -> bool {
        matches!(
            self,
            Command::Up(_)
                | Command::Down(_)
                | Command::List(_)
                | Command::Status(_)
                | Command::Validate(_)
                | Command::Diagram(_)
                | Command::Simulate(_)
                | Command::Stats(_)
                | Command::Conns(_)
                | Command::Explain(_)
        )
    }
}

/// Let SIGPIPE end the process, as it does for ordinary Unix filters.
fn restore_default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called at start-up before any thread exists; SIG_DFL installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("lvslab").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    /// The lab a parsed command names, through the same accessor the command uses.
    fn lab_of(args: &[&str]) -> Option<String> {
        let cmd = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let name = match &cmd {
            Command::Down(a) => a.lab.name(),
            Command::Status(a) => a.lab.name(),
            Command::Stats(a) => a.lab.name(),
            Command::Conns(a) => a.lab.name(),
            Command::Service(a) => match &a.action {
                director::cmd_ctl::Action::List(l) => l.lab.name(),
                other => panic!("{args:?}: {other:?} is not list"),
            },
            Command::Exec(a) => a.lab.as_deref(),
            Command::Request(a) => a.lab.as_deref(),
            Command::Capture(a) => a.lab.as_deref(),
            Command::Director(a) => a.lab.as_deref(),
            other => panic!("{args:?}: {other:?} names no lab"),
        };
        name.map(str::to_owned)
    }

    #[test]
    fn simulate_picks_one_backend_or_compares_both() {
        let Ok(Command::Simulate(a)) = parse(&["simulate", "x.sim"]) else {
            panic!("simulate x.sim does not parse")
        };
        assert_eq!(a.backend, cmd_simulate::SimBackend::Userspace);
        assert!(!a.compare && !a.here);
        let Ok(Command::Simulate(a)) = parse(&[
            "simulate",
            "--backend",
            "ipvs",
            "--here",
            "--max-sleep",
            "130",
            "x",
        ]) else {
            panic!("--backend ipvs does not parse")
        };
        assert_eq!(a.backend, cmd_simulate::SimBackend::Ipvs);
        assert!(a.here);
        assert_eq!(a.max_sleep, 130.0);
        assert!(matches!(
            parse(&["simulate", "--compare", "x"]),
            Ok(Command::Simulate(ref a)) if a.compare
        ));
        assert!(
            parse(&["simulate", "--compare", "--backend", "ipvs", "x"]).is_err(),
            "--compare runs both backends; naming one is a mistake"
        );
    }

    #[test]
    fn every_lab_command_takes_dash_dash_lab() {
        for args in [
            &["down", "--lab", "x"][..],
            &["status", "--lab", "x"],
            &["stats", "--lab", "x"],
            &["conns", "--lab", "x"],
            &["service", "list", "--lab", "x"],
            &["exec", "--lab", "x", "rs1", "--", "true"],
            &[
                "request",
                "--lab",
                "x",
                "--from",
                "client",
                "--to",
                "192.0.2.1:80",
            ],
            &["capture", "--lab", "x", "--", "true"],
            &["director", "--lab", "x"],
        ] {
            assert_eq!(lab_of(args).as_deref(), Some("x"), "{args:?}");
        }
        for args in [
            &["service", "add", "--lab", "x", "-t", "192.0.2.1:80"][..],
            &[
                "real",
                "del",
                "--lab",
                "x",
                "-t",
                "192.0.2.1:80",
                "-r",
                "10.0.0.1:80",
            ],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn the_positional_lab_is_still_accepted() {
        for args in [
            &["down", "x"][..],
            &["status", "x"],
            &["status", "x", "--json"],
            &["stats", "x", "--rate"],
            &["conns", "x"],
            &["service", "list", "x"],
        ] {
            assert_eq!(lab_of(args).as_deref(), Some("x"), "{args:?}");
        }
    }

    #[test]
    fn no_lab_named_leaves_the_choice_to_resolve_lab() {
        for args in [
            &["down"][..],
            &["status"],
            &["stats"],
            &["conns"],
            &["service", "list"],
            &["exec", "rs1", "--", "true"],
            &["capture", "--", "true"],
            &["director"],
        ] {
            assert_eq!(lab_of(args), None, "{args:?}");
        }
    }

    #[test]
    fn naming_the_lab_twice_or_with_all_is_refused() {
        for args in [
            &["down", "x", "--lab", "y"][..],
            &["status", "x", "--lab", "y"],
            &["stats", "x", "--lab", "y"],
            &["down", "--all", "x"],
            &["down", "--all", "--lab", "x"],
        ] {
            let e = parse(args).expect_err("refused");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}: {e}"
            );
        }
    }
}
