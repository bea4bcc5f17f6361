//! The connection table: entries, two hash indexes (client side, server side) and timers.
//!
//! Bound policy: the table holds at most `max` entries (connections plus persistence
//! templates). When it is full a packet that would create a new entry is dropped
//! (`InVerdict::Drop`) and counted in `IpvsStats::dropped_table_full`; existing entries keep
//! working. With the `drop_entry` sysctl at 0 (the kernel's default) nothing is evicted
//! early: this mirrors conntrack's "table full, dropping packet", so a flood cannot push
//! out established flows, and a *new* client is refused until flood entries expire.
//!
//! With `drop_entry` at 1, 2 or 3 the kernel's defence against that applies
//! (`Ipvs::drop_entries`, ip_vs_random_dropentry's victims): a full table is what lvslab
//! calls "memory short", and the packet that finds it full first evicts entries the kernel
//! would drop (half-open TCP, idle low-traffic flows) from a window of [`EVICT_WINDOW`]
//! slots starting at `cursor`, then takes the freed slot. The cursor moves on past the
//! window, so the scan walks the slab round and round: the same packets give the same
//! victims, no randomness (the kernel picks 1/32 of its hash buckets at random, once a
//! second).
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};

use hashbrown::HashTable;

use crate::tcp::ConnState;
use crate::types::{ConnId, Protocol};

/// Counted in the dest's inactive conns (not ESTABLISHED).
pub(crate) const F_INACTIVE: u8 = 1;
/// Replies bypass the director (DR/TUN): the input-only state table applies.
pub(crate) const F_NOOUTPUT: u8 = 2;
/// A persistence template, not a flow.
pub(crate) const F_TEMPLATE: u8 = 4;
/// Hashed into the server-side index (NAT).
pub(crate) const F_HASHED_OUT: u8 = 8;
/// Created by connection sync on a backup (IP_VS_CONN_F_SYNC).
pub(crate) const F_SYNC: u8 = 16;

const NO_CONN: u32 = u32::MAX;

/// How many slots one new flow may look at for a victim when the table is full and
/// `drop_entry` is on: enough to step over the few entries a flood never makes (held
/// flows, TIME_WAIT), small enough that a table of entries the kernel keeps costs each
/// refused packet a bounded scan.
pub(crate) const EVICT_WINDOW: usize = 64;

/// One entry. Addresses are split into IP and port to keep the entry small (see the bench).
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub client_ip: IpAddr,
    pub vip_ip: IpAddr,
    pub client_port: u16,
    pub vport: u16,
    pub dport: u16,
    pub protocol: Protocol,
    pub state: ConnState,
    pub flags: u8,
    pub svc: u32,
    pub dest: u32,
    /// The template controlling this conn (persistence), or NO_CONN.
    pub control: u32,
    /// Conns this template controls.
    pub n_control: u32,
    pub timeout_ms: u32,
    pub expires_ms: u64,
    /// The deadline of this entry's timer in the heap (may be earlier than expires_ms).
    pub heap_ms: u64,
    /// Packets client -> server (the kernel's `in_pkts`, which todrop_entry reads), saturating.
    pub in_pkts: u8,
}

impl Conn {
    pub fn client(&self) -> SocketAddr {
        SocketAddr::new(self.client_ip, self.client_port)
    }
    pub fn vip(&self) -> SocketAddr {
        SocketAddr::new(self.vip_ip, self.vport)
    }
    pub fn control(&self) -> Option<u32> {
        (self.control != NO_CONN).then_some(self.control)
    }
    pub fn new_flow(
        protocol: Protocol,
        client: SocketAddr,
        vip: SocketAddr,
        dport: u16,
        svc: u32,
        dest: u32,
    ) -> Self {
        Conn {
            client_ip: client.ip(),
            vip_ip: vip.ip(),
            client_port: client.port(),
            vport: vip.port(),
            dport,
            protocol,
            state: ConnState::None,
            flags: 0,
            svc,
            dest,
            control: NO_CONN,
            n_control: 0,
            timeout_ms: 0,
            expires_ms: 0,
            heap_ms: u64::MAX,
            in_pkts: 0,
        }
    }
}

#[inline]
fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95)
}

#[inline]
fn ip_bits(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
        }
    }
}

/// Hash of a flow key (protocol, one side, the other side).
#[inline]
pub(crate) fn flow_hash(p: Protocol, a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> u64 {
    let mut h = mix(0, p as u64);
    h = mix(h, ip_bits(a));
    h = mix(h, (u64::from(ap) << 16) | u64::from(bp));
    h = mix(h, ip_bits(b));
    // One more multiply so the top bits (hashbrown's tag) depend on every input bit.
    (h ^ (h >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn in_hash(c: &Conn) -> u64 {
    flow_hash(c.protocol, c.client_ip, c.client_port, c.vip_ip, c.vport)
}

/// Connection slab with indexes and a lazy timer heap.
#[derive(Debug)]
pub(crate) struct ConnTable {
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    by_in: HashTable<u32>,
    by_out: HashTable<u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    len: usize,
    /// Upper bound on entries.
    pub max: usize,
    /// The slot the next drop_entry scan starts at.
    pub cursor: usize,
}

impl ConnTable {
    pub fn new(max: usize) -> Self {
        ConnTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_in: HashTable::new(),
            by_out: HashTable::new(),
            heap: BinaryHeap::new(),
            len: 0,
            max,
            cursor: 0,
        }
    }

    /// Slots in the slab, used or free (the range ids and the scan cursor live in).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.max
    }

    pub fn get(&self, id: u32) -> Option<&Conn> {
        self.slots.get(id as usize).and_then(|c| c.as_ref())
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Conn> {
        self.slots.get_mut(id as usize).and_then(|c| c.as_mut())
    }

    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (ConnId(i as u32), c)))
    }

    /// Store an entry (unindexed) and arm its timer.
    pub fn insert(&mut self, conn: Conn) -> u32 {
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(conn);
                id
            }
            None => {
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        self.len += 1;
        id
    }

    /// Index a flow by its client side.
    pub fn hash_in(&mut self, id: u32) {
        let slots = &self.slots;
        let Some(c) = slots[id as usize].as_ref() else {
            return;
        };
        let h = flow_hash(c.protocol, c.client_ip, c.client_port, c.vip_ip, c.vport);
        self.by_in
            .insert_unique(h, id, |&x| slots[x as usize].as_ref().map_or(0, in_hash));
    }

    /// Index a NAT flow by its server side; `rs_ip` maps a dest id to its address.
    pub fn hash_out(&mut self, id: u32, rs_ip: impl Fn(u32) -> Option<IpAddr>) {
        let Some(c) = self.slots[id as usize].as_mut() else {
            return;
        };
        let Some(rs) = rs_ip(c.dest) else {
            return;
        };
        c.flags |= F_HASHED_OUT;
        let h = flow_hash(c.protocol, rs, c.dport, c.client_ip, c.client_port);
        let slots = &self.slots;
        self.by_out.insert_unique(h, id, |&x| {
            slots[x as usize].as_ref().map_or(0, |c| {
                rs_ip(c.dest).map_or(0, |rs| {
                    flow_hash(c.protocol, rs, c.dport, c.client_ip, c.client_port)
                })
            })
        });
    }

    pub fn find_in(&self, p: Protocol, client: SocketAddr, vip: SocketAddr) -> Option<u32> {
        let h = flow_hash(p, client.ip(), client.port(), vip.ip(), vip.port());
        self.by_in
            .find(h, |&x| {
                self.slots[x as usize].as_ref().is_some_and(|c| {
                    c.protocol == p
                        && c.client_port == client.port()
                        && c.vport == vip.port()
                        && c.client_ip == client.ip()
                        && c.vip_ip == vip.ip()
                })
            })
            .copied()
    }

    /// Find a NAT flow from the server side; `rs_ip` tells each candidate's server address.
    pub fn find_out(
        &self,
        p: Protocol,
        rs: SocketAddr,
        client: SocketAddr,
        rs_ip: impl Fn(u32) -> Option<IpAddr>,
    ) -> Option<u32> {
        let h = flow_hash(p, rs.ip(), rs.port(), client.ip(), client.port());
        self.by_out
            .find(h, |&x| {
                self.slots[x as usize].as_ref().is_some_and(|c| {
                    c.protocol == p
                        && c.dport == rs.port()
                        && c.client_port == client.port()
                        && c.client_ip == client.ip()
                        && rs_ip(c.dest) == Some(rs.ip())
                })
            })
            .copied()
    }

    /// Remove an entry from the indexes and the slab.
    pub fn remove(&mut self, id: u32, rs: Option<IpAddr>) -> Option<Conn> {
        let c = self.slots.get(id as usize)?.as_ref()?;
        let h = flow_hash(c.protocol, c.client_ip, c.client_port, c.vip_ip, c.vport);
        if let Ok(e) = self.by_in.find_entry(h, |&x| x == id) {
            e.remove();
        }
        if c.flags & F_HASHED_OUT != 0 {
            if let Some(rs) = rs {
                let h = flow_hash(c.protocol, rs, c.dport, c.client_ip, c.client_port);
                if let Ok(e) = self.by_out.find_entry(h, |&x| x == id) {
                    e.remove();
                }
            }
        }
        let c = self.slots[id as usize].take();
        self.free.push(id);
        self.len -= 1;
        c
    }

    /// Set the entry's expiry; push a timer only when the new deadline is earlier than the armed one.
    pub fn arm(&mut self, id: u32, now_ms: u64) {
        let Some(c) = self.slots[id as usize].as_mut() else {
            return;
        };
        c.expires_ms = now_ms + u64::from(c.timeout_ms);
        if c.expires_ms < c.heap_ms {
            c.heap_ms = c.expires_ms;
            self.heap.push(Reverse((c.expires_ms, id)));
        }
    }

    /// Pop the next entry whose timer is due, or None. Stale heap entries are skipped and
    /// entries whose expiry moved later are re-armed.
    pub fn next_due(&mut self, now_ms: u64) -> Option<u32> {
        while let Some(&Reverse((t, id))) = self.heap.peek() {
            if t > now_ms {
                return None;
            }
            self.heap.pop();
            let Some(c) = self.slots.get_mut(id as usize).and_then(|c| c.as_mut()) else {
                continue;
            };
            if c.heap_ms != t {
                continue;
            }
            if c.expires_ms > now_ms {
                c.heap_ms = c.expires_ms;
                self.heap.push(Reverse((c.expires_ms, id)));
                continue;
            }
            c.heap_ms = u64::MAX;
            return Some(id);
        }
        None
    }

    /// Bytes of memory held per entry at the current size (slab, indexes, timer heap).
    pub fn bytes_per_entry(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let slab =
            self.slots.capacity() * std::mem::size_of::<Option<Conn>>() + self.free.capacity() * 4;
        // hashbrown: one u32 plus one control byte per bucket.
        let idx = (self.by_in.capacity() + self.by_out.capacity()) * 5;
        let heap = self.heap.capacity() * std::mem::size_of::<Reverse<(u64, u32)>>();
        (slab + idx + heap) as f64 / self.len as f64
    }
}
