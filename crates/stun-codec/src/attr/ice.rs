//! ICE attributes (RFC 8445 §16.1).

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
