//! The IPVS TCP state machine, as in the kernel's ip_vs_proto_tcp.c.
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::types::TcpFlags;

/// IPVS connection states (TCP ones, plus UDP's single state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum ConnState {
    /// No packet seen yet.
    None = 0,
    /// ESTABLISHED: the only state counted as an active connection.
    Established,
    /// SYN_SENT.
    SynSent,
    /// SYN_RECV.
    SynRecv,
    /// FIN_WAIT.
    FinWait,
    /// TIME_WAIT.
    TimeWait,
    /// CLOSE.
    Close,
    /// CLOSE_WAIT.
    CloseWait,
    /// LAST_ACK.
    LastAck,
    /// LISTEN.
    Listen,
    /// SYNACK.
    SynAck,
    /// UDP's one state.
    Udp,
}

impl ConnState {
    /// The name ipvsadm -Lnc prints.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// Default kernel timeout of a TCP state (tcp_timeouts[] in ip_vs_proto_tcp.c).
    pub fn default_timeout(self) -> Duration {
        Duration::from_secs(match self {
            ConnState::None => 2,
            ConnState::Established => 900,
            ConnState::SynSent => 120,
            ConnState::SynRecv => 60,
            ConnState::FinWait => 120,
            ConnState::TimeWait => 120,
            ConnState::Close => 10,
            ConnState::CloseWait => 60,
            ConnState::LastAck => 30,
            ConnState::Listen => 120,
            ConnState::SynAck => 120,
            ConnState::Udp => 300,
        })
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which table of the state machine applies to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server, on a conn whose replies pass the director (NAT).
    Input,
    /// Server to client through the director.
    Output,
    /// Client to server on a conn whose replies bypass the director (DR/TUN).
    InputOnly,
}

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

// Rows: syn, fin, ack, rst; columns: the current state NONE..SYNACK. Copied cell by cell from
// the current kernel (an ACK with no state goes to CLOSE, as since Linux 4.x).
const INPUT: [[ConnState; 11]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [[ConnState; 11]; 4] = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [[ConnState; 11]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The next TCP state for a packet with `flags` seen in `dir` while in `state`.
///
/// Like tcp_state_idx(): RST wins over SYN over FIN over ACK; a segment with none of them
/// moves the conn to CLOSE.
pub fn next_state(state: ConnState, dir: Direction, flags: TcpFlags) -> ConnState {
    let row = if flags.rst {
        3
    } else if flags.syn {
        0
    } else if flags.fin {
        1
    } else if flags.ack {
        2
    } else {
        return ConnState::Close;
    };
    let col = state as usize;
    if col > 10 {
        return state;
    }
    let table = match dir {
        Direction::Input => &INPUT,
        Direction::Output => &OUTPUT,
        Direction::InputOnly => &INPUT_ONLY,
    };
    table[row][col]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_close_by_client_ends_in_time_wait() {
        let mut s = ConnState::None;
        for (dir, f) in [
            (Direction::Input, TcpFlags::SYN),
            (Direction::Output, TcpFlags::SYN_ACK),
            (Direction::Input, TcpFlags::ACK),
        ] {
            s = next_state(s, dir, f);
        }
        assert_eq!(s, ConnState::Established);
        s = next_state(s, Direction::Input, TcpFlags::FIN_ACK);
        assert_eq!(s, ConnState::CloseWait);
        s = next_state(s, Direction::Output, TcpFlags::FIN_ACK);
        assert_eq!(s, ConnState::TimeWait);
    }

    #[test]
    fn dr_close_by_client_ends_in_fin_wait() {
        let mut s = next_state(ConnState::None, Direction::InputOnly, TcpFlags::SYN);
        assert_eq!(s, ConnState::SynRecv);
        s = next_state(s, Direction::InputOnly, TcpFlags::ACK);
        assert_eq!(s, ConnState::Established);
        s = next_state(s, Direction::InputOnly, TcpFlags::FIN_ACK);
        assert_eq!(s, ConnState::FinWait);
        s = next_state(s, Direction::InputOnly, TcpFlags::RST);
        assert_eq!(s, ConnState::Close);
    }
}
