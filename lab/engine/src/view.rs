//! A lab as capture sees it: the hops to listen on and the role names of its addresses.
use lvslab_capture::{CaptureTarget, Hop, RoleMap};
use lvslab_netns::{AddrRole, Lab, Label};

/// Every interface of the given nodes (all nodes when `nodes` is empty) as capture targets.
pub fn capture_targets(lab: &Lab, nodes: &[String]) -> Vec<CaptureTarget> {
    lab.state
        .nodes
        .iter()
        .filter(|n| nodes.is_empty() || nodes.contains(&n.name))
        .flat_map(|n| {
            n.interfaces.iter().map(|i| CaptureTarget {
                netns: n.netns.clone(),
                hop: Hop::new(n.name.clone(), i.name.clone()),
            })
        })
        .collect()
}

/// Role names for the normalizer: interface labels, the service VIP, and MAC owners.
pub fn role_map(lab: &Lab) -> RoleMap {
    let mut roles = RoleMap::new();
    for n in &lab.state.nodes {
        for i in &n.interfaces {
            roles.mac(i.mac, Hop::new(n.name.clone(), i.name.clone()));
            // `label` names the first address, `more_labels` the rest in order.
            for (a, label) in i.addresses.iter().zip(i.label.iter().chain(&i.more_labels)) {
                roles.label(a.addr(), *label);
            }
        }
    }
    // VIP when there is one, else VIP1, VIP2, ... in service order (a firewall-mark
    // service's VIPs numbered in turn). Counted per family: a dual-stack lab's IPv4 and
    // IPv6 VIP are both "VIP", as one `label` names both addresses of an interface.
    let vips: Vec<_> = lab
        .state
        .topology
        .services
        .iter()
        .flat_map(|s| s.all_vips())
        .collect();
    for v6 in [false, true] {
        let family: Vec<_> = vips.iter().filter(|v| v.is_ipv6() == v6).collect();
        for (k, vip) in family.iter().enumerate() {
            let index = (family.len() > 1).then_some(k as u32 + 1);
            roles.label(**vip, Label::new(AddrRole::Vip, index));
        }
    }
    roles
}
