//! [`OwnedAttribute`]: any attribute this crate knows, decoded into owned values.
//!
//! For keeping attributes beyond the life of the message buffer, for logs and tests, and for
//! round-trip checks: [`OwnedAttribute::decode`] and [`OwnedAttribute::add_to`] are inverse
//! for every value that encodes. The hot paths use the borrowed types in [`crate::attr`].

use std::net::SocketAddr;

use crate::attr::*;
use crate::{AttributeError, BuildError, MessageBuilder, RawAttribute, TransactionId};

/// An attribute decoded into owned values. Unknown types are kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is named after the attribute type it holds
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum OwnedAttribute {
    MappedAddress(SocketAddr),
    XorMappedAddress(SocketAddr),
    AlternateServer(SocketAddr),
    XorPeerAddress(SocketAddr),
    XorRelayedAddress(SocketAddr),
    ResponseOrigin(SocketAddr),
    OtherAddress(SocketAddr),
    Username(String),
    Realm(String),
    Nonce(String),
    Software(String),
    AlternateDomain(String),
    UserHash([u8; 32]),
    ErrorCode {
        code: u16,
        reason: String,
    },
    AddressErrorCode {
        family: AddressFamily,
        code: u16,
        reason: String,
    },
    UnknownAttributes(Vec<AttributeType>),
    PasswordAlgorithm {
        algorithm: u16,
        params: Vec<u8>,
    },
    PasswordAlgorithms(Vec<(u16, Vec<u8>)>),
    MessageIntegrity([u8; 20]),
    MessageIntegritySha256(Vec<u8>),
    Fingerprint(u32),
    ChannelNumber(u16),
    Lifetime(u32),
    Data(Vec<u8>),
    RequestedAddressFamily(AddressFamily),
    AdditionalAddressFamily(AddressFamily),
    EvenPort {
        reserve: bool,
    },
    RequestedTransport(u8),
    DontFragment,
    ReservationToken(u64),
    Icmp {
        icmp_type: u8,
        code: u8,
        error_data: u32,
    },
    ConnectionId(u32),
    Priority(u32),
    UseCandidate,
    IceControlled(u64),
    IceControlling(u64),
    Nomination(u32),
    ChangeRequest {
        change_ip: bool,
        change_port: bool,
    },
    ResponsePort(u16),
    Padding(u16),
    /// An attribute type this crate does not decode, with its value.
    Other {
        attr_type: AttributeType,
        value: Vec<u8>,
    },
}

impl OwnedAttribute {
    /// Decodes `raw` by its type; unknown types become [`OwnedAttribute::Other`].
    pub fn decode(raw: &RawAttribute<'_>, tid: &TransactionId) -> Result<Self, AttributeError> {
        use OwnedAttribute as O;
        let v = raw.value;
        Ok(match raw.attr_type {
            AttributeType::MAPPED_ADDRESS => O::MappedAddress(MappedAddress::decode(v, tid)?.0),
            AttributeType::XOR_MAPPED_ADDRESS => {
                O::XorMappedAddress(XorMappedAddress::decode(v, tid)?.0)
            }
            AttributeType::ALTERNATE_SERVER => {
                O::AlternateServer(AlternateServer::decode(v, tid)?.0)
            }
            AttributeType::XOR_PEER_ADDRESS => O::XorPeerAddress(XorPeerAddress::decode(v, tid)?.0),
            AttributeType::XOR_RELAYED_ADDRESS => {
                O::XorRelayedAddress(XorRelayedAddress::decode(v, tid)?.0)
            }
            AttributeType::RESPONSE_ORIGIN => O::ResponseOrigin(ResponseOrigin::decode(v, tid)?.0),
            AttributeType::OTHER_ADDRESS => O::OtherAddress(OtherAddress::decode(v, tid)?.0),
            AttributeType::USERNAME => O::Username(Username::decode(v, tid)?.0.into()),
            AttributeType::REALM => O::Realm(Realm::decode(v, tid)?.0.into()),
            AttributeType::NONCE => O::Nonce(Nonce::decode(v, tid)?.0.into()),
            AttributeType::SOFTWARE => O::Software(Software::decode(v, tid)?.0.into()),
            AttributeType::ALTERNATE_DOMAIN => {
                O::AlternateDomain(AlternateDomain::decode(v, tid)?.0.into())
            }
            AttributeType::USERHASH => O::UserHash(UserHash::decode(v, tid)?.0),
            AttributeType::ERROR_CODE => {
                let e = ErrorCode::decode(v, tid)?;
                O::ErrorCode {
                    code: e.code,
                    reason: e.reason.into(),
                }
            }
            AttributeType::ADDRESS_ERROR_CODE => {
                let e = AddressErrorCode::decode(v, tid)?;
                O::AddressErrorCode {
                    family: e.family,
                    code: e.code,
                    reason: e.reason.into(),
                }
            }
            AttributeType::UNKNOWN_ATTRIBUTES => {
                O::UnknownAttributes(UnknownAttributes::decode(v, tid)?.iter().collect())
            }
            AttributeType::PASSWORD_ALGORITHM => {
                let a = PasswordAlgorithm::decode(v, tid)?;
                O::PasswordAlgorithm {
                    algorithm: a.algorithm,
                    params: a.params.to_vec(),
                }
            }
            AttributeType::PASSWORD_ALGORITHMS => O::PasswordAlgorithms(
                PasswordAlgorithms::decode(v, tid)?
                    .iter()
                    .map(|a| (a.algorithm, a.params.to_vec()))
                    .collect(),
            ),
            AttributeType::MESSAGE_INTEGRITY => {
                O::MessageIntegrity(MessageIntegrity::decode(v, tid)?.0)
            }
            AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                O::MessageIntegritySha256(MessageIntegritySha256::decode(v, tid)?.0.to_vec())
            }
            AttributeType::FINGERPRINT => O::Fingerprint(Fingerprint::decode(v, tid)?.0),
            AttributeType::CHANNEL_NUMBER => O::ChannelNumber(ChannelNumber::decode(v, tid)?.0),
            AttributeType::LIFETIME => O::Lifetime(Lifetime::decode(v, tid)?.0),
            AttributeType::DATA => O::Data(v.to_vec()),
            AttributeType::REQUESTED_ADDRESS_FAMILY => {
                O::RequestedAddressFamily(RequestedAddressFamily::decode(v, tid)?.0)
            }
            AttributeType::ADDITIONAL_ADDRESS_FAMILY => {
                O::AdditionalAddressFamily(AdditionalAddressFamily::decode(v, tid)?.0)
            }
            AttributeType::EVEN_PORT => O::EvenPort {
                reserve: EvenPort::decode(v, tid)?.reserve,
            },
            AttributeType::REQUESTED_TRANSPORT => {
                O::RequestedTransport(RequestedTransport::decode(v, tid)?.0)
            }
            AttributeType::DONT_FRAGMENT => {
                DontFragment::decode(v, tid)?;
                O::DontFragment
            }
            AttributeType::RESERVATION_TOKEN => {
                O::ReservationToken(ReservationToken::decode(v, tid)?.0)
            }
            AttributeType::ICMP => {
                let i = Icmp::decode(v, tid)?;
                O::Icmp {
                    icmp_type: i.icmp_type,
                    code: i.code,
                    error_data: i.error_data,
                }
            }
            AttributeType::CONNECTION_ID => O::ConnectionId(ConnectionId::decode(v, tid)?.0),
            AttributeType::PRIORITY => O::Priority(Priority::decode(v, tid)?.0),
            AttributeType::USE_CANDIDATE => {
                UseCandidate::decode(v, tid)?;
                O::UseCandidate
            }
            AttributeType::ICE_CONTROLLED => O::IceControlled(IceControlled::decode(v, tid)?.0),
            AttributeType::ICE_CONTROLLING => O::IceControlling(IceControlling::decode(v, tid)?.0),
            AttributeType::NOMINATION => O::Nomination(Nomination::decode(v, tid)?.0),
            AttributeType::CHANGE_REQUEST => {
                let c = ChangeRequest::decode(v, tid)?;
                O::ChangeRequest {
                    change_ip: c.change_ip,
                    change_port: c.change_port,
                }
            }
            AttributeType::RESPONSE_PORT => O::ResponsePort(ResponsePort::decode(v, tid)?.0),
            AttributeType::PADDING => O::Padding(Padding::decode(v, tid)?.len),
            attr_type => O::Other {
                attr_type,
                value: v.to_vec(),
            },
        })
    }

    /// Appends this attribute to a message being built.
    pub fn add_to(&self, b: &mut MessageBuilder<'_>) -> Result<(), BuildError> {
        use OwnedAttribute as O;
        match self {
            O::MappedAddress(a) => b.add(&MappedAddress(*a)),
            O::XorMappedAddress(a) => b.add(&XorMappedAddress(*a)),
            O::AlternateServer(a) => b.add(&AlternateServer(*a)),
            O::XorPeerAddress(a) => b.add(&XorPeerAddress(*a)),
            O::XorRelayedAddress(a) => b.add(&XorRelayedAddress(*a)),
            O::ResponseOrigin(a) => b.add(&ResponseOrigin(*a)),
            O::OtherAddress(a) => b.add(&OtherAddress(*a)),
            O::Username(s) => b.add(&Username(s)),
            O::Realm(s) => b.add(&Realm(s)),
            O::Nonce(s) => b.add(&Nonce(s)),
            O::Software(s) => b.add(&Software(s)),
            O::AlternateDomain(s) => b.add(&AlternateDomain(s)),
            O::UserHash(h) => b.add(&UserHash(*h)),
            O::ErrorCode { code, reason } => b.add(&ErrorCode {
                code: *code,
                reason,
            }),
            O::AddressErrorCode {
                family,
                code,
                reason,
            } => b.add(&AddressErrorCode {
                family: *family,
                code: *code,
                reason,
            }),
            O::UnknownAttributes(list) => b.add(&UnknownAttributes::new(list)),
            O::PasswordAlgorithm { algorithm, params } => b.add(&PasswordAlgorithm {
                algorithm: *algorithm,
                params,
            }),
            O::PasswordAlgorithms(list) => {
                let algs: Vec<PasswordAlgorithm<'_>> = list
                    .iter()
                    .map(|(algorithm, params)| PasswordAlgorithm {
                        algorithm: *algorithm,
                        params,
                    })
                    .collect();
                b.add(&PasswordAlgorithms::new(&algs))
            }
            O::MessageIntegrity(m) => b.add(&MessageIntegrity(*m)),
            O::MessageIntegritySha256(m) => b.add(&MessageIntegritySha256(m)),
            O::Fingerprint(f) => b.add(&Fingerprint(*f)),
            O::ChannelNumber(c) => b.add(&ChannelNumber(*c)),
            O::Lifetime(l) => b.add(&Lifetime(*l)),
            O::Data(d) => b.add(&Data(d)),
            O::RequestedAddressFamily(f) => b.add(&RequestedAddressFamily(*f)),
            O::AdditionalAddressFamily(f) => b.add(&AdditionalAddressFamily(*f)),
            O::EvenPort { reserve } => b.add(&EvenPort { reserve: *reserve }),
            O::RequestedTransport(p) => b.add(&RequestedTransport(*p)),
            O::DontFragment => b.add(&DontFragment),
            O::ReservationToken(t) => b.add(&ReservationToken(*t)),
            O::Icmp {
                icmp_type,
                code,
                error_data,
            } => b.add(&Icmp {
                icmp_type: *icmp_type,
                code: *code,
                error_data: *error_data,
            }),
            O::ConnectionId(c) => b.add(&ConnectionId(*c)),
            O::Priority(p) => b.add(&Priority(*p)),
            O::UseCandidate => b.add(&UseCandidate),
            O::IceControlled(t) => b.add(&IceControlled(*t)),
            O::IceControlling(t) => b.add(&IceControlling(*t)),
            O::Nomination(n) => b.add(&Nomination(*n)),
            O::ChangeRequest {
                change_ip,
                change_port,
            } => b.add(&ChangeRequest {
                change_ip: *change_ip,
                change_port: *change_port,
            }),
            O::ResponsePort(p) => b.add(&ResponsePort(*p)),
            O::Padding(len) => b.add(&Padding { len: *len }),
            O::Other { attr_type, value } => b.add_raw(*attr_type, value),
        }
        .map(|_| ())
    }
}
