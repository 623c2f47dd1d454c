//! The one way both servers build a response: the method's attributes, then SOFTWARE, then the
//! request's kind of MESSAGE-INTEGRITY, then FINGERPRINT (RFC 8489 §14: integrity and
//! FINGERPRINT come last, in that order).

use stun_codec::attr::{ErrorCode, Software};
use stun_codec::{
    BuildError, Class, IntegrityKey, MessageBuilder, MessageType, Method, TransactionId,
};

/// How a response is finished.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finish<'a> {
    /// SOFTWARE, if any.
    pub software: Option<&'a str>,
    /// MESSAGE-INTEGRITY with this key; MESSAGE-INTEGRITY-SHA256 when the flag is set.
    pub integrity: Option<(&'a IntegrityKey, bool)>,
    /// FINGERPRINT.
    pub fingerprint: bool,
}

/// Writes a response into `out`; its length.
pub(crate) fn build(
    out: &mut [u8],
    method: Method,
    class: Class,
    tid: TransactionId,
    finish: Finish<'_>,
    add: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
) -> Result<usize, BuildError> {
    let mut b = MessageBuilder::new(out, MessageType::new(method, class), tid)?;
    add(&mut b)?;
    if let Some(s) = finish.software {
        b.add(&Software(s))?;
    }
    match finish.integrity {
        Some((key, true)) => {
            b.add_message_integrity_sha256(key)?;
        }
        Some((key, false)) => {
            b.add_message_integrity(key)?;
        }
        None => {}
    }
    if finish.fingerprint {
        b.add_fingerprint()?;
    }
    Ok(b.finish().len())
}

/// An error response with `code` and whatever `add` puts after ERROR-CODE.
pub(crate) fn error(
    out: &mut [u8],
    method: Method,
    tid: TransactionId,
    code: u16,
    finish: Finish<'_>,
    add: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
) -> Result<usize, BuildError> {
    build(out, method, Class::ErrorResponse, tid, finish, |b| {
        b.add(&ErrorCode::new(code))?;
        add(b)
    })
}
