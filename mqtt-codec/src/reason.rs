//! MQTT 5.0 reason codes (and the 3.1.1 return codes they stand for).

use std::fmt;

use crate::types::{PacketType, ProtocolVersion};

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $name:ident = $val:literal, $text:literal; )*) => {
        /// An MQTT 5.0 reason code.
        ///
        /// The set is closed: a byte that is no reason code, or one that is
        /// not allowed in the packet that carries it, is a malformed packet.
        /// Several codes share a value and a meaning that depends on the
        /// packet: `0x00` is [`Success`](Self::Success), "Normal
        /// disconnection" in DISCONNECT and "Granted QoS 0" in SUBACK (see the
        /// associated constants).
        ///
        /// MQTT 3.1.1 return codes are mapped onto these: CONNACK 1..=5 to
        /// 0x84, 0x85, 0x88, 0x86 and 0x87, and the SUBACK failure 0x80 to
        /// [`UnspecifiedError`](Self::UnspecifiedError).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ReasonCode {
            $( $(#[$doc])* $name = $val, )*
        }

        impl TryFrom<u8> for ReasonCode {
            type Error = u8;
            /// The reason code for `byte`, or the byte back if it is none.
            fn try_from(byte: u8) -> Result<Self, u8> {
                match byte {
                    $( $val => Ok(Self::$name), )*
                    other => Err(other),
                }
            }
        }

        impl ReasonCode {
            /// The specification's name of the code.
            pub fn description(self) -> &'static str {
                match self { $( Self::$name => $text, )* }
            }
        }
    };
}

reason_codes! {
    /// 0x00 Success, Normal disconnection, Granted QoS 0.
    Success = 0x00, "success";
    /// 0x01 Granted QoS 1.
    GrantedQoS1 = 0x01, "granted QoS 1";
    /// 0x02 Granted QoS 2.
    GrantedQoS2 = 0x02, "granted QoS 2";
    /// 0x04 Disconnect with Will Message.
    DisconnectWithWillMessage = 0x04, "disconnect with will message";
    /// 0x10 No matching subscribers.
    NoMatchingSubscribers = 0x10, "no matching subscribers";
    /// 0x11 No subscription existed.
    NoSubscriptionExisted = 0x11, "no subscription existed";
    /// 0x18 Continue authentication.
    ContinueAuthentication = 0x18, "continue authentication";
    /// 0x19 Re-authenticate.
    ReAuthenticate = 0x19, "re-authenticate";
    /// 0x80 Unspecified error.
    UnspecifiedError = 0x80, "unspecified error";
    /// 0x81 Malformed Packet.
    MalformedPacket = 0x81, "malformed packet";
    /// 0x82 Protocol Error.
    ProtocolError = 0x82, "protocol error";
    /// 0x83 Implementation specific error.
    ImplementationSpecificError = 0x83, "implementation specific error";
    /// 0x84 Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84, "unsupported protocol version";
    /// 0x85 Client Identifier not valid.
    ClientIdentifierNotValid = 0x85, "client identifier not valid";
    /// 0x86 Bad User Name or Password.
    BadUserNameOrPassword = 0x86, "bad user name or password";
    /// 0x87 Not authorized.
    NotAuthorized = 0x87, "not authorized";
    /// 0x88 Server unavailable.
    ServerUnavailable = 0x88, "server unavailable";
    /// 0x89 Server busy.
    ServerBusy = 0x89, "server busy";
    /// 0x8A Banned.
    Banned = 0x8A, "banned";
    /// 0x8B Server shutting down.
    ServerShuttingDown = 0x8B, "server shutting down";
    /// 0x8C Bad authentication method.
    BadAuthenticationMethod = 0x8C, "bad authentication method";
    /// 0x8D Keep Alive timeout.
    KeepAliveTimeout = 0x8D, "keep alive timeout";
    /// 0x8E Session taken over.
    SessionTakenOver = 0x8E, "session taken over";
    /// 0x8F Topic Filter invalid.
    TopicFilterInvalid = 0x8F, "topic filter invalid";
    /// 0x90 Topic Name invalid.
    TopicNameInvalid = 0x90, "topic name invalid";
    /// 0x91 Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "packet identifier in use";
    /// 0x92 Packet Identifier not found.
    PacketIdentifierNotFound = 0x92, "packet identifier not found";
    /// 0x93 Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93, "receive maximum exceeded";
    /// 0x94 Topic Alias invalid.
    TopicAliasInvalid = 0x94, "topic alias invalid";
    /// 0x95 Packet too large.
    PacketTooLarge = 0x95, "packet too large";
    /// 0x96 Message rate too high.
    MessageRateTooHigh = 0x96, "message rate too high";
    /// 0x97 Quota exceeded.
    QuotaExceeded = 0x97, "quota exceeded";
    /// 0x98 Administrative action.
    AdministrativeAction = 0x98, "administrative action";
    /// 0x99 Payload format invalid.
    PayloadFormatInvalid = 0x99, "payload format invalid";
    /// 0x9A Retain not supported.
    RetainNotSupported = 0x9A, "retain not supported";
    /// 0x9B QoS not supported.
    QoSNotSupported = 0x9B, "QoS not supported";
    /// 0x9C Use another server.
    UseAnotherServer = 0x9C, "use another server";
    /// 0x9D Server moved.
    ServerMoved = 0x9D, "server moved";
    /// 0x9E Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E, "shared subscriptions not supported";
    /// 0x9F Connection rate exceeded.
    ConnectionRateExceeded = 0x9F, "connection rate exceeded";
    /// 0xA0 Maximum connect time.
    MaximumConnectTime = 0xA0, "maximum connect time";
    /// 0xA1 Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "subscription identifiers not supported";
    /// 0xA2 Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "wildcard subscriptions not supported";
}

impl Default for ReasonCode {
    /// [`ReasonCode::Success`].
    fn default() -> Self {
        Self::Success
    }
}

impl ReasonCode {
    /// 0x00 in DISCONNECT.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// 0x00 in SUBACK.
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// The code's byte value.
    #[inline]
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether the code reports a failure (value 0x80 or above).
    #[inline]
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether the code may appear in a packet of type `packet`
    /// (MQTT 5.0 section 2.4, table 2-6).
    pub fn is_allowed_in(self, packet: PacketType) -> bool {
        use PacketType as P;
        use ReasonCode as R;
        match packet {
            P::ConnAck => matches!(
                self,
                R::Success
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::UnsupportedProtocolVersion
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::NotAuthorized
                    | R::ServerUnavailable
                    | R::ServerBusy
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::TopicNameInvalid
                    | R::PacketTooLarge
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::ConnectionRateExceeded
            ),
            P::PubAck | P::PubRec => matches!(
                self,
                R::Success
                    | R::NoMatchingSubscribers
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicNameInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
            ),
            P::PubRel | P::PubComp => matches!(self, R::Success | R::PacketIdentifierNotFound),
            P::SubAck => matches!(
                self,
                R::Success
                    | R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::SharedSubscriptionsNotSupported
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            P::UnsubAck => matches!(
                self,
                R::Success
                    | R::NoSubscriptionExisted
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
            ),
            P::Disconnect => !matches!(
                self,
                R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::NoMatchingSubscribers
                    | R::NoSubscriptionExisted
                    | R::ContinueAuthentication
                    | R::ReAuthenticate
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::ServerUnavailable
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::PacketIdentifierInUse
                    | R::PacketIdentifierNotFound
                    | R::UnsupportedProtocolVersion
            ),
            P::Auth => matches!(
                self,
                R::Success | R::ContinueAuthentication | R::ReAuthenticate
            ),
            P::Connect | P::Publish | P::Subscribe | P::Unsubscribe | P::PingReq | P::PingResp => {
                false
            }
        }
    }

    /// The MQTT 3.1.1 CONNACK return code for this reason, if it has one.
    pub fn to_v3_connack(self) -> Option<u8> {
        Some(match self {
            Self::Success => 0,
            Self::UnsupportedProtocolVersion => 1,
            Self::ClientIdentifierNotValid => 2,
            Self::ServerUnavailable => 3,
            Self::BadUserNameOrPassword => 4,
            Self::NotAuthorized => 5,
            _ => return None,
        })
    }

    /// The reason for an MQTT 3.1.1 CONNACK return code.
    pub fn from_v3_connack(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::UnsupportedProtocolVersion,
            2 => Self::ClientIdentifierNotValid,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// Whether `self` can be carried by packet `packet` at `version`.
    pub(crate) fn is_expressible(self, packet: PacketType, version: ProtocolVersion) -> bool {
        if version.is_v5() {
            return self.is_allowed_in(packet);
        }
        match packet {
            PacketType::ConnAck => self.to_v3_connack().is_some(),
            // Every 3.1.1 SUBACK failure is written as 0x80.
            PacketType::SubAck => self.is_allowed_in(packet),
            // 3.1.1 UNSUBACK carries no codes: it always means "unsubscribed".
            PacketType::UnsubAck => {
                matches!(self, Self::Success | Self::NoSubscriptionExisted)
            }
            _ => self == Self::Success,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.description(), self.as_u8())
    }
}
