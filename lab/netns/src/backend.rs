//! Which balancer runs a lab's virtual services.

use serde::{Deserialize, Serialize};

/// The balancer behind a lab's director: lvslab's userspace director or kernel IPVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// lvslab's own userspace director (`lvslab director`): the director's kernel neither
    /// owns the VIP nor forwards.
    #[default]
    Userspace,
    /// Kernel IPVS, set up as the seed sets up a real director: the VIP on the director,
    /// `ip_forward=1`, the table configured over generic netlink.
    Ipvs,
}

impl Backend {
    /// Every backend, as the CLI lists them.
    pub const ALL: [Backend; 2] = [Backend::Userspace, Backend::Ipvs];

    /// `userspace` or `ipvs`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Userspace => "userspace",
            Backend::Ipvs => "ipvs",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown backend {s:?}: use userspace or ipvs"))
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_exists() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{b}\""));
        }
        let e = "kernel".parse::<Backend>().unwrap_err();
        assert!(e.contains("userspace or ipvs"), "{e}");
    }
}
