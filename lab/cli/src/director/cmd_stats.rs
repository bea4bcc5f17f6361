//! `lvslab stats` and `lvslab conns`: ipvsadm -Ln --stats / --rate and ipvsadm -Lnc for a
//! lab's director, whichever backend it runs.

use anyhow::Result;
use lvslab_director::control::{ConnRow, Counters, Response, ServiceStats};
use lvslab_engine::Balancer;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Arguments of `lvslab stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub lab: crate::labarg::LabArg,
    /// The director node, when the lab has several.
    #[arg(long)]
    pub node: Option<String>,
    /// Rates over one second (like ipvsadm --rate) instead of totals.
    #[arg(long)]
    pub rate: bool,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `lvslab conns`.
#[derive(clap::Args, Debug)]
pub struct ConnsArgs {
    #[command(flatten)]
    pub lab: crate::labarg::LabArg,
    /// The director node, when the lab has several.
    #[arg(long)]
    pub node: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `lvslab service list` / `lvslab real list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub lab: crate::labarg::LabArg,
    /// The director node, when the lab has several.
    #[arg(long)]
    pub node: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The balancer of `node` (or the only director) in `lab` (or the only lab that is up).
pub fn balancer(lab: Option<&str>, node: Option<&str>) -> Result<Box<dyn Balancer>> {
    let lab = lvslab_engine::Lab::load(&lvslab_engine::resolve_lab(lab)?)?;
    Ok(lvslab_engine::balancer(&lab, node)?)
}

/// Run `lvslab service list`: the table as `ipvsadm -Ln` shows it.
pub fn run_list(args: &ListArgs) -> Result<()> {
    let lab = lvslab_engine::Lab::load(&lvslab_engine::resolve_lab(args.lab.name())?)?;
    let services = lvslab_engine::balancer(&lab, args.node.as_deref())?
        .stats()?
        .services;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&services)?);
    } else {
        print!("{}", render_list(&services));
        // Below the ipvsadm-shaped table, so the table itself stays ipvsadm's.
        let health = lvslab_engine::health::read_health(&lab.run_dir()).unwrap_or_default();
        for l in crate::cmd_status::health_lines(&health, crate::cmd_status::now_ms()) {
            println!("{l}");
        }
    }
    Ok(())
}

/// `ipvsadm -Ln`: scheduler and flags per service; forwarding method, weight and the
/// active/inactive counts the lc family of schedulers compare, per real server.
pub fn render_list(services: &[ServiceStats]) -> String {
    let mut out = String::from(
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    for s in services {
        let _ = write!(out, "{} {}", s.service, s.scheduler);
        if let Some(p) = s.persistent {
            let _ = write!(out, " persistent {p}");
        }
        out.push('\n');
        for d in &s.dests {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                d.addr, d.forward, d.weight, d.active, d.inactive
            );
        }
    }
    out
}

/// Run `lvslab stats`.
pub fn run_stats(args: StatsArgs) -> Result<()> {
    let client = balancer(args.lab.name(), args.node.as_deref())?;
    if !args.rate {
        let stats = client.stats()?;
        if args.json {
            // The answer as the socket gives it, `"result": "stats"` included.
            println!("{}", serde_json::to_string_pretty(&Response::Stats(stats))?);
        } else {
            print!("{}", render_stats(&stats.services));
        }
        return Ok(());
    }
    let t0 = Instant::now();
    let before = client.stats()?.services;
    std::thread::sleep(Duration::from_secs(1));
    let after = client.stats()?.services;
    let rates = rates(&before, &after, t0.elapsed());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rates)?);
    } else {
        print!("{}", render_rates(&rates));
    }
    Ok(())
}

/// Run `lvslab conns`.
pub fn run_conns(args: ConnsArgs) -> Result<()> {
    let conns = balancer(args.lab.name(), args.node.as_deref())?.conns()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&conns)?);
    } else {
        print!("{}", render_conns(&conns));
    }
    Ok(())
}

const STATS_HEAD: &str = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n";
const RATE_HEAD: &str = "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n";

fn counters_cols(c: &Counters) -> String {
    format!(
        "{:>8} {:>8} {:>8} {:>8} {:>8}",
        human(c.conns),
        human(c.inpkts),
        human(c.outpkts),
        human(c.inbytes),
        human(c.outbytes)
    )
}

/// ipvsadm's abbreviation of big counters (K, M, G, T with integer division by 1000).
fn human(v: u64) -> String {
    let units = ["", "K", "M", "G", "T"];
    let mut v = v;
    let mut i = 0;
    while v >= 100_000_000 && i + 1 < units.len() {
        v /= 1000;
        i += 1;
    }
    format!("{v}{}", units[i])
}

/// The table `ipvsadm -Ln --stats` prints.
pub fn render_stats(services: &[ServiceStats]) -> String {
    let mut out = String::from(STATS_HEAD);
    for s in services {
        let _ = writeln!(out, "{:<33} {}", s.service, counters_cols(&s.counters));
        for d in &s.dests {
            let _ = writeln!(out, "  -> {:<28} {}", d.addr, counters_cols(&d.counters));
        }
    }
    out
}

/// Per-second rates between two snapshots.
#[derive(Debug, serde::Serialize)]
pub struct RateRow {
    /// Service or `  -> RIP:port`.
    pub name: String,
    /// conns/s, inpkts/s, outpkts/s, inbytes/s, outbytes/s.
    pub rates: Counters,
}

fn rate(before: &Counters, after: &Counters, secs: f64) -> Counters {
    let r = |a: u64, b: u64| ((b.saturating_sub(a)) as f64 / secs).round() as u64;
    Counters {
        conns: r(before.conns, after.conns),
        inpkts: r(before.inpkts, after.inpkts),
        outpkts: r(before.outpkts, after.outpkts),
        inbytes: r(before.inbytes, after.inbytes),
        outbytes: r(before.outbytes, after.outbytes),
    }
}

/// Rates per service and real server (matched by name between snapshots).
pub fn rates(before: &[ServiceStats], after: &[ServiceStats], elapsed: Duration) -> Vec<RateRow> {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let mut rows = Vec::new();
    for s in after {
        let prev = before.iter().find(|b| b.service == s.service);
        let zero = Counters::default();
        rows.push(RateRow {
            name: s.service.clone(),
            rates: rate(prev.map_or(&zero, |p| &p.counters), &s.counters, secs),
        });
        for d in &s.dests {
            let pd = prev.and_then(|p| p.dests.iter().find(|x| x.addr == d.addr));
            rows.push(RateRow {
                name: format!("  -> {}", d.addr),
                rates: rate(pd.map_or(&zero, |p| &p.counters), &d.counters, secs),
            });
        }
    }
    rows
}

/// The table `ipvsadm -Ln --rate` prints.
pub fn render_rates(rows: &[RateRow]) -> String {
    let mut out = String::from(RATE_HEAD);
    for r in rows {
        let _ = writeln!(out, "{:<33} {}", r.name, counters_cols(&r.rates));
    }
    out
}

/// The table `ipvsadm -Lnc` prints.
pub fn render_conns(conns: &[ConnRow]) -> String {
    let mut out = String::from("IPVS connection entries\npro expire state       source             virtual            destination\n");
    for c in conns {
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            c.pro,
            c.expire_secs / 60,
            c.expire_secs % 60,
            c.state,
            c.source,
            c.virtual_addr,
            c.destination
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvslab_director::control::DestStats;

    fn svc(conns: u64) -> ServiceStats {
        let c = Counters {
            conns,
            inpkts: conns * 6,
            outpkts: 0,
            inbytes: conns * 400,
            outbytes: 0,
        };
        ServiceStats {
            service: "TCP  192.168.1.250:80".into(),
            scheduler: "rr".into(),
            persistent: None,
            counters: c,
            dests: vec![DestStats {
                addr: "192.168.1.201:80".parse().unwrap(),
                forward: "Masq".into(),
                weight: 1,
                active: 0,
                inactive: 0,
                counters: c,
            }],
        }
    }

    #[test]
    fn list_shows_weights_and_conn_counts_like_ipvsadm_ln() {
        let mut s = svc(3);
        s.persistent = Some(360);
        s.dests[0].weight = 2;
        s.dests[0].active = 1;
        s.dests[0].inactive = 4;
        let text = render_list(&[s]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "TCP  192.168.1.250:80 rr persistent 360");
        assert_eq!(
            lines[3].trim_end(),
            "  -> 192.168.1.201:80             Masq    2      1          4"
        );
    }

    #[test]
    fn stats_table_has_ipvsadm_columns() {
        let t = render_stats(&[svc(100)]);
        // Column layout of ipvsadm.c: "%-33s %8s %8s %8s %8s %8s" and "  -> %-28s ...".
        let want = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
                    \x20 -> RemoteAddress:Port\n\
                    TCP  192.168.1.250:80                  100      600        0    40000        0\n\
                    \x20 -> 192.168.1.201:80                  100      600        0    40000        0\n";
        assert_eq!(t, want);
    }

    #[test]
    fn rates_are_differences_per_second() {
        let r = rates(&[svc(100)], &[svc(300)], Duration::from_secs(2));
        assert_eq!(r[0].rates.conns, 100);
        assert_eq!(r[1].rates.inbytes, 40000);
    }
}

/// What `lvslab explain` does.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExplainAction {
    /// Start keeping the scheduler's reasoning for each new connection.
    On,
    /// Stop, and forget what was kept.
    Off,
    /// Print what was kept, oldest first.
    Show,
}

/// Arguments of `lvslab explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// on, off or show.
    pub action: ExplainAction,
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// The director node, when the lab has several.
    #[arg(long)]
    pub node: Option<String>,
    /// JSON instead of text (with show).
    #[arg(long)]
    pub json: bool,
}

/// Run `lvslab explain on|off|show`: why the live director picked each server.
pub fn run_explain(args: ExplainArgs) -> Result<()> {
    let b = balancer(args.lab.as_deref(), args.node.as_deref())?;
    match args.action {
        ExplainAction::On => {
            b.explain(true)?;
            println!("explaining picks: each new connection's reasoning is kept (the newest 256); `lvslab explain show` prints them");
        }
        ExplainAction::Off => {
            b.explain(false)?;
            println!("explaining picks: off");
        }
        ExplainAction::Show => {
            let picks = b.picks()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&picks)?);
            } else if picks.is_empty() {
                println!("no picks kept (turn explaining on with `lvslab explain on`, then send traffic)");
            } else {
                for p in picks {
                    println!("{} -> {}: {}", p.client, p.vip, p.text.trim_end());
                }
            }
        }
    }
    Ok(())
}
