//! The LVS documentation's names for addresses (CIP, GWIP, VIP, DIP, RIP) and the node role
//! each belongs to: one vocabulary for topology files, lab state, `status` and captures.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::topology::Role;

/// What an address is for, in the LVS HOWTO's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrRole {
    /// Client IP: where requests come from.
    Cip,
    /// Gateway IP: the router's address facing the clients.
    Gwip,
    /// Virtual IP: the service address clients connect to.
    Vip,
    /// Director IP: the director's address facing the real servers.
    Dip,
    /// Real-server IP.
    Rip,
}

impl AddrRole {
    /// Every address role, in the order a request meets them.
    pub const ALL: [AddrRole; 5] = [
        AddrRole::Cip,
        AddrRole::Gwip,
        AddrRole::Vip,
        AddrRole::Dip,
        AddrRole::Rip,
    ];

    /// The upper-case word (`CIP`, `GWIP`, ...).
    pub fn word(self) -> &'static str {
        match self {
            AddrRole::Cip => "CIP",
            AddrRole::Gwip => "GWIP",
            AddrRole::Vip => "VIP",
            AddrRole::Dip => "DIP",
            AddrRole::Rip => "RIP",
        }
    }

    /// The node role whose interfaces carry this address (`None`: the VIP lives on several).
    pub fn node_role(self) -> Option<Role> {
        match self {
            AddrRole::Cip => Some(Role::Client),
            AddrRole::Gwip => Some(Role::Router),
            AddrRole::Vip => None,
            AddrRole::Dip => Some(Role::Director),
            AddrRole::Rip => Some(Role::Realserver),
        }
    }
}

impl fmt::Display for AddrRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// An address label such as `CIP`, `DIP2` or `RIP1`: a role and an optional number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// What the address is for.
    pub role: AddrRole,
    /// Which one, when there are several (`RIP1`, `RIP2`).
    pub index: Option<u32>,
}

impl Label {
    /// A label from its role and number.
    pub fn new(role: AddrRole, index: Option<u32>) -> Self {
        Label { role, index }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}{i}", self.role),
            None => write!(f, "{}", self.role),
        }
    }
}

/// Text that is not an address label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown address label `{0}`")]
pub struct UnknownLabel(pub String);

/// How to write a label; the validator's help for a bad one.
pub const LABEL_HELP: &str =
    "a label is CIP, GWIP, VIP, DIP or RIP, optionally numbered (RIP1, DIP2)";

impl FromStr for Label {
    type Err = UnknownLabel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownLabel(s.to_string());
        let role = AddrRole::ALL
            .into_iter()
            .find(|r| s.starts_with(r.word()))
            .ok_or_else(bad)?;
        let rest = &s[role.word().len()..];
        let index = if rest.is_empty() {
            None
        } else if rest.bytes().all(|b| b.is_ascii_digit()) {
            Some(rest.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        Ok(Label { role, index })
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_reject_strangers() {
        for s in ["CIP", "GWIP", "VIP", "VIP2", "DIP", "DIP2", "RIP1", "RIP12"] {
            assert_eq!(s.parse::<Label>().map(|l| l.to_string()), Ok(s.to_string()));
        }
        for s in ["", "rip1", "RIP-1", "GW", "RIPX", "CIP1a"] {
            assert!(s.parse::<Label>().is_err(), "{s}");
        }
        assert_eq!(
            "RIP3".parse::<Label>().map(|l| l.role.node_role()),
            Ok(Some(Role::Realserver))
        );
    }
}
