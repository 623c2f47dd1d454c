//! ICE attributes (RFC 8445 §16.1), and NOMINATION of ICE renomination.

use super::{flag_attribute, int_attribute};

int_attribute!(
    /// PRIORITY (RFC 8445 §16.1): the priority a peer-reflexive candidate would get.
    Priority, u32, PRIORITY, 4
);
flag_attribute!(
    /// USE-CANDIDATE (RFC 8445 §16.1): the controlling agent nominates this pair.
    UseCandidate, USE_CANDIDATE
);
int_attribute!(
    /// ICE-CONTROLLED (RFC 8445 §16.1): the sender is controlled; the value is its tie-breaker.
    IceControlled, u64, ICE_CONTROLLED, 8
);
int_attribute!(
    /// ICE-CONTROLLING (RFC 8445 §16.1): the sender is controlling; the value is its tie-breaker.
    IceControlling, u64, ICE_CONTROLLING, 8
);
int_attribute!(
    /// NOMINATION (draft-thatcher-ice-renomination, 0xC001 as libwebrtc and pion send it):
    /// the controlling agent's nomination value; the controlled agent selects the pair with
    /// the highest. Comprehension-optional. Values are kept under 2^24, which is what the
    /// draft and pion carry (in the low three bytes of the four).
    Nomination, u32, NOMINATION, 4
);
