//! Human-readable rendering of a message: one line for the header, one per attribute, each
//! decoded if this crate knows it.

use core::fmt;

use crate::owned::OwnedAttribute;
use crate::{Message, RawAttribute, TransactionId};

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn value(f: &mut fmt::Formatter<'_>, raw: &RawAttribute<'_>, tid: &TransactionId) -> fmt::Result {
    match OwnedAttribute::decode(raw, tid) {
        Ok(OwnedAttribute::Data(d)) => write!(f, "{} bytes", d.len()),
        Ok(OwnedAttribute::Other { value, .. }) => hex(f, &value),
        Ok(OwnedAttribute::MessageIntegrity(m)) => hex(f, &m),
        Ok(OwnedAttribute::MessageIntegritySha256(m)) => hex(f, &m),
        Ok(OwnedAttribute::UserHash(h)) => hex(f, &h),
        Ok(a) => write!(f, "{a:?}"),
        Err(e) => write!(f, "invalid: {e}"),
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
