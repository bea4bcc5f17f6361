//! The balancer backend seam: everything a command or a scenario does to a lab's director
//! (apply an ipvsadm line, read the table with its counters, read the connections) goes
//! through [`Balancer`], whichever backend the lab runs. The userspace director answers
//! over its control socket; kernel IPVS answers over generic netlink inside the director's
//! namespace. Both give the same rows, so the CLI and the scenario runner print and check
//! one thing.

use crate::{directors_with_services, EngineError, Result};
use lvslab_core::ipvsadm;
use lvslab_director::control::{
    socket_path, ConnRow, ControlClient, DestStats, PickRow, ServiceStats, Stats,
};
use lvslab_director::listing::{ListedDaemon, ListedDest, ListedKey, ListedService, Table};
use lvslab_ipvs_nl::{KernelIpvs, ServiceEntry, SyncState};
use lvslab_netns::{Backend, Lab, Topology};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A lab director's balancer, whichever backend it is.
pub trait Balancer {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Applies one ipvsadm command line (`-A`, `-e`, `--set`, ...).
    fn ipvsadm(&self, line: &str) -> Result<()>;
    /// Services, real servers and counters, as `ipvsadm -Ln --stats` shows them.
    fn stats(&self) -> Result<Stats>;
    /// The connection table, as `ipvsadm -Lnc` shows it.
    fn conns(&self) -> Result<Vec<ConnRow>>;
    /// The whole table as `ipvsadm -L` and `-S` print it: flags, thresholds, timeouts.
    fn table(&self) -> Result<Table>;
    /// Zero the counters of one service, or of every service (`ipvsadm -Z`).
    fn zero(&self, service: Option<ListedKey>) -> Result<()>;
    /// Start or stop keeping the scheduler's reasoning for each new connection.
    fn explain(&self, on: bool) -> Result<()>;
    /// The reasoning kept for the newest new connections, oldest first.
    fn picks(&self) -> Result<Vec<PickRow>>;
    /// Whether the reasoning is being kept now.
    fn explaining(&self) -> Result<bool>;
    /// The connection (not a persistence template) of the client at `client`, if any; for
    /// a step that must wait until the director has seen a state.
    fn conn_of(&self, client: SocketAddr) -> Result<Option<ConnRow>> {
        Ok(self
            .conns()?
            .into_iter()
            .find(|c| c.source == client && !c.template))
    }
}

/// The director a command acts on: `node` if given (a pair's lvslab backup too), else the
/// only one with services.
pub fn pick_director(topo: &Topology, node: Option<&str>) -> Result<String> {
    let all = directors_with_services(topo);
    match node {
        Some(n) if all.iter().any(|a| a == n) => Ok(n.to_owned()),
        Some(n) if crate::pair::lvslab_backups(topo).iter().any(|b| b == n) => Ok(n.to_owned()),
        Some(n) => Err(EngineError::NotADirector {
            node: n.to_owned(),
            topology: topo.name.clone(),
            directors: all,
        }),
        None => match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(EngineError::NoDirector(topo.name.clone())),
            many => Err(EngineError::SeveralDirectors {
                topology: topo.name.clone(),
                directors: many.to_vec(),
            }),
        },
    }
}

/// The balancer of director `node` (or the only director; of a pair, the one that is VRRP
/// MASTER now) of `lab`.
pub fn balancer(lab: &Lab, node: Option<&str>) -> Result<Box<dyn Balancer>> {
    let master = match (node, lab.state.backend) {
        (None, Backend::Userspace) => crate::pair::pair_states(lab)
            .into_iter()
            .find(|(_, i)| i.state == "MASTER")
            .map(|(n, _)| n),
        _ => None,
    };
    let node = pick_director(&lab.state.topology, master.as_deref().or(node))?;
    Ok(match lab.state.backend {
        Backend::Userspace => Box::new(Userspace {
            client: ControlClient::new(socket_path(&lab.run_dir(), &node)),
        }),
        Backend::Ipvs => Box::new(Kernel {
            netns: lab.netns_of(&node)?,
        }),
    })
}

/// The userspace director, over its control socket.
pub struct Userspace {
    client: ControlClient,
}

impl Userspace {
    /// The director listening on `client`'s socket.
    pub fn new(client: ControlClient) -> Self {
        Self { client }
    }
}

impl Balancer for Userspace {
    fn backend(&self) -> Backend {
        Backend::Userspace
    }

    fn ipvsadm(&self, line: &str) -> Result<()> {
        Ok(self.client.ipvsadm(line)?)
    }

    fn stats(&self) -> Result<Stats> {
        Ok(self.client.stats()?)
    }

    fn conns(&self) -> Result<Vec<ConnRow>> {
        Ok(self.client.conns()?)
    }

    fn table(&self) -> Result<Table> {
        Ok(self.client.table()?)
    }

    fn zero(&self, service: Option<ListedKey>) -> Result<()> {
        Ok(self.client.zero(service)?)
    }

    fn explain(&self, on: bool) -> Result<()> {
        Ok(self.client.explain(on)?)
    }

    fn picks(&self) -> Result<Vec<PickRow>> {
        Ok(self.client.picks()?)
    }

    fn explaining(&self) -> Result<bool> {
        Ok(self.client.explaining()?)
    }
}

/// Kernel IPVS in a director's namespace.
pub struct Kernel {
    netns: String,
}

impl Kernel {
    /// Kernel IPVS as seen from namespace `netns`.
    pub fn new(netns: impl Into<String>) -> Self {
        Self {
            netns: netns.into(),
        }
    }

    /// Runs `f` with the IPVS table of the director's namespace: the netlink socket is
    /// opened from a thread inside it, which ties the socket to that namespace.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut KernelIpvs) -> std::result::Result<T, lvslab_ipvs_nl::Error> + Send,
    ) -> Result<T> {
        let r = lvslab_netns::netns::run_in(&self.netns, || {
            KernelIpvs::open().and_then(|mut k| f(&mut k))
        })?;
        Ok(r?)
    }
}

impl Balancer for Kernel {
    fn backend(&self) -> Backend {
        Backend::Ipvs
    }

    fn explain(&self, _on: bool) -> Result<()> {
        Err(EngineError::KernelCannotExplain)
    }

    fn picks(&self) -> Result<Vec<PickRow>> {
        Err(EngineError::KernelCannotExplain)
    }

    fn explaining(&self) -> Result<bool> {
        Ok(false)
    }

    fn ipvsadm(&self, line: &str) -> Result<()> {
        let cmd = ipvsadm::parse(line).map_err(|e| EngineError::Ipvsadm {
            line: line.to_owned(),
            message: e.to_string(),
        })?;
        self.with(|k| k.apply(&cmd))
    }

    fn stats(&self) -> Result<Stats> {
        let services = self.with(|k| k.services())?;
        Ok(Stats {
            services: services.iter().map(service_stats).collect(),
            // The kernel keeps no packet-path counters of the userspace director's kind.
            director: BTreeMap::new(),
        })
    }

    fn table(&self) -> Result<Table> {
        let (info, services, timeouts, daemons) =
            self.with(|k| Ok((k.info()?, k.services()?, k.timeouts()?, k.daemons()?)))?;
        let mut t = Table::new(
            services
                .iter()
                .map(|s| {
                    ListedService::new(
                        &s.config,
                        s.stats,
                        s.dests.iter().map(|d| {
                            ListedDest::new(&d.config, d.active, d.inactive, d.persistent, d.stats)
                        }),
                    )
                })
                .collect(),
            timeouts,
        );
        t.version = info.version;
        t.conn_tab_size = info.conn_tab_size;
        t.daemons = daemons
            .into_iter()
            .map(|d| ListedDaemon {
                state: match d.state {
                    SyncState::Master => "master",
                    SyncState::Backup => "backup",
                }
                .to_owned(),
                mcast_ifn: d.mcast_ifn,
                syncid: d.syncid,
            })
            .collect();
        Ok(t)
    }

    fn zero(&self, service: Option<ListedKey>) -> Result<()> {
        let key = service.map(lvslab_core::ServiceKey::from);
        self.with(|k| k.zero(key.as_ref()))
    }

    fn conns(&self) -> Result<Vec<ConnRow>> {
        let conns = lvslab_netns::netns::run_in(&self.netns, lvslab_ipvs_nl::conns::read)??;
        Ok(conns
            .into_iter()
            .map(|c| ConnRow {
                template: c.protocol == "IP",
                // ip_vs_conn.c counts a TCP conn active only while ESTABLISHED.
                active: c.state == "ESTABLISHED",
                pro: c.protocol,
                expire_secs: c.expires_secs,
                state: c.state,
                source: c.client,
                virtual_addr: c.virtual_addr,
                destination: c.dest,
            })
            .collect())
    }
}

fn service_stats(s: &ServiceEntry) -> ServiceStats {
    ServiceStats::new(
        &s.config,
        s.stats,
        s.dests.iter().map(|d| {
            DestStats::new(
                &d.config,
                u64::from(d.active),
                u64::from(d.inactive),
                d.stats,
            )
        }),
    )
}
