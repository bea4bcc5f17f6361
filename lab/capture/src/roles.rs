//! Names for what the normalizer prints: hops, address roles, MAC owners.

use crate::decode::Mac;
use lvslab_netns::Label;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// A capture point: one interface of one lab node, shown as `node:iface`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hop {
    /// Node name from the topology (e.g. `director`).
    pub node: String,
    /// Interface name inside the node (e.g. `eth1`).
    pub iface: String,
}

impl Hop {
    /// A hop from its node and interface names.
    pub fn new(node: impl Into<String>, iface: impl Into<String>) -> Self {
        Hop {
            node: node.into(),
            iface: iface.into(),
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.iface)
    }
}

/// What the normalizer knows about the lab: a label per address (CIP, VIP, RIP1...) and
/// the interface that owns each MAC address.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    labels: BTreeMap<IpAddr, Label>,
    macs: BTreeMap<Mac, Hop>,
}

impl RoleMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names an address; a later label for the same address replaces the earlier one.
    pub fn label(&mut self, addr: IpAddr, label: Label) -> &mut Self {
        self.labels.insert(addr, label);
        self
    }

    /// Records that `hop` owns `mac`.
    pub fn mac(&mut self, mac: Mac, hop: Hop) -> &mut Self {
        self.macs.insert(mac, hop);
        self
    }

    /// The label of an address, if it has one.
    pub fn label_of(&self, addr: &IpAddr) -> Option<Label> {
        self.labels.get(addr).copied()
    }

    /// The interface that owns a MAC, if known.
    pub fn owner_of(&self, mac: &Mac) -> Option<&Hop> {
        self.macs.get(mac)
    }

    /// Does `hop` own `mac`?
    pub fn owns(&self, hop: &Hop, mac: &Mac) -> bool {
        self.macs.get(mac) == Some(hop)
    }

    /// All labelled addresses.
    pub fn labels(&self) -> impl Iterator<Item = (&IpAddr, Label)> {
        self.labels.iter().map(|(a, l)| (a, *l))
    }
}

impl RoleMap {
    /// The map as text, one fact a line: `mac <mac> <node> <iface>` or `addr <ip> <label>`.
    /// Runs write it beside their captures so the path can be rebuilt offline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (mac, hop) in &self.macs {
            out.push_str(&format!("mac {} {} {}\n", mac, hop.node, hop.iface));
        }
        for (addr, label) in &self.labels {
            out.push_str(&format!("addr {addr} {label}\n"));
        }
        out
    }

    /// Parses [`RoleMap::to_text`]'s format; the error names the line.
    pub fn from_text(text: &str) -> Result<RoleMap, String> {
        let mut r = RoleMap::new();
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [] => {}
                ["mac", m, node, iface] => {
                    let mac: Mac = m
                        .parse()
                        .map_err(|_| format!("line {}: bad MAC {m:?}", n + 1))?;
                    r.mac(mac, Hop::new(*node, *iface));
                }
                ["addr", a, label] => {
                    let addr: IpAddr = a
                        .parse()
                        .map_err(|_| format!("line {}: bad address {a:?}", n + 1))?;
                    let label = label.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
                    r.label(addr, label);
                }
                _ => {
                    return Err(format!(
                        "line {}: expected `mac MAC NODE IFACE` or `addr IP LABEL`, got {line:?}",
                        n + 1
                    ))
                }
            }
        }
        Ok(r)
    }
}
