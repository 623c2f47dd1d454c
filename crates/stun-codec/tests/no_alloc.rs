//! "Nothing is allocated": parse, typed look-ups, iteration, integrity and FINGERPRINT checks,
//! ChannelData and building into a caller's buffer make no heap allocation, counted by a
//! global allocator on this test's thread.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to the system
// allocator.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use stun_codec::attr::*;
use stun_codec::{
    ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, StreamFramer,
    TransactionId,
};

thread_local!(static ALLOCATIONS: Cell<usize> = const { Cell::new(0) });

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// How many allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_message_paths_allocate_nothing() {
    let request = hex(REQUEST);
    let key = IntegrityKey::short_term(PASSWORD).unwrap();
    let mut framer = StreamFramer::new();
    framer.push(&request); // the framer's buffer grows once, outside the measurement
    let mut out = [0u8; 1500];
    let n = allocations(|| {
        let msg = Message::parse(&request).unwrap();
        assert_eq!(msg.get::<Username>().unwrap(), Some(Username("evtj:h6vY")));
        assert!(msg.get::<Priority>().unwrap().is_some());
        assert_eq!(msg.attributes().count(), 6);
        msg.verify_integrity(&key).unwrap();
        msg.verify_fingerprint().unwrap();
        let frame = framer.next_frame().unwrap().unwrap().1;
        assert_eq!(frame, &request[..]);

        let mut b = MessageBuilder::new(
            &mut out,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([7; 12]),
        )
        .unwrap();
        b.add(&Username("evtj:h6vY")).unwrap();
        b.add(&Priority(0x6e0001ff)).unwrap();
        b.add(&XorMappedAddress("192.0.2.1:32853".parse().unwrap()))
            .unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_message_integrity_sha256(&key).unwrap();
        b.add_fingerprint().unwrap();
        let len = b.finish().len();
        let built = Message::parse(&out[..len]).unwrap();
        built.verify_integrity_sha256(&key).unwrap();

        let mut cd = [0u8; 16];
        let n = ChannelData::build(0x4001, b"hello", true, &mut cd).unwrap();
        assert_eq!(ChannelData::parse(&cd[..n]).unwrap().data(), b"hello");
    });
    assert_eq!(n, 0, "allocations on the message paths");
}
