//! MQTT 5.0 properties: one typed struct per packet, so that a property that
//! is not allowed in a packet cannot be built, and is a
//! [`DecodeError::PropertyNotAllowed`] when received.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use nom::Parser;

use crate::error::{DecodeError, EncodeError};
use crate::list::PropertyList;
use crate::primitives::{
    PResult, VARINT_MAX, binary, fail, field_len, property_string, put_field, put_varint, u8, u16,
    u32, varint, varint_len,
};
use crate::types::{PacketType, PayloadFormat, QoS, SubscriptionId, UserProperty, Utf8Bytes};

/// Property identifiers (MQTT 5.0 section 2.2.2.2).
#[allow(missing_docs)]
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

    /// Whether MQTT 5.0 defines property `id` at all.
    pub(crate) fn is_known(id: u8) -> bool {
        matches!(
            id,
            0x01..=0x03
                | 0x08
                | 0x09
                | 0x0B
                | 0x11..=0x13
                | 0x15..=0x19
                | 0x1A
                | 0x1C
                | 0x1F
                | 0x21..=0x2A
        )
    }
}

mod sealed {
    use bytes::{BufMut, Bytes};

    use crate::error::{DecodeError, EncodeError};
    use crate::types::PacketType;

    /// Seals [`PropertySet`](super::PropertySet) and carries its wire side,
    /// which stays inside the crate.
    pub trait Sealed {
        fn wire_len(&self) -> Result<usize, EncodeError>;
        fn wire_put<B: BufMut>(&self, buf: &mut B);
        /// `wire_put` given the size of the properties (`body_len`).
        fn wire_put_body<B: BufMut>(&self, body_len: usize, buf: &mut B);
        /// Parses the properties of `block` (after the Property Length) into
        /// `self`.
        fn wire_parse(
            &mut self,
            frame: &Bytes,
            packet: PacketType,
            block: &[u8],
        ) -> Result<(), DecodeError>;
    }
}

/// A packet's set of MQTT 5.0 properties (one of the structs of this
/// module); sealed.
pub trait PropertySet: sealed::Sealed + Clone + Default + 'static {
    /// The set with no property, shared.
    fn empty() -> &'static Self;
    /// Whether no property is set.
    fn is_empty(&self) -> bool;
}

/// Properties kept out of line: one pointer when the packet has none (the
/// common case, and always at 3.1.1), shared when cloned, copied on write.
///
/// A PUBLISH is moved through every queue of a broker, so its properties
/// (160 bytes inline) would be copied with it on every move; here they cost
/// 8 bytes. Reading goes through `Deref` (an absent set reads as the empty
/// one); writing goes through [`to_mut`](Self::to_mut), which allocates the
/// first time.
///
/// ```
/// use mqtt_codec::{Publish, PublishTopic};
///
/// let mut p = Publish::new(PublishTopic::from_static("a/b"), &b"hi"[..]);
/// assert!(p.properties.is_empty());
/// assert_eq!(p.properties.message_expiry_interval, None);
/// p.properties.to_mut().message_expiry_interval = Some(60);
/// let copy = p.clone(); // shares the properties
/// assert_eq!(copy.properties.message_expiry_interval, Some(60));
/// ```
pub struct Props<T>(Option<Arc<T>>);

impl<T: PropertySet> Props<T> {
    /// No properties.
    pub const fn none() -> Self {
        Self(None)
    }

    /// `props`, kept out of line unless empty.
    pub fn new(props: T) -> Self {
        if props.is_empty() {
            Self(None)
        } else {
            Self(Some(Arc::new(props)))
        }
    }

    /// Whether no property is set (without reading an absent block).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(T::is_empty)
    }

    /// The properties, `None` when no block is allocated.
    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }

    /// The properties for writing: allocated when absent, copied when
    /// shared with a clone.
    pub fn to_mut(&mut self) -> &mut T {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }

    /// The properties for writing if any is set; never allocates for an
    /// absent set (but copies a shared one).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_mut().map(Arc::make_mut)
    }

    /// Drops the block if no property is left in it, so that an emptied set
    /// costs nothing again.
    pub fn compact(&mut self) {
        if self.0.as_deref().is_some_and(T::is_empty) {
            self.0 = None;
        }
    }

    /// Takes the properties out, leaving none.
    pub fn take(&mut self) -> T {
        self.0
            .take()
            .map(|a| Arc::try_unwrap(a).unwrap_or_else(|a| T::clone(&a)))
            .unwrap_or_default()
    }

    /// The properties by value.
    pub fn into_inner(mut self) -> T {
        self.take()
    }
}

impl<T: PropertySet> Props<T> {
    /// Parses a Property Length and the properties it covers, straight into
    /// their shared block (a set parsed on the stack and then moved would
    /// cost two copies of it per packet); no block for an empty set.
    #[inline]
    pub(crate) fn parse<'a>(frame: &Bytes, packet: PacketType, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, len) = varint(i)?;
        let (rest, block) = nom::bytes::complete::take(len).parse(i)?;
        if block.is_empty() {
            return Ok((rest, Self::none()));
        }
        // Every property parsed sets a field, so the set is not empty.
        let mut props: Arc<T> = Arc::default();
        match Arc::make_mut(&mut props).wire_parse(frame, packet, block) {
            Ok(()) => Ok((rest, Self(Some(props)))),
            Err(e) => fail(e),
        }
    }

    /// Size of the Property Length and the properties.
    #[inline]
    pub(crate) fn encoded_len(&self) -> Result<usize, EncodeError> {
        match self.0.as_deref() {
            None => Ok(1),
            Some(p) => p.wire_len(),
        }
    }

    /// Writes the Property Length and the properties.
    #[inline]
    pub(crate) fn put<B: BufMut>(&self, buf: &mut B) {
        match self.0.as_deref() {
            None => buf.put_u8(0),
            Some(p) => p.wire_put(buf),
        }
    }

    /// Writes the Property Length and the properties, `block_len` bytes
    /// in all as [`encoded_len`](Self::encoded_len) said: the Property
    /// Length is read off that size rather than measured again.
    #[inline]
    pub(crate) fn put_sized<B: BufMut>(&self, block_len: usize, buf: &mut B) {
        match self.0.as_deref() {
            None => buf.put_u8(0),
            Some(p) => {
                // The one `n` with `varint_len(n) + n == block_len`.
                let body = (1..=4)
                    .map(|k| block_len.saturating_sub(k))
                    .find(|&n| varint_len(n) + n == block_len)
                    .unwrap_or_default();
                p.wire_put_body(body, buf);
            }
        }
    }
}

impl<T: PropertySet> std::ops::Deref for Props<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match &self.0 {
            Some(p) => p,
            None => T::empty(),
        }
    }
}

impl<T> Clone for Props<T> {
    #[inline]
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Props<T> {
    #[inline]
    fn default() -> Self {
        Self(None)
    }
}

impl<T: PropertySet> From<T> for Props<T> {
    fn from(props: T) -> Self {
        Self::new(props)
    }
}

impl<T: PropertySet + PartialEq> PartialEq for Props<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: PropertySet + Eq> Eq for Props<T> {}

impl<T: PropertySet + fmt::Debug> fmt::Debug for Props<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        T::fmt(self, f)
    }
}

/// A property value type: how it is parsed, sized and written.
pub(crate) trait PropValue: Sized {
    fn parse<'a>(frame: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self>;
    fn value_len(&self) -> Result<usize, EncodeError>;
    fn put<B: BufMut>(&self, buf: &mut B);
}

impl PropValue for bool {
    fn parse<'a>(_: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self> {
        match u8(i)? {
            (i, 0) => Ok((i, false)),
            (i, 1) => Ok((i, true)),
            _ => fail(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
}

impl PropValue for PayloadFormat {
    fn parse<'a>(_: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self> {
        match u8(i)? {
            (i, 0) => Ok((i, Self::Unspecified)),
            (i, 1) => Ok((i, Self::Utf8)),
            _ => fail(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self as u8);
    }
}

/// Maximum QoS: only 0 or 1 may be sent \[MQTT-3.2.2-9\]: a server that
/// supports QoS 2 omits the property.
impl PropValue for QoS {
    fn parse<'a>(_: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self> {
        match u8(i)? {
            (i, 0) => Ok((i, Self::AtMostOnce)),
            (i, 1) => Ok((i, Self::AtLeastOnce)),
            _ => fail(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        // Maximum QoS is the only property of this type.
        match self {
            Self::ExactlyOnce => Err(EncodeError::InvalidPropertyValue(id::MAXIMUM_QOS)),
            _ => Ok(1),
        }
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self as u8);
    }
}

impl PropValue for u16 {
    fn parse<'a>(_: &Bytes, _: u8, i: &'a [u8]) -> PResult<'a, Self> {
        u16(i)
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(*self);
    }
}

impl PropValue for NonZeroU16 {
    fn parse<'a>(_: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, v) = u16(i)?;
        match NonZeroU16::new(v) {
            Some(v) => Ok((i, v)),
            None => fail(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.get());
    }
}

impl PropValue for u32 {
    fn parse<'a>(_: &Bytes, _: u8, i: &'a [u8]) -> PResult<'a, Self> {
        u32(i)
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(*self);
    }
}

impl PropValue for NonZeroU32 {
    fn parse<'a>(_: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, v) = u32(i)?;
        match NonZeroU32::new(v) {
            Some(v) => Ok((i, v)),
            None => fail(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.get());
    }
}

impl PropValue for SubscriptionId {
    fn parse<'a>(_: &Bytes, id: u8, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, v) = varint(i)?;
        match SubscriptionId::new(v) {
            Some(v) => Ok((i, v)),
            None => fail(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(varint_len(self.get() as usize))
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        put_varint(buf, self.get() as usize);
    }
}

impl PropValue for Utf8Bytes {
    #[inline(always)]
    fn parse<'a>(frame: &Bytes, _: u8, i: &'a [u8]) -> PResult<'a, Self> {
        property_string(frame, i)
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        field_len(self.len())
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        self.put_field(buf);
    }
}

impl PropValue for Bytes {
    fn parse<'a>(frame: &Bytes, _: u8, i: &'a [u8]) -> PResult<'a, Self> {
        binary(frame, i)
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        field_len(self.len())
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        put_field(buf, self);
    }
}

impl PropValue for UserProperty {
    #[inline(always)]
    fn parse<'a>(frame: &Bytes, _: u8, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, name) = property_string(frame, i)?;
        let (i, value) = property_string(frame, i)?;
        Ok((i, UserProperty { name, value }))
    }
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(field_len(self.name.len())? + field_len(self.value.len())?)
    }
    fn put<B: BufMut>(&self, buf: &mut B) {
        self.name.put_field(buf);
        self.value.put_field(buf);
    }
}

/// Defines a property struct: `Option` fields for properties that may appear
/// once, [`PropertyList`] fields for those that may repeat.
macro_rules! properties {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $id:ident, )*
        }
        repeated {
            $( $(#[$rdoc:meta])* $rfield:ident : $rty:ty = $rid:ident, )*
        }
    ) => {
        $(#[$meta])*
        ///
        /// `#[non_exhaustive]`: build one with `Default::default()` and set
        /// fields.
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: Option<$ty>, )*
            $( $(#[$rdoc])* pub $rfield: PropertyList<$rty>, )*
        }

        impl sealed::Sealed for $name {
            #[inline]
            fn wire_len(&self) -> Result<usize, EncodeError> {
                $name::encoded_len(self)
            }

            #[inline]
            fn wire_put<B: BufMut>(&self, buf: &mut B) {
                $name::put(self, buf)
            }

            #[inline]
            fn wire_put_body<B: BufMut>(&self, body_len: usize, buf: &mut B) {
                $name::put_body(self, body_len, buf)
            }

            #[inline]
            fn wire_parse(
                &mut self,
                frame: &Bytes,
                packet: PacketType,
                block: &[u8],
            ) -> Result<(), DecodeError> {
                $name::parse_fields(self, frame, packet, block)?;
                Ok(())
            }
        }

        impl PropertySet for $name {
            fn empty() -> &'static Self {
                static EMPTY: $name = $name {
                    $( $field: None, )*
                    $( $rfield: PropertyList::new(), )*
                };
                &EMPTY
            }

            fn is_empty(&self) -> bool {
                $name::is_empty(self)
            }
        }

        impl $name {
            /// Whether no property is set.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )* $( && self.$rfield.is_empty() )*
            }

            /// Parses a property length and the properties it covers (the
            /// sets kept inline; [`Props::parse`] parses the others).
            #[allow(dead_code)]
            pub(crate) fn parse<'a>(
                frame: &Bytes,
                packet: PacketType,
                i: &'a [u8],
            ) -> PResult<'a, Self> {
                let (i, len) = varint(i)?;
                let (rest, block) = nom::bytes::complete::take(len).parse(i)?;
                let mut props = Self::default();
                props.parse_fields(frame, packet, block)?;
                Ok((rest, props))
            }

            /// Parses the properties of `block` (the bytes the Property
            /// Length covers) into `self`, in place.
            fn parse_fields<'a>(
                &mut self,
                frame: &Bytes,
                packet: PacketType,
                mut block: &'a [u8],
            ) -> PResult<'a, ()> {
                let props = self;
                while !block.is_empty() {
                    let (r, pid) = varint(block)?;
                    let Ok(pid) = u8::try_from(pid) else {
                        return fail(DecodeError::UnknownProperty(pid));
                    };
                    block = match pid {
                        $(
                            id::$id => {
                                if props.$field.is_some() {
                                    return fail(DecodeError::DuplicateProperty(pid));
                                }
                                let (r, v) = <$ty as PropValue>::parse(frame, pid, r)?;
                                props.$field = Some(v);
                                r
                            }
                        )*
                        $(
                            id::$rid => {
                                let (r, v) = <$rty as PropValue>::parse(frame, pid, r)?;
                                props.$rfield.push(v);
                                r
                            }
                        )*
                        other if id::is_known(other) => {
                            return fail(DecodeError::PropertyNotAllowed {
                                packet,
                                property: other,
                            });
                        }
                        other => return fail(DecodeError::UnknownProperty(u32::from(other))),
                    };
                }
                Ok((block, ()))
            }

            /// Size of the properties, without the Property Length; a set
            /// over what a Remaining Length can hold is refused here, so
            /// that no caller's sum can overflow (on 32-bit targets, many
            /// properties sharing long strings add up past `usize::MAX`).
            pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
                #[allow(unused_mut)]
                let mut n: usize = 0;
                $( if let Some(v) = &self.$field { n = n.saturating_add(1 + v.value_len()?); } )*
                $( for v in &self.$rfield { n = n.saturating_add(1 + v.value_len()?); } )*
                if n > VARINT_MAX as usize {
                    return Err(EncodeError::RemainingLengthTooLarge(n));
                }
                Ok(n)
            }

            /// Size of the Property Length and the properties.
            pub(crate) fn encoded_len(&self) -> Result<usize, EncodeError> {
                let n = self.body_len()?;
                Ok(varint_len(n) + n)
            }

            /// Writes the Property Length and the properties; lengths were
            /// checked by `encoded_len`.
            pub(crate) fn put<B: BufMut>(&self, buf: &mut B) {
                self.put_body(self.body_len().unwrap_or_default(), buf);
            }

            /// [`put`](Self::put) given `body_len()`.
            #[inline]
            pub(crate) fn put_body<B: BufMut>(&self, body_len: usize, buf: &mut B) {
                put_varint(buf, body_len);
                $( if let Some(v) = &self.$field { buf.put_u8(id::$id); v.put(buf); } )*
                $( for v in &self.$rfield { buf.put_u8(id::$rid); v.put(buf); } )*
            }
        }
    };
}

properties! {
    /// Properties of CONNECT (MQTT 5.0 section 3.1.2.11).
    pub struct ConnectProperties {
        /// Session Expiry Interval in seconds (absent means 0).
        session_expiry_interval: u32 = SESSION_EXPIRY_INTERVAL,
        /// Receive Maximum: QoS 1/2 publications the client processes at once.
        receive_maximum: NonZeroU16 = RECEIVE_MAXIMUM,
        /// Maximum Packet Size the client accepts.
        maximum_packet_size: NonZeroU32 = MAXIMUM_PACKET_SIZE,
        /// Topic Alias Maximum the client accepts.
        topic_alias_maximum: u16 = TOPIC_ALIAS_MAXIMUM,
        /// Request Response Information.
        request_response_information: bool = REQUEST_RESPONSE_INFORMATION,
        /// Request Problem Information.
        request_problem_information: bool = REQUEST_PROBLEM_INFORMATION,
        /// Authentication Method for extended authentication.
        authentication_method: Utf8Bytes = AUTHENTICATION_METHOD,
        /// Authentication Data.
        authentication_data: Bytes = AUTHENTICATION_DATA,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of the will message in CONNECT (MQTT 5.0 section 3.1.3.2).
    pub struct WillProperties {
        /// Will Delay Interval in seconds.
        will_delay_interval: u32 = WILL_DELAY_INTERVAL,
        /// Payload Format Indicator.
        payload_format_indicator: PayloadFormat = PAYLOAD_FORMAT_INDICATOR,
        /// Message Expiry Interval in seconds.
        message_expiry_interval: u32 = MESSAGE_EXPIRY_INTERVAL,
        /// Content Type.
        content_type: Utf8Bytes = CONTENT_TYPE,
        /// Response Topic.
        response_topic: Utf8Bytes = RESPONSE_TOPIC,
        /// Correlation Data.
        correlation_data: Bytes = CORRELATION_DATA,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of CONNACK (MQTT 5.0 section 3.2.2.3).
    pub struct ConnAckProperties {
        /// Session Expiry Interval the server uses.
        session_expiry_interval: u32 = SESSION_EXPIRY_INTERVAL,
        /// Receive Maximum of the server.
        receive_maximum: NonZeroU16 = RECEIVE_MAXIMUM,
        /// Maximum QoS the server supports (0 or 1; absent means 2).
        maximum_qos: QoS = MAXIMUM_QOS,
        /// Retain Available (absent means true).
        retain_available: bool = RETAIN_AVAILABLE,
        /// Maximum Packet Size the server accepts.
        maximum_packet_size: NonZeroU32 = MAXIMUM_PACKET_SIZE,
        /// Client identifier assigned by the server.
        assigned_client_identifier: Utf8Bytes = ASSIGNED_CLIENT_IDENTIFIER,
        /// Topic Alias Maximum the server accepts.
        topic_alias_maximum: u16 = TOPIC_ALIAS_MAXIMUM,
        /// Reason String.
        reason_string: Utf8Bytes = REASON_STRING,
        /// Wildcard Subscription Available (absent means true).
        wildcard_subscription_available: bool = WILDCARD_SUBSCRIPTION_AVAILABLE,
        /// Subscription Identifiers Available (absent means true).
        subscription_identifiers_available: bool = SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        /// Shared Subscription Available (absent means true).
        shared_subscription_available: bool = SHARED_SUBSCRIPTION_AVAILABLE,
        /// Server Keep Alive, overriding the client's.
        server_keep_alive: u16 = SERVER_KEEP_ALIVE,
        /// Response Information.
        response_information: Utf8Bytes = RESPONSE_INFORMATION,
        /// Server Reference.
        server_reference: Utf8Bytes = SERVER_REFERENCE,
        /// Authentication Method.
        authentication_method: Utf8Bytes = AUTHENTICATION_METHOD,
        /// Authentication Data.
        authentication_data: Bytes = AUTHENTICATION_DATA,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of PUBLISH (MQTT 5.0 section 3.3.2.3).
    pub struct PublishProperties {
        /// Payload Format Indicator.
        payload_format_indicator: PayloadFormat = PAYLOAD_FORMAT_INDICATOR,
        /// Message Expiry Interval in seconds.
        message_expiry_interval: u32 = MESSAGE_EXPIRY_INTERVAL,
        /// Topic Alias (0 is not allowed).
        topic_alias: NonZeroU16 = TOPIC_ALIAS,
        /// Response Topic.
        response_topic: Utf8Bytes = RESPONSE_TOPIC,
        /// Correlation Data.
        correlation_data: Bytes = CORRELATION_DATA,
        /// Content Type.
        content_type: Utf8Bytes = CONTENT_TYPE,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
        /// Subscription Identifiers of the matching subscriptions (server to
        /// client only).
        subscription_identifiers: SubscriptionId = SUBSCRIPTION_IDENTIFIER,
    }
}

properties! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
    pub struct AckProperties {
        /// Reason String.
        reason_string: Utf8Bytes = REASON_STRING,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of SUBSCRIBE (MQTT 5.0 section 3.8.2.1).
    pub struct SubscribeProperties {
        /// Subscription Identifier.
        subscription_identifier: SubscriptionId = SUBSCRIPTION_IDENTIFIER,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of UNSUBSCRIBE (MQTT 5.0 section 3.10.2.1).
    pub struct UnsubscribeProperties {
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of DISCONNECT (MQTT 5.0 section 3.14.2.2).
    pub struct DisconnectProperties {
        /// Session Expiry Interval (client to server only).
        session_expiry_interval: u32 = SESSION_EXPIRY_INTERVAL,
        /// Reason String.
        reason_string: Utf8Bytes = REASON_STRING,
        /// Server Reference.
        server_reference: Utf8Bytes = SERVER_REFERENCE,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

properties! {
    /// Properties of AUTH (MQTT 5.0 section 3.15.2.2).
    pub struct AuthProperties {
        /// Authentication Method.
        authentication_method: Utf8Bytes = AUTHENTICATION_METHOD,
        /// Authentication Data.
        authentication_data: Bytes = AUTHENTICATION_DATA,
        /// Reason String.
        reason_string: Utf8Bytes = REASON_STRING,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

/// Checks the rule shared by CONNECT, CONNACK and AUTH: "It is a Protocol
/// Error to include Authentication Data if there is no Authentication Method".
pub(crate) fn check_auth(
    method: &Option<Utf8Bytes>,
    data: &Option<Bytes>,
) -> Result<(), DecodeError> {
    if data.is_some() && method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(())
}

#[cfg(test)]
mod props_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn absent_and_empty_are_equal_and_reads_never_allocate() {
        let none = Props::<PublishProperties>::none();
        let mut empty = Props::<PublishProperties>::none();
        empty.to_mut();
        assert!(none.get().is_none() && empty.get().is_some());
        assert_eq!(none, empty);
        assert!(none.is_empty() && empty.is_empty());
        assert_eq!(none.message_expiry_interval, None);
        empty.compact();
        assert!(empty.get().is_none(), "an emptied block is dropped");
        assert!(Props::new(PublishProperties::default()).get().is_none());
    }

    #[test]
    fn clones_share_until_written() {
        let mut a = Props::<PublishProperties>::none();
        a.to_mut().message_expiry_interval = Some(5);
        let mut b = a.clone();
        assert!(std::ptr::eq(a.get().unwrap(), b.get().unwrap()));
        b.to_mut().message_expiry_interval = Some(6);
        assert_eq!(a.message_expiry_interval, Some(5));
        assert_eq!(b.message_expiry_interval, Some(6));
        let mut absent = Props::<PublishProperties>::none();
        assert!(absent.get_mut().is_none(), "get_mut does not allocate");
        assert_eq!(b.take().message_expiry_interval, Some(6));
        assert!(b.get().is_none());
        assert_eq!(a.into_inner().message_expiry_interval, Some(5));
    }
}
