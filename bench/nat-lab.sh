#!/usr/bin/env bash
# The seed NAT lab built with iproute2, probed once (director -> rs1) and torn down.
# Baseline for `lvslab bench up`. Same shape as topologies/nat-topology.toml:
#   client --veth-- router --veth-- director == lan0 bridge (in a switch ns) == rs1, rs2
# PREFIX keeps concurrent runs apart (default: lvs-sh<pid>-), so `lvslab down --all` also
# finds leftovers of an interrupted run.
set -euo pipefail
P=${PREFIX:-lvs-sh$$-}
NS=(client router director rs1 rs2 sw)
cleanup() { for n in "${NS[@]}"; do ip netns del "$P$n" 2>/dev/null || true; done; }
trap cleanup EXIT

for n in "${NS[@]}"; do ip netns add "$P$n"; done
x() { local n=$1; shift; ip -n "$P$n" "$@"; }
for n in "${NS[@]}"; do
  ip netns exec "$P$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  x "$n" link set lo up
done
ip netns exec "${P}router" sysctl -qw net.ipv4.ip_forward=1

# point-to-point links, each end created in its namespace
ip link add c0 netns "${P}client" type veth peer r0 netns "${P}router"
ip link add r1 netns "${P}router" type veth peer d0 netns "${P}director"
x client link set c0 name eth0; x router link set r0 name eth0
x router link set r1 name eth1; x director link set d0 name eth0

# LAN: a bridge in the switch namespace, one veth per member
x sw link add lan0 type bridge
x sw link set lan0 up
for m in director:eth1 rs1:eth0 rs2:eth0; do
  node=${m%%:*}; ifn=${m##*:}
  ip link add "sw-$node" netns "${P}sw" type veth peer "t-$node" netns "$P$node"
  x "$node" link set "t-$node" name "$ifn"
  x sw link set "sw-$node" master lan0 up
done

x client   addr add 198.51.100.10/24 dev eth0;  x client link set eth0 up
x router   addr add 198.51.100.1/24 dev eth0;   x router link set eth0 up
x router   addr add 203.0.113.1/24 dev eth1;    x router link set eth1 up
x director addr add 203.0.113.2/24 dev eth0;    x director link set eth0 up
x director addr add 192.168.1.202/24 dev eth1;  x director link set eth1 up
x rs1      addr add 192.168.1.201/24 dev eth0;  x rs1 link set eth0 up
x rs2      addr add 192.168.1.203/24 dev eth0;  x rs2 link set eth0 up

x client   route add default via 198.51.100.1
x router   route add 192.168.1.0/24 via 203.0.113.2
x director route add default via 203.0.113.1
x rs1      route add default via 192.168.1.202
x rs2      route add default via 192.168.1.202

# One round trip director -> rs1 without extra tools: a TCP SYN to a closed port comes back as
# RST ("Connection refused"); a timeout means the lab is broken.
out=$(ip netns exec "${P}director" timeout 2 bash -c 'exec 3<>/dev/tcp/192.168.1.201/9' 2>&1 || true)
case $out in *refused*) ;; *) echo "no answer from rs1: $out" >&2; exit 1 ;; esac
