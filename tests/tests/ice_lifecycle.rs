//! After connecting: consent freshness (RFC 7675) when the path is cut, and ICE restart
//! (RFC 8445 §9) after a NAT rebinding, in natsim virtual time.

use std::time::Duration;

use ice_agent::{CandidateKind, ConnectionState};
use natsim::LinkConfig;
use scenarios::matrix::{build, Behind, Conditions};

fn connected(cell: &mut scenarios::matrix::Cell, limit: Duration) {
    assert!(
        cell.run_until(limit, |a, b| a.is_connected()
            && b.is_connected()
            && !a.received.is_empty()
            && !b.received.is_empty()),
        "the agents connect"
    );
}

/// After 10 s connected, A's NAT loses its table; once consent notices, A restarts ICE (B
/// answers with a restart of its own) and the pair reconnects. Returns the time from the
/// notice to reconnection.
fn rebind_and_restart(cell: &mut scenarios::matrix::Cell) -> Duration {
    let settle = cell.sim.elapsed() + Duration::from_secs(10);
    cell.run_until(settle, |_, _| false);
    assert!(cell.sim.flush_nat(cell.nats[0][0]) > 0);
    let limit = cell.sim.elapsed() + Duration::from_secs(30);
    assert!(
        cell.run_until(limit, |a, b| {
            a.agent.state() == ConnectionState::Disconnected
                || b.agent.state() == ConnectionState::Disconnected
        }),
        "the broken path is noticed through consent"
    );
    let noticed = cell.sim.elapsed();
    let now = cell.sim.now();
    cell.agent_mut(0).restart(now);
    for side in 0..2 {
        cell.agent_mut(side).received.clear();
    }
    cell.sim.wake(cell.agents[0]);
    connected(cell, noticed + Duration::from_secs(5));
    cell.sim.elapsed() - noticed
}

/// The new pair keeps carrying data both ways for 10 s more (the greetings go every 100 ms),
/// with consent checks answered.
fn stays_up(cell: &mut scenarios::matrix::Cell) {
    for side in 0..2 {
        cell.agent_mut(side).received.clear();
    }
    let consent = cell.agent(0).agent.stats().consent_checks_sent;
    let until = cell.sim.elapsed() + Duration::from_secs(10);
    cell.run_until(until, |_, _| false);
    for side in 0..2 {
        assert!(cell.agent(side).is_connected(), "side {side}");
        assert!(cell.agent(side).received.len() >= 50, "side {side}");
    }
    assert!(cell.agent(0).agent.stats().consent_checks_sent > consent);
}

#[test]
fn consent_is_lost_30_s_after_the_path_is_cut() {
    let mut cell = build(
        [Behind::PortRestricted, Behind::PortRestricted],
        Conditions::Clean,
        11,
    );
    connected(&mut cell, Duration::from_secs(5));
    // Let consent checks run for a while, then cut B off: every packet on its link is lost.
    let settle = cell.sim.elapsed() + Duration::from_secs(20);
    cell.run_until(settle, |_, _| false);
    assert!(cell.agent(0).agent.stats().consent_checks_sent >= 3);
    assert!(cell.agent(0).is_connected() && cell.agent(1).is_connected());
    let cut = cell.sim.now();
    cell.sim.set_link(
        cell.agents[1],
        0,
        LinkConfig {
            loss: 1.0,
            ..Conditions::Clean.link()
        },
    );
    let limit = cell.sim.elapsed() + Duration::from_secs(60);
    assert!(cell.run_until(limit, |a, b| {
        a.agent.state() == ConnectionState::Failed && b.agent.state() == ConnectionState::Failed
    }));
    for side in 0..2 {
        let states = &cell.agent(side).states;
        let failed = states
            .iter()
            .find(|(t, s)| *t > cut && *s == ConnectionState::Failed)
            .expect("failed")
            .0;
        let disconnected = states
            .iter()
            .find(|(t, s)| *t > cut && *s == ConnectionState::Disconnected)
            .expect("disconnected first")
            .0;
        let lost = failed - cut;
        // RFC 7675 §5.1: consent expires 30 s after the last answer; checks go every
        // 5 s ± 20 %, so the last answer came at most 6 s before the cut.
        assert!(
            lost >= Duration::from_secs(24) && lost <= Duration::from_secs(36),
            "side {side}: consent lost {lost:?} after the cut"
        );
        assert!(disconnected < failed);
        // No pair any more: the application cannot send.
        assert!(cell
            .agent(side)
            .agent
            .selected_pair(ice_agent::StreamId(0), 1)
            .is_none());
    }
}

#[test]
fn ice_restart_after_a_nat_rebinding_reconnects() {
    // A behind a symmetric NAT (new mappings get new ports), B behind a full cone: direct.
    let mut cell = build([Behind::Symmetric, Behind::FullCone], Conditions::Clean, 12);
    connected(&mut cell, Duration::from_secs(5));
    let before = cell.agent(1).selected.clone().expect("selected").1;
    assert!(before.kind.is_direct());
    // A's NAT loses its table: A's flows get new external ports, B's packets to the old one
    // go nowhere.
    let reconnected = rebind_and_restart(&mut cell);
    let after = cell.agent(1).selected.clone().expect("selected").1;
    assert_ne!(after.addr, before.addr, "B now talks to A's new mapping");
    assert!(matches!(
        after.kind,
        CandidateKind::PeerReflexive | CandidateKind::ServerReflexive
    ));
    assert!(
        reconnected < Duration::from_secs(1),
        "reconnected {reconnected:?} after the restart"
    );
    stays_up(&mut cell);
}

#[test]
fn ice_restart_after_a_nat_rebinding_reconnects_a_relayed_pair() {
    // Symmetric on both sides: only the relay works. A's NAT then loses its table, so the
    // TURN server sees A's packets from a new 5-tuple: A's allocation is gone for it, while
    // B's is still there.
    let mut cell = build(
        [Behind::Symmetric, Behind::Symmetric],
        Conditions::Clean,
        13,
    );
    connected(&mut cell, Duration::from_secs(5));
    let relay = |cell: &scenarios::matrix::Cell, side: usize| {
        let (l, r) = cell.agent(side).selected.clone().expect("selected");
        assert!(
            l.kind == CandidateKind::Relayed || r.kind == CandidateKind::Relayed,
            "side {side}: {l} -> {r}"
        );
        cell.agent(side)
            .agent
            .local_candidates(ice_agent::StreamId(0))
            .into_iter()
            .find(|c| c.kind == CandidateKind::Relayed)
            .expect("a relayed candidate")
            .addr
    };
    let (relay_a, relay_b) = (relay(&cell, 0), relay(&cell, 1));
    let reconnected = rebind_and_restart(&mut cell);
    // A's Refresh got 437 from its new 5-tuple, so it allocated again; B's Refresh
    // succeeded and its relay was kept (a second Allocate from its 5-tuple would get 437).
    assert_ne!(relay(&cell, 0), relay_a, "A allocated anew");
    assert_eq!(relay(&cell, 1), relay_b, "B kept its allocation");
    assert!(
        reconnected < Duration::from_secs(1),
        "reconnected {reconnected:?} after the restart"
    );
    stays_up(&mut cell);
}
