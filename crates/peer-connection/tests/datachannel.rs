//! Two sessions open a DataChannel and exchange messages, in virtual time.

mod common;

use std::time::Duration;

use common::Pair;
use peer_connection::{DataChannelEvent, DataChannelInit, Event};

fn is_open(e: &Event) -> bool {
    matches!(e, Event::DataChannel(DataChannelEvent::Open { .. }))
}

#[test]
fn a_channel_opens_and_carries_messages_both_ways() {
    let mut pair = Pair::new(1);
    let t0 = pair.now;
    let ch = pair.peers[0].create_data_channel(t0, "chat", DataChannelInit::default());
    pair.negotiate();
    assert!(
        pair.run_until(Duration::from_secs(10), |p| p
            .first_event(0, is_open)
            .is_some()
            && p.incoming(1).is_some()),
        "no channel: {:?} / {:?}",
        pair.events[0],
        pair.events[1]
    );
    assert!(pair.connected());
    let opened = pair.first_event(0, is_open).unwrap() - t0;
    println!("open after {opened:?}");
    let now = pair.now;
    pair.peers[0].send_text(now, ch, "hello").unwrap();
    let theirs = pair.incoming(1).unwrap();
    assert_eq!(pair.peers[1].data_channel(theirs).unwrap().label, "chat");
    pair.peers[1].send_binary(now, theirs, &[1, 2, 3]).unwrap();
    pair.peers[1].send_binary(now, theirs, &[]).unwrap();
    assert!(
        pair.run_until(Duration::from_secs(5), |p| p.messages(1).len() == 1
            && p.messages(0).len() == 2)
    );
    assert_eq!(pair.messages(1), vec![b"hello".as_slice()]);
    assert_eq!(pair.messages(0), vec![[1u8, 2, 3].as_slice(), &[]]);
}
