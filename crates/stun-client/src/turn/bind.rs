//! RFC 6062 §4.3: the client's side of a data connection. A new TCP or TLS connection to the
//! server, from another local address, sends one ConnectionBind with the CONNECTION-ID of a
//! peer connection and the control connection's credentials; once it succeeds the connection
//! carries the peer's bytes as they are, and this core is done with it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sans_io::{Output, Outputs, Receive, Transmit};
use stun_codec::attr::{ConnectionId, ErrorCode, Nonce, PasswordAlgorithm, Realm, Username};
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};

use super::{TurnClientConfig, TurnError};

/// How a [`ConnectionBinder`] ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindEvent {
    /// Bound: the connection now carries the peer's bytes, both ways, unframed.
    Bound,
    /// The server refused or did not answer; close the connection.
    Failed(TurnError),
}

/// One ConnectionBind on one data connection (see the module documentation); made by
/// [`TurnClient::connection_binder`](super::TurnClient::connection_binder).
#[derive(Debug)]
pub struct ConnectionBinder {
    config: TurnClientConfig,
    local: SocketAddr,
    realm: String,
    nonce: String,
    key: Option<IntegrityKey>,
    connection_id: u32,
    rng: StdRng,
    tid: Option<TransactionId>,
    /// 438 retries so far (and one 401 retry, with a new realm).
    retries: u8,
    deadline: Option<Instant>,
    done: bool,
    out: Outputs<BindEvent>,
}

/// The longest a ConnectionBind waits for its answer (RFC 8489 §6.2.2: 39.5 s over TCP).
const TIMEOUT: Duration = Duration::from_millis(39_500);

impl ConnectionBinder {
    pub(super) fn new(
        config: &TurnClientConfig,
        local: SocketAddr,
        (realm, nonce): (String, String),
        connection_id: u32,
        seed: u64,
    ) -> ConnectionBinder {
        let key = IntegrityKey::long_term(
            &config.username,
            &realm,
            &config.password,
            PasswordAlgorithm::MD5,
        )
        .ok();
        ConnectionBinder {
            config: config.clone(),
            local,
            realm,
            nonce,
            key,
            connection_id,
            rng: StdRng::seed_from_u64(seed),
            tid: None,
            retries: 0,
            deadline: None,
            done: false,
            out: Outputs::new(),
        }
    }

    /// Sends the ConnectionBind (once the new connection is open).
    pub fn start(&mut self, now: Instant) {
        self.send(now);
    }

    fn send(&mut self, now: Instant) {
        let Some(key) = &self.key else {
            return self.finish(BindEvent::Failed(TurnError::BadPassword));
        };
        let tid = TransactionId(self.rng.gen());
        let mut buf = [0u8; 512];
        let built = (|| {
            let mut b = MessageBuilder::new(
                &mut buf,
                MessageType::new(Method::CONNECTION_BIND, Class::Request),
                tid,
            )?;
            b.add(&ConnectionId(self.connection_id))?;
            b.add(&Username(&self.config.username))?;
            b.add(&Realm(&self.realm))?;
            b.add(&Nonce(&self.nonce))?;
            b.add_message_integrity(key)?;
            b.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })();
        let Ok(len) = built else {
            return self.finish(BindEvent::Failed(TurnError::Malformed("request too large")));
        };
        self.tid = Some(tid);
        self.deadline = Some(now + TIMEOUT);
        self.out.transmit(Transmit {
            transport: self.config.transport,
            local: self.local,
            remote: self.config.server,
            data: buf[..len].to_vec(),
        });
        self.out.timer_moved();
    }

    fn finish(&mut self, e: BindEvent) {
        self.done = true;
        self.deadline = None;
        self.out.timer_moved();
        self.out.event(e);
    }

    /// A frame from the data connection (before the bind, only the answer comes).
    pub fn handle_receive(&mut self, now: Instant, r: Receive<'_>) {
        if self.done || r.remote != self.config.server {
            return;
        }
        let Ok(msg) = Message::parse(r.data) else {
            return;
        };
        if Some(msg.transaction_id()) != self.tid {
            return;
        }
        match msg.message_type().class {
            Class::SuccessResponse => {
                let ok = self
                    .key
                    .as_ref()
                    .is_some_and(|k| msg.verify_integrity(k).is_ok());
                self.finish(if ok {
                    BindEvent::Bound
                } else {
                    BindEvent::Failed(TurnError::Malformed("unsigned ConnectionBind success"))
                });
            }
            Class::ErrorResponse => {
                let code = msg.get::<ErrorCode>().ok().flatten();
                let nonce = msg.get::<Nonce>().ok().flatten().map(|n| n.0.to_owned());
                match (code.as_ref().map(|e| e.code), nonce) {
                    (Some(401 | 438), Some(nonce)) if self.retries < 3 => {
                        self.retries += 1;
                        if let Some(Realm(realm)) = msg.get::<Realm>().ok().flatten() {
                            if realm != self.realm {
                                self.realm = realm.to_owned();
                                self.key = IntegrityKey::long_term(
                                    &self.config.username,
                                    &self.realm,
                                    &self.config.password,
                                    PasswordAlgorithm::MD5,
                                )
                                .ok();
                            }
                        }
                        self.nonce = nonce;
                        self.send(now);
                    }
                    (Some(401), _) => self.finish(BindEvent::Failed(TurnError::Unauthorized)),
                    (Some(code), _) => self.finish(BindEvent::Failed(TurnError::Server {
                        code,
                        reason: code_reason(&msg),
                    })),
                    (None, _) => self.finish(BindEvent::Failed(TurnError::Malformed(
                        "error without ERROR-CODE",
                    ))),
                }
            }
            _ => {}
        }
    }

    /// The answer did not come in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.finish(BindEvent::Failed(TurnError::Timeout));
        }
    }

    /// The next output: the request, the outcome, and last the timer.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<BindEvent>> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then_some(Output::Timeout(self.deadline))
        })
    }
}

fn code_reason(msg: &Message<'_>) -> String {
    msg.get::<ErrorCode>()
        .ok()
        .flatten()
        .map(|e| e.reason.to_owned())
        .unwrap_or_default()
}
