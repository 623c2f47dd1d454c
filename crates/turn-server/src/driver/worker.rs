//! One worker: a single-threaded runtime around one [`TurnServer`](crate::turn::TurnServer).
//! Every task of the worker reaches the core through one `Rc<RefCell<_>>`, borrowed only
//! between awaits, so the packet path takes no lock. One timer task sleeps until the
//! deadline the core last reported (or the port pool's next reservation expiry), never on a
//! fixed tick.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::batch::{Outbox, RecvBatch, Sender, Udp, BATCH};
use super::database::Job;
use super::metrics::{DriverStats, Metrics, Snapshot};
use super::ports::PortPool;
use super::relays::{self, RelaySet};
use super::stream::{self, StreamConn};
use super::{Control, Settings};
use crate::stun::StunServerConfig;
use crate::turn::{
    FiveTuple, Output, Relay, Request, Transmit, Transport, TurnServer, RELAY_OVERHEAD,
};

/// What a stream listener's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Listener {
    /// TLS (else plain TCP).
    pub tls: bool,
    /// A PROXY protocol header comes first (a load balancer's).
    pub proxy: bool,
}

impl Listener {
    pub(super) const TCP: Listener = Listener {
        tls: false,
        proxy: false,
    };
    pub(super) const TLS: Listener = Listener {
        tls: true,
        proxy: false,
    };

    pub(super) const fn behind_proxy(self) -> Listener {
        Listener {
            proxy: true,
            ..self
        }
    }
}

/// The listeners one worker owns.
#[derive(Debug, Default)]
pub(super) struct Sockets {
    pub udp: Vec<std::net::UdpSocket>,
    /// TCP listeners, and what each speaks.
    pub tcp: Vec<(std::net::TcpListener, Listener)>,
}

pub(super) fn bind_udp(
    addr: SocketAddr,
    reuse_port: bool,
    buffers: usize,
) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    super::buffers::set_buffers(&s, buffers)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

pub(super) fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// A relayed address of the worker. Kept small: a worker may hold 100,000 of them.
struct RelaySocket {
    io: RelayIo,
    local: SocketAddr,
    /// The allocation it serves, when its client came over a stream (closed with it); a
    /// UDP client leaves nothing to close.
    stream: Option<Box<FiveTuple>>,
}

enum RelayIo {
    /// Its slot in the worker's [`RelaySet`].
    Udp(u32),
    /// Its listener's task (RFC 6062).
    Tcp(JoinHandle<()>),
}

/// The state every task of the worker shares.
pub(super) struct Worker {
    pub core: TurnServer,
    udp: HashMap<SocketAddr, Sender>,
    relays: HashMap<SocketAddr, RelaySocket>,
    /// The UDP relay sockets, read by one task (`relays_task`).
    relay_set: RelaySet,
    /// The relay sockets the set last reported ready (kept for its capacity).
    ready: Vec<relays::Slot>,
    pub streams: HashMap<FiveTuple, Rc<StreamConn>>,
    ports: PortPool,
    /// Scratch for messages to clients built from peer datagrams.
    out: Vec<u8>,
    /// Where datagrams are read, a batch at a time (`None` while a task holds it).
    inbox: Option<RecvBatch>,
    /// Every datagram the worker sends waits here until the flush task (or a full outbox)
    /// sends them together.
    outbox: Outbox,
    /// A flush is due: the flush task runs after the datagram tasks woken with it, so one
    /// flush carries what all of them queued (1,000 relays each reading one datagram for
    /// their clients make one `sendmmsg` on the listener, not 1,000).
    flush_due: Rc<Notify>,
    flush_pending: bool,
    pub stats: DriverStats,
    pub settings: Settings,
    /// The core's deadline as its last drain reported it.
    timer: Option<Instant>,
    /// Wakes the timer task when the deadline moved earlier.
    wake: Rc<Notify>,
    index: usize,
    /// The user database's thread, if there is one.
    db: Option<std::sync::mpsc::Sender<Job>>,
    /// RFC 6062 peer connections by CONNECTION-ID.
    pub(super) peers: super::tcp_relay::Peers,
}

pub(super) type Shared = Rc<RefCell<Worker>>;

/// How much a stream's write queue may hold before messages to it are dropped.
const STREAM_QUEUE_LIMIT: usize = 256 * 1024;

impl Worker {
    /// A relayed datagram to a peer, from the relay socket it names.
    fn send_to_peer(&mut self, t: Transmit<&[u8]>) {
        let Some(RelayIo::Udp(slot)) = self.relays.get(&t.local).map(|r| &r.io) else {
            return;
        };
        let Some(socket) = self.relay_set.socket(*slot) else {
            return;
        };
        self.outbox.push(socket, t.remote, t.data);
    }

    /// A message to a client: a datagram from its listener, or a frame queued on its stream.
    pub(super) fn send_to_client(&mut self, t: Transmit<&[u8]>) {
        match t.transport {
            Transport::Udp => {
                let Some(s) = self.udp.get(&t.local) else {
                    return;
                };
                self.outbox.push(s, t.remote, t.data);
            }
            Transport::Tcp | Transport::Tls => {
                let ft = FiveTuple {
                    transport: t.transport,
                    client: t.remote,
                    server: t.local,
                };
                let Some(c) = self.streams.get(&ft) else {
                    return;
                };
                if !c.queue(t.data, STREAM_QUEUE_LIMIT) {
                    self.stats.stream_queue_full += 1;
                }
            }
        }
    }

    /// Input from a client; `now` is the time it arrived.
    pub(super) fn receive_from_client(
        &mut self,
        shared: &Shared,
        now: Instant,
        ft: FiveTuple,
        data: &[u8],
    ) {
        if let Some(t) = self.core.handle_client(now, ft, data) {
            self.send_to_peer(t);
        }
        self.drain(shared, now);
    }

    /// Does what the core asked: sends, binds and releases relay sockets, re-arms the timer.
    pub(super) fn drain(&mut self, shared: &Shared, now: Instant) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => self.send_to_client(Transmit {
                    transport: t.transport,
                    local: t.local,
                    remote: t.remote,
                    data: &t.data,
                }),
                Output::Request(Request::AllocateRelay(req)) => {
                    self.allocate_relay(shared, now, req)
                }
                Output::Request(Request::ReleaseRelay { relay }) => self.release_relay(relay),
                Output::Request(Request::ConnectPeer { id, relay, peer }) => {
                    let local = self.relays.get(&relay).map(|r| r.local);
                    self.connect_peer(shared, now, id, local, peer)
                }
                Output::Request(Request::BindPeer { id, client }) => self.bind_peer(id, client),
                Output::Request(Request::ClosePeer { id }) => self.close_peer(id),
                Output::Request(Request::ReserveQuota { id, user }) => {
                    let job = Job::Reserve {
                        worker: self.index,
                        id,
                        user,
                    };
                    if self.db.as_ref().is_none_or(|db| db.send(job).is_err()) {
                        self.core
                            .quota_reserved(now, id, crate::turn::QuotaAnswer::Unavailable);
                    }
                }
                Output::Request(Request::ReleaseQuota { user }) => {
                    if let Some(db) = &self.db {
                        let _ = db.send(Job::Release { user });
                    }
                }
                Output::Request(Request::LookupUser { id, username }) => {
                    let job = Job::Lookup {
                        worker: self.index,
                        id,
                        username,
                    };
                    if self.db.as_ref().is_none_or(|db| db.send(job).is_err()) {
                        self.core
                            .user_looked_up(now, id, crate::turn::UserLookup::Unavailable);
                    }
                }
                Output::Timeout(t) => self.arm(t),
            }
        }
        self.flush_soon();
    }

    /// The core's new deadline, with the port pool's: wakes the timer task if it moved
    /// earlier (a later one it finds when it wakes).
    fn arm(&mut self, core: Option<Instant>) {
        let next = [core, self.ports.next_expiry()].into_iter().flatten().min();
        let earlier = match (next, self.timer) {
            (Some(n), Some(t)) => n < t,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.timer = next;
        if earlier {
            self.wake.notify_one();
        }
    }

    fn allocate_relay(&mut self, shared: &Shared, now: Instant, req: crate::turn::RelayRequest) {
        use super::ports::RelaySocket as Sock;
        let result = self.ports.bind(&req, now).and_then(|b| {
            let local = b.local;
            let started = match b.socket {
                Sock::Udp(s) => self.relay_set.add(s, b.advertised).map(RelayIo::Udp),
                Sock::Tcp(l) => tokio::net::TcpListener::from_std(l).map(|l| {
                    let task = tokio::task::spawn_local(super::tcp_relay::accept_task(
                        shared.clone(),
                        l,
                        b.advertised,
                    ));
                    RelayIo::Tcp(task)
                }),
            };
            let io = started.map_err(|_| {
                self.ports.release(local);
                crate::turn::RelayError::Exhausted
            })?;
            Ok((io, local, b.advertised, b.token))
        });
        match result {
            Ok((io, local, advertised, token)) => {
                let owner = req.five_tuple;
                self.relays.insert(
                    advertised,
                    RelaySocket {
                        io,
                        local,
                        stream: owner.transport.is_stream().then(|| Box::new(owner)),
                    },
                );
                self.core.relay_allocated(
                    now,
                    req.id,
                    Ok(Relay {
                        addr: advertised,
                        reservation_token: token,
                    }),
                );
                debug!(relay = %advertised, "relay bound");
            }
            Err(e) => {
                self.stats.relay_bind_failures += 1;
                warn!(?e, "no relay socket");
                self.core.relay_allocated(now, req.id, Err(e));
            }
        }
    }

    fn release_relay(&mut self, relay: SocketAddr) {
        if let Some(r) = self.relays.remove(&relay) {
            match r.io {
                RelayIo::Udp(slot) => self.relay_set.remove(slot),
                RelayIo::Tcp(task) => task.abort(),
            }
            self.ports.release(r.local);
            debug!(%relay, "relay released");
            // A stream's allocation ended: so does the stream (RFC 8656 §7).
            if let Some(c) = r.stream.and_then(|owner| self.streams.get(&*owner)) {
                c.close();
            }
        }
    }

    /// After a batch or a drain: the outbox is flushed by the flush task once the other
    /// ready tasks have run, or now if it holds a lot already.
    fn flush_soon(&mut self) {
        if self.outbox.len() >= OUTBOX_LIMIT {
            self.flush();
        } else if !self.flush_pending && !self.outbox.is_empty() {
            self.flush_pending = true;
            self.flush_due.notify_one();
        }
    }

    /// Sends what the outbox holds.
    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let done = self.outbox.flush();
        self.stats.udp_send_calls += done.calls;
        self.stats.udp_gso_sends += done.gso_calls;
        self.stats.udp_sent += done.sent;
        self.stats.send_errors += done.errors;
    }

    fn snapshot(&self) -> Snapshot {
        let (permissions, channels) = self.core.permission_and_channel_counts();
        Snapshot {
            turn: self.core.stats(),
            stun: self.core.stun_stats(),
            driver: self.stats,
            allocations: self.core.allocation_count() as u64,
            permissions: permissions as u64,
            channels: channels as u64,
        }
    }
}

/// A UDP socket registered with the reactor for reading only: sends never wait (a full
/// buffer drops the datagram, as UDP may), and interest in writability would have the
/// kernel signal the reactor each time a sent datagram's buffer space is freed.
fn register(s: std::net::UdpSocket) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    AsyncFd::with_interest(s, tokio::io::Interest::READABLE)
}

/// What a datagram socket's task does with each datagram: `(worker, shared, now, local
/// address, sender, bytes)`.
type Deliver = fn(&mut Worker, &Shared, Instant, SocketAddr, SocketAddr, &[u8]);

/// A client's datagram on a UDP listener.
fn from_client(
    w: &mut Worker,
    shared: &Shared,
    now: Instant,
    local: SocketAddr,
    client: SocketAddr,
    data: &[u8],
) {
    let ft = FiveTuple {
        transport: Transport::Udp,
        client,
        server: local,
    };
    w.receive_from_client(shared, now, ft, data);
}

/// A peer's datagram on a relayed address, wrapped for its client in the worker's buffer.
fn from_peer(
    w: &mut Worker,
    _: &Shared,
    now: Instant,
    relay: SocketAddr,
    peer: SocketAddr,
    data: &[u8],
) {
    let mut out = std::mem::take(&mut w.out);
    if let Some(t) = w.core.handle_peer(now, relay, peer, data, &mut out) {
        w.send_to_client(t);
    }
    w.out = out;
}

/// Batches a socket is read for in one turn before the other sockets get theirs.
const MAX_BATCHES: usize = 4;

/// Reads socket `fd` (an IPv6 one if `v6`, serving `local`) into `inbox`, a batch at a time,
/// for at most `MAX_BATCHES` batches, and hands each datagram to `deliver`. What the worker
/// sends meanwhile waits in its outbox, which the flush task sends once every socket ready
/// with this one has had its turn (`Worker::flush_soon`). True if the socket is drained: a
/// datagram arriving after that raises a new readiness.
fn read_socket(
    w: &mut Worker,
    shared: &Shared,
    inbox: &mut RecvBatch,
    fd: std::os::fd::RawFd,
    v6: bool,
    local: SocketAddr,
    deliver: Deliver,
) -> bool {
    for _ in 0..MAX_BATCHES {
        let got = inbox.recv(fd, v6);
        w.stats.udp_recv_calls += 1;
        let n = match got {
            Ok(n) => n,
            // Nothing left.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            // An ICMP error reported on the socket, consumed by the failed read.
            Err(_) => continue,
        };
        w.stats.udp_received += n as u64;
        let now = Instant::now();
        for i in 0..n {
            let (from, data) = inbox.get(i);
            deliver(w, shared, now, local, from, data);
        }
        w.flush_soon();
        if n < BATCH {
            return true;
        }
    }
    false
}

/// Datagrams on one UDP listener, read into the worker's one receive batch — tasks of a
/// worker never run at once, so no socket needs buffers of its own — by [`read_socket`].
async fn datagram_task(shared: Shared, socket: Udp, local: SocketAddr) {
    let v6 = socket.get_ref().local_addr().is_ok_and(|a| a.is_ipv6());
    loop {
        let Ok(mut ready) = socket.readable().await else {
            return;
        };
        let drained = {
            let mut guard = shared.borrow_mut();
            let w = &mut *guard;
            let Some(mut inbox) = w.inbox.take() else {
                return;
            };
            let drained = read_socket(
                w,
                &shared,
                &mut inbox,
                socket.as_raw_fd(),
                v6,
                local,
                from_client,
            );
            w.inbox = Some(inbox);
            drained
        };
        yield_unless_drained(drained, &mut ready).await;
    }
}

/// A drained source's readiness is cleared (tokio clears only the readiness this guard saw,
/// so a datagram that came after the read is not lost) and it waits; one still full after
/// its turn lets the other sockets have theirs first. (A drained socket just waits: a yield
/// would cost the runtime a wake-up of its own.)
async fn yield_unless_drained<T: AsRawFd>(
    drained: bool,
    ready: &mut tokio::io::unix::AsyncFdReadyGuard<'_, T>,
) {
    if drained {
        ready.clear_ready();
    } else {
        tokio::task::yield_now().await;
    }
}

/// Datagrams on the relay sockets: the [`RelaySet`] reports the ready ones, each read by
/// [`read_socket`]. The set is drained when it reported fewer sockets than it could and
/// each of them was drained; else (level-triggered) it reports the rest on the next turn.
async fn relays_task(shared: Shared, set: Rc<AsyncFd<relays::EpollSet>>) {
    loop {
        let Ok(mut ready) = set.readable().await else {
            return;
        };
        let drained = {
            let mut guard = shared.borrow_mut();
            let w = &mut *guard;
            let (Some(mut inbox), mut sockets) = (w.inbox.take(), std::mem::take(&mut w.ready))
            else {
                return;
            };
            let mut drained = !w.relay_set.ready(&mut sockets);
            for r in &sockets {
                let fd = r.socket.as_fd().as_raw_fd();
                drained &= read_socket(w, &shared, &mut inbox, fd, r.v6, r.relay, from_peer);
            }
            sockets.clear();
            w.ready = sockets;
            w.inbox = Some(inbox);
            drained
        };
        yield_unless_drained(drained, &mut ready).await;
    }
}

/// Datagrams the outbox may hold before a batch flushes it at once.
const OUTBOX_LIMIT: usize = 4 * BATCH;

/// Sends what the datagram tasks queued, once they have run (see `Worker::flush_due`).
async fn flush_task(shared: Shared, due: Rc<Notify>) {
    loop {
        due.notified().await;
        let mut w = shared.borrow_mut();
        w.flush_pending = false;
        w.flush();
    }
}

/// The core's timers (and the port pool's reservations): sleeps until the deadline the last
/// drain reported, woken early when a drain moves it earlier.
async fn timer_task(shared: Shared, wake: Rc<Notify>) {
    loop {
        let deadline = shared.borrow().timer;
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            // The deadline moved earlier: sleep again until the new one.
            _ = wake.notified() => continue,
        }
        let now = Instant::now();
        let mut w = shared.borrow_mut();
        w.ports.sweep(now);
        w.core.handle_timeout(now);
        w.drain(&shared, now);
    }
}

/// The metrics snapshot, once a second: counters the core keeps as it goes, no walk.
async fn metrics_task(shared: Shared, index: usize, metrics: Metrics) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        metrics.publish(index, shared.borrow().snapshot());
    }
}

/// What the rest of the server tells the worker: lookups answered, a new configuration,
/// drain.
async fn control_task(shared: Shared, mut control: tokio::sync::mpsc::UnboundedReceiver<Control>) {
    while let Some(c) = control.recv().await {
        let now = Instant::now();
        let mut guard = shared.borrow_mut();
        let w = &mut *guard;
        match c {
            Control::LookedUp { id, result } => w.core.user_looked_up(now, id, result),
            Control::QuotaReserved { id, answer } => w.core.quota_reserved(now, id, answer),
            Control::Reconfigure(r) => {
                let r = *r;
                w.core.reconfigure(r.turn, r.users, r.rest);
                w.settings.tls = r.tls;
                w.settings.max_stream_connections = r.max_stream_connections;
                w.settings.stream_idle_timeout = r.stream_idle_timeout;
                debug!(worker = w.index, "configuration applied");
            }
            Control::Drain => w.core.drain(),
        }
        w.drain(&shared, now);
    }
}

/// Runs worker `index` until `stop` says so.
pub(super) fn run(
    index: usize,
    settings: Settings,
    sockets: Sockets,
    metrics: Metrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
    control: tokio::sync::mpsc::UnboundedReceiver<Control>,
    db: Option<std::sync::mpsc::Sender<Job>>,
) {
    let delay = settings.batch_delay;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || {
            // Before waiting for the next readiness: let datagrams gather first (see
            // `Settings::batch_delay`).
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
        })
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "worker runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let now = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let primary = sockets
            .udp
            .first()
            .and_then(|s| s.local_addr().ok())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let core = TurnServer::new(
            settings.turn.clone(),
            StunServerConfig {
                software: settings.turn.software.clone(),
                alternate: settings.rfc5780_alternate,
                ..StunServerConfig::new(primary)
            },
            settings.users.clone(),
            settings.rest.clone(),
            settings.nonce_key,
            now,
            unix,
        );
        let mut ports = PortPool::new(
            settings.relay_ips.clone(),
            settings.ports.0,
            settings.ports.1,
        );
        ports.sock_buf_size = settings.sock_buf_size;
        let relay_set = match RelaySet::new() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "relay sockets' epoll set");
                return;
            }
        };
        let relay_registration = relay_set.registration();
        let wake = Rc::new(Notify::new());
        let flush_due = Rc::new(Notify::new());
        let shared: Shared = Rc::new(RefCell::new(Worker {
            core,
            udp: HashMap::new(),
            relays: HashMap::new(),
            relay_set,
            ready: Vec::new(),
            streams: HashMap::new(),
            ports,
            out: vec![0u8; 65_536 + RELAY_OVERHEAD],
            inbox: Some(RecvBatch::new()),
            outbox: Outbox::new(),
            flush_due: flush_due.clone(),
            flush_pending: false,
            stats: DriverStats::default(),
            settings: settings.clone(),
            timer: None,
            wake: wake.clone(),
            index,
            db,
            peers: Default::default(),
        }));
        for s in sockets.udp {
            let Ok(addr) = s.local_addr() else {
                continue;
            };
            let Ok(socket) = register(s) else {
                continue;
            };
            let socket = Rc::new(socket);
            shared.borrow_mut().udp.insert(addr, socket.clone());
            tokio::task::spawn_local(datagram_task(shared.clone(), socket, addr));
            info!(worker = index, %addr, "listening on UDP");
        }
        for (l, kind) in sockets.tcp {
            let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
                continue;
            };
            if let Ok(addr) = listener.local_addr() {
                info!(worker = index, %addr, tls = kind.tls, proxy_protocol = kind.proxy, "listening on TCP");
            }
            tokio::task::spawn_local(stream::accept_task(shared.clone(), listener, kind));
        }
        // The core's first timer (none until something is stored).
        shared.borrow_mut().drain(&shared, Instant::now());
        tokio::task::spawn_local(relays_task(shared.clone(), relay_registration));
        tokio::task::spawn_local(timer_task(shared.clone(), wake));
        tokio::task::spawn_local(flush_task(shared.clone(), flush_due));
        tokio::task::spawn_local(control_task(shared.clone(), control));
        tokio::task::spawn_local(metrics_task(shared.clone(), index, metrics.clone()));
        let _ = stop.wait_for(|s| *s).await;
        metrics.publish(index, shared.borrow().snapshot());
        info!(worker = index, "stopped");
    });
}
