//! Human-readable rendering of a message: one line for the header, one per attribute, each
//! decoded if this crate knows it.

use core::fmt;

use crate::attr::*;
use crate::{Message, RawAttribute, TransactionId};

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn value(f: &mut fmt::Formatter<'_>, raw: &RawAttribute<'_>, tid: &TransactionId) -> fmt::Result {
    macro_rules! show {
        ($($ty:ty),*) => {
            $(if raw.attr_type == <$ty as Attribute<'_>>::TYPE {
                return match raw.decode::<$ty>(tid) {
                    Ok(v) => write!(f, "{v:?}"),
                    Err(e) => write!(f, "invalid: {e}"),
                };
            })*
        };
    }
    show!(
        MappedAddress, XorMappedAddress, AlternateServer, XorPeerAddress, XorRelayedAddress,
        ResponseOrigin, OtherAddress, Username<'_>, Realm<'_>, Nonce<'_>, Software<'_>,
        AlternateDomain<'_>, ErrorCode<'_>, AddressErrorCode<'_>, Priority, UseCandidate,
        IceControlled, IceControlling, ChangeRequest, ResponsePort, Padding, ChannelNumber,
        Lifetime, RequestedAddressFamily, AdditionalAddressFamily, EvenPort, RequestedTransport,
        DontFragment, ReservationToken, Icmp, ConnectionId, Fingerprint, PasswordAlgorithm<'_>
    );
    match raw.attr_type {
        AttributeType::UNKNOWN_ATTRIBUTES => match raw.decode::<UnknownAttributes<'_>>(tid) {
            Ok(list) => f.debug_list().entries(list.iter()).finish(),
            Err(e) => write!(f, "invalid: {e}"),
        },
        AttributeType::PASSWORD_ALGORITHMS => match raw.decode::<PasswordAlgorithms<'_>>(tid) {
            Ok(list) => f.debug_list().entries(list.iter()).finish(),
            Err(e) => write!(f, "invalid: {e}"),
        },
        AttributeType::DATA => write!(f, "{} bytes", raw.value.len()),
        _ => hex(f, raw.value),
    }
}

impl fmt::Display for Message<'_> {
    /// Renders the header and every attribute that counts, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({:#06x}), transaction {}, {} bytes",
            self.message_type(),
            self.message_type().to_bits(),
            self.transaction_id(),
            self.as_bytes().len()
        )?;
        let tid = self.transaction_id();
        for raw in self.attributes() {
            write!(f, "  {} ({} bytes): ", raw.attr_type, raw.value.len())?;
            value(f, &raw, &tid)?;
            writeln!(f)?;
        }
        Ok(())
    }
}
