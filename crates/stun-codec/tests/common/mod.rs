//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

/// Decodes hex, ignoring whitespace.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// RFC 5769 §2.1: sample request (short-term credentials).
pub const REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573
7420636c69656e74002400046e0001ff80290008932ff9b151263b3600060009
6576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249
c1b571a280280004e57a3bcf";

/// RFC 5769 §2.2: sample IPv4 response.
pub const RESPONSE_V4: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563
746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f9
2af9ba53f06be7d780280004c07d4c96";

/// RFC 5769 §2.3: sample IPv6 response.
pub const RESPONSE_V6: &str = "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563
746f7220002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014
a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c";

/// RFC 5769 §2.4: sample request with long-term credentials.
pub const REQUEST_LONG_TERM: &str =
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383
aae38383e382afe382b900000015001c662f2f3439396b39353464364f4c3334
6f4c394653547679363473410014000b6578616d706c652e6f72670000080014
f67024656dd64a3e02b8e0712e85c9a28ca89666";

/// The short-term password of §2.1–2.3.
pub const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
