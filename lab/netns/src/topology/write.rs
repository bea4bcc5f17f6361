//! A checked [`Topology`] written back as a topology file, so a topology changed in memory
//! (scenario overrides) can be handed to anything that reads files.
//!
//! Node, interface and LAN order is kept: it decides the assigned MAC addresses.
use serde::{Serialize, Serializer};

use super::{
    ForwardMethod, HealthSpec, Label, Mistake, Protocol, Role, Scheduler, Topology, VrrpSpec,
};

/// A map that serialises in the given order (toml keeps it; a BTreeMap would sort).
struct InOrder<V>(Vec<(String, V)>);

impl<V: Serialize> Serialize for InOrder<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Serialize)]
struct File {
    description: String,
    nodes: InOrder<Node>,
    links: Vec<Link>,
    lans: InOrder<Lan>,
    services: Vec<Service>,
}

#[derive(Serialize)]
struct Node {
    role: Role,
    interfaces: InOrder<Iface>,
    routes: Vec<String>,
    sysctls: InOrder<String>,
    serve: bool,
    ipv6: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mistakes: Vec<Mistake>,
}

#[derive(Serialize)]
struct Iface {
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<Vec<Label>>,
}

#[derive(Serialize)]
struct Link {
    endpoints: [String; 2],
}

#[derive(Serialize)]
struct Lan {
    members: Vec<String>,
}

#[derive(Serialize)]
struct Service {
    director: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    vip: String,
    port: u16,
    protocol: Protocol,
    scheduler: Scheduler,
    method: ForwardMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrrp: Option<VrrpSpec>,
    real_servers: Vec<RealServer>,
}

#[derive(Serialize)]
struct RealServer {
    node: String,
    address: String,
    port: u16,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
}

impl Topology {
    /// The topology as file text that [`Topology::parse`] reads back to an equal topology
    /// (apart from `name` and `path`, which come from where the text is put).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let file = File {
            description: self.description.clone(),
            nodes: InOrder(
                self.nodes
                    .iter()
                    .map(|n| {
                        let node = Node {
                            role: n.role,
                            interfaces: InOrder(
                                n.interfaces
                                    .iter()
                                    .map(|i| {
                                        let iface = Iface {
                                            addresses: strings(&i.addresses),
                                            // One label per address when several are
                                            // labelled, as the file said it.
                                            label: i.label.filter(|_| i.more_labels.is_empty()),
                                            labels: (!i.more_labels.is_empty()).then(|| {
                                                i.label
                                                    .iter()
                                                    .chain(&i.more_labels)
                                                    .copied()
                                                    .collect()
                                            }),
                                        };
                                        (i.name.clone(), iface)
                                    })
                                    .collect(),
                            ),
                            routes: strings(&n.routes),
                            sysctls: InOrder(n.sysctls.clone()),
                            serve: n.serve,
                            ipv6: n.ipv6,
                            mistakes: n.mistakes.clone(),
                        };
                        (n.name.clone(), node)
                    })
                    .collect(),
            ),
            links: self
                .links
                .iter()
                .map(|l| Link {
                    endpoints: l.endpoints.clone().map(|e| e.to_string()),
                })
                .collect(),
            lans: InOrder(
                self.lans
                    .iter()
                    .map(|l| {
                        let members = strings(&l.members);
                        (l.name.clone(), Lan { members })
                    })
                    .collect(),
            ),
            services: self
                .services
                .iter()
                .map(|s| Service {
                    director: s.director.clone(),
                    backup: s.backup.clone(),
                    vip: s.vip.to_string(),
                    port: s.port,
                    protocol: s.protocol,
                    scheduler: s.scheduler,
                    method: s.method,
                    persistence: s.persistence,
                    fwmark: s.fwmark,
                    vips: strings(&s.vips),
                    health: s.health.clone(),
                    vrrp: s.vrrp.clone(),
                    real_servers: s
                        .real_servers
                        .iter()
                        .map(|r| RealServer {
                            node: r.node.clone(),
                            address: r.address.to_string(),
                            port: r.port,
                            weight: r.weight,
                            u_threshold: r.u_threshold,
                            l_threshold: r.l_threshold,
                        })
                        .collect(),
                })
                .collect(),
        };
        toml::to_string(&file)
    }
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_shipped_topology_reads_back_equal() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let t = Topology::load(e.path()).unwrap();
            let text = t.to_toml().unwrap();
            let mut back = Topology::parse(&t.path, text.clone())
                .unwrap_or_else(|err| panic!("{err}\n{text}"));
            back.name.clone_from(&t.name);
            assert_eq!(back, t, "{text}");
            seen += 1;
        }
        assert!(seen >= 5);
    }
}
