//! Session descriptions from the peer: any text as an offer (and as an answer to an offer of
//! ours). Invariants: nothing panics; a refusal names a line that exists (with its text) or
//! none; an offer that is taken gets an answer, and our answer parses again.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use peer_connection::{
    Certificate, Config, DataChannelInit, Error, PeerConnection, SessionDescription,
};

fn certificate() -> Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(|| Certificate::generate().expect("a certificate"))
        .clone()
}

fn session(seed: u64) -> PeerConnection {
    let mut config = Config::default();
    config.ice.seed = Some(seed);
    PeerConnection::with_certificate(config, certificate())
}

fn check_refusal(text: &str, e: &Error) {
    if let Error::Sdp(e) = e {
        if let Some(n) = e.line {
            let line = text.split('\n').nth(n - 1).expect("the line exists");
            assert_eq!(line.strip_suffix('\r').unwrap_or(line), e.text, "line {n}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Instant::now();
    // As an offer.
    let mut answerer = session(1);
    match answerer.set_remote_description(now, &SessionDescription::offer(text)) {
        Ok(()) => {
            let answer = answerer
                .create_answer(now)
                .expect("an answer to a taken offer");
            answerer
                .set_local_description(now, &answer)
                .expect("our own answer parses");
        }
        Err(e) => check_refusal(text, &e),
    }
    // As the answer to our offer.
    let mut offerer = session(2);
    offerer.create_data_channel(now, "c", DataChannelInit::default());
    let offer = offerer.create_offer(now, false).expect("an offer");
    offerer.set_local_description(now, &offer).expect("ours");
    if let Err(e) = offerer.set_remote_description(now, &SessionDescription::answer(text)) {
        check_refusal(text, &e);
    }
    while offerer.poll_output().is_some() {}
});
