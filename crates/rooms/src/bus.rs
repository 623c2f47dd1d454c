//! What the hubs of a fleet tell each other over the bus (Redis pub/sub in the server).
//!
//! Membership travels on one topic that every instance reads, so every instance sees every
//! join and leave in the one order the bus gave them, and each applies the same rules (a full
//! room refuses the same join everywhere). Offers, answers and candidates go to the topic of
//! the instance that holds the peer they are for. One instance alone needs no bus: its hub
//! applies what it would publish at once.

use serde::{Deserialize, Serialize};

use crate::protocol::ServerMessage;

/// Where a bus message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Membership, heartbeats and snapshots: read by every instance.
    Members,
    /// Messages for the peers of one instance.
    Instance(String),
}

impl Topic {
    /// The Redis channel name under `prefix`.
    pub fn channel(&self, prefix: &str) -> String {
        match self {
            Topic::Members => format!("{prefix}:members"),
            Topic::Instance(id) => format!("{prefix}:to:{id}"),
        }
    }
}

/// One bus message. `from` is always the instance that sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BusMessage {
    /// An instance (re)joined the bus: every other instance answers with a snapshot.
    Hello {
        /// The instance.
        from: String,
    },
    /// An instance is alive.
    Heartbeat {
        /// The instance.
        from: String,
    },
    /// Every peer an instance holds, as `(room, peer)`; replaces what others knew of it.
    Snapshot {
        /// The instance.
        from: String,
        /// Its peers.
        members: Vec<(String, String)>,
    },
    /// A peer of `from` asks to enter `room` (refused everywhere alike if the room is full).
    Joined {
        /// The peer's instance.
        from: String,
        /// The room.
        room: String,
        /// The peer's id.
        peer: String,
    },
    /// A peer of `from` left `room`.
    Left {
        /// The peer's instance.
        from: String,
        /// The room.
        room: String,
        /// The peer's id.
        peer: String,
    },
    /// A message for the peer `to` in `room`, from a peer of instance `from`.
    Relay {
        /// The sender's instance.
        from: String,
        /// The room both are in.
        room: String,
        /// The peer it is for.
        to: String,
        /// The message as the peer gets it (its `from` names the sender).
        message: ServerMessage,
    },
}

impl BusMessage {
    /// The instance that sent it.
    pub fn sender(&self) -> &str {
        match self {
            BusMessage::Hello { from }
            | BusMessage::Heartbeat { from }
            | BusMessage::Snapshot { from, .. }
            | BusMessage::Joined { from, .. }
            | BusMessage::Left { from, .. }
            | BusMessage::Relay { from, .. } => from,
        }
    }
}
