//! Sans-IO pieces shared by the async and the blocking clients: the payload
//! format, packet identifier allocation and the subscriber's bookkeeping
//! (acknowledgements, QoS 2 receiver state, lost / duplicated counting,
//! latency samples).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use anyhow::{Result, bail};
use bytes::{BufMut, BytesMut};
use mqtt_codec::{Encoder, Packet, PacketId, PubAck, PubComp, PubRec, Publish, QoS};

/// Bytes of the payload that carry the message's identity: publisher id
/// (u32), sequence number (u32) and send time in nanoseconds since the
/// run's base instant (u64), all big-endian. The rest is padding.
pub(crate) const HEADER_LEN: usize = 16;

/// Writes the identity header at the start of `payload` (which is at least
/// [`HEADER_LEN`] long; shorter payloads get a truncated header).
pub(crate) fn write_header(payload: &mut [u8], publisher: u32, seq: u32, sent_ns: u64) {
    let mut h = [0u8; HEADER_LEN];
    let mut w = &mut h[..];
    w.put_u32(publisher);
    w.put_u32(seq);
    w.put_u64(sent_ns);
    let n = payload.len().min(HEADER_LEN);
    if let (Some(dst), Some(src)) = (payload.get_mut(..n), h.get(..n)) {
        dst.copy_from_slice(src);
    }
}

/// Reads `(publisher, seq, sent_ns)` from a payload.
pub(crate) fn read_header(payload: &[u8]) -> Option<(u32, u32, u64)> {
    let h: &[u8; HEADER_LEN] = payload.get(..HEADER_LEN)?.try_into().ok()?;
    let [
        a0,
        a1,
        a2,
        a3,
        b0,
        b1,
        b2,
        b3,
        c0,
        c1,
        c2,
        c3,
        c4,
        c5,
        c6,
        c7,
    ] = *h;
    Some((
        u32::from_be_bytes([a0, a1, a2, a3]),
        u32::from_be_bytes([b0, b1, b2, b3]),
        u64::from_be_bytes([c0, c1, c2, c3, c4, c5, c6, c7]),
    ))
}

/// Encodes `publish` (whose payload is a template of the right size) into
/// `dst` with the identity header stamped at the start of the payload: no
/// payload is allocated per message.
pub(crate) fn encode_stamped(
    enc: &Encoder,
    publish: &Publish,
    dst: &mut BytesMut,
    publisher: u32,
    seq: u32,
    sent_ns: u64,
) -> Result<()> {
    enc.encode_publish_head(publish, dst)?;
    let mut h = [0u8; HEADER_LEN];
    write_header(&mut h, publisher, seq, sent_ns);
    let n = publish.payload.len().min(HEADER_LEN);
    dst.put_slice(h.get(..n).unwrap_or_default());
    dst.put_slice(publish.payload.get(n..).unwrap_or_default());
    Ok(())
}

/// Packet identifiers in use by one sender; never hands out one in flight.
#[derive(Debug)]
pub(crate) struct PacketIds {
    used: Vec<bool>,
    next: u16,
    in_flight: usize,
}

impl PacketIds {
    pub(crate) fn new() -> Self {
        Self {
            used: vec![false; 65_536],
            next: 1,
            in_flight: 0,
        }
    }

    /// A free identifier, or `None` when all 65,535 are in flight.
    pub(crate) fn alloc(&mut self) -> Option<PacketId> {
        for _ in 0..65_535 {
            let id = self.next;
            self.next = if id == u16::MAX { 1 } else { id + 1 };
            if let Some(slot) = self.used.get_mut(usize::from(id)) {
                if !*slot {
                    *slot = true;
                    self.in_flight += 1;
                    return PacketId::new(id);
                }
            }
        }
        None
    }

    /// Frees `id`; false if it was not in flight (an unexpected ack).
    pub(crate) fn release(&mut self, id: PacketId) -> bool {
        match self.used.get_mut(usize::from(id.get())) {
            Some(slot) if *slot => {
                *slot = false;
                self.in_flight -= 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }
}

/// What a sender does with an incoming packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SenderEvent {
    /// A QoS 1 or 2 flow completed: one slot of the window is free.
    Completed,
    /// Nothing to count (PUBREC answered with PUBREL, PINGRESP, ...).
    Nothing,
}

/// Publisher side of the QoS 1 / 2 flows: PUBACK and PUBCOMP complete a
/// message, PUBREC is answered with PUBREL into `out`.
pub(crate) fn sender_handle(
    ids: &mut PacketIds,
    enc: &Encoder,
    packet: Packet,
    out: &mut BytesMut,
    unexpected: &mut u64,
) -> Result<SenderEvent> {
    Ok(match packet {
        Packet::PubAck(a) => {
            if ids.release(a.packet_id) {
                SenderEvent::Completed
            } else {
                *unexpected += 1;
                SenderEvent::Nothing
            }
        }
        Packet::PubRec(r) => {
            if r.reason.is_error() {
                // The broker refused the message: the flow ends here.
                if ids.release(r.packet_id) {
                    return Ok(SenderEvent::Completed);
                }
                *unexpected += 1;
                return Ok(SenderEvent::Nothing);
            }
            enc.encode(&Packet::PubRel(mqtt_codec::PubRel::new(r.packet_id)), out)?;
            SenderEvent::Nothing
        }
        Packet::PubComp(c) => {
            if ids.release(c.packet_id) {
                SenderEvent::Completed
            } else {
                *unexpected += 1;
                SenderEvent::Nothing
            }
        }
        Packet::PingResp => SenderEvent::Nothing,
        Packet::Disconnect(d) => bail!("broker sent DISCONNECT ({:?})", d.reason),
        // A publisher subscribes to nothing; anything else is ignored.
        _ => SenderEvent::Nothing,
    })
}

/// A bit set of received sequence numbers of one publisher.
#[derive(Debug)]
struct Seen {
    bits: Vec<u64>,
    len: u32,
}

impl Seen {
    fn new(len: u32) -> Self {
        Self {
            bits: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// Marks `seq`; `Some(true)` if new, `Some(false)` if seen before,
    /// `None` if out of range.
    fn insert(&mut self, seq: u32) -> Option<bool> {
        if seq >= self.len {
            return None;
        }
        let word = self.bits.get_mut((seq / 64) as usize)?;
        let mask = 1u64 << (seq % 64);
        let new = *word & mask == 0;
        *word |= mask;
        Some(new)
    }
}

/// Counts kept by a subscriber.
#[derive(Debug, Default, Clone)]
pub(crate) struct RecvCounts {
    /// Messages expected (sum over the publishers it hears).
    pub(crate) expected: u64,
    /// Distinct messages received.
    pub(crate) unique: u64,
    /// Messages received again (same publisher and sequence number).
    pub(crate) duplicated: u64,
    /// Messages from no expected publisher, or out of range, or unreadable.
    pub(crate) unexpected: u64,
    /// QoS 2 PUBLISH that reused a packet id still awaiting PUBREL with a
    /// different message: a compliant receiver drops it (counted as lost).
    pub(crate) qos2_id_reuse: u64,
    /// QoS 2 retransmissions of a message awaiting PUBREL (not delivered
    /// again, as the spec says).
    pub(crate) qos2_retransmits: u64,
}

/// The subscriber's protocol state and bookkeeping.
#[derive(Debug)]
pub(crate) struct Receiver {
    seen: Vec<Option<Seen>>,
    awaiting_rel: HashMap<u16, (u32, u32)>,
    pub(crate) counts: RecvCounts,
    /// Latency samples in microseconds, taken when `record_latency` is set
    /// for messages sent at or after `latency_from_ns`.
    pub(crate) latencies_us: Vec<u32>,
    record_latency: bool,
    latency_from_ns: u64,
}

impl Receiver {
    /// A receiver expecting `count` messages from each publisher in `from`.
    pub(crate) fn new(from: &[(u32, u32)]) -> Self {
        let max = from.iter().map(|&(p, _)| p as usize + 1).max().unwrap_or(0);
        let mut seen: Vec<Option<Seen>> = (0..max).map(|_| None).collect();
        let mut expected = 0u64;
        for &(p, count) in from {
            if let Some(slot) = seen.get_mut(p as usize) {
                *slot = Some(Seen::new(count));
                expected += u64::from(count);
            }
        }
        Self {
            seen,
            awaiting_rel: HashMap::new(),
            counts: RecvCounts {
                expected,
                ..RecvCounts::default()
            },
            latencies_us: Vec::new(),
            record_latency: false,
            latency_from_ns: 0,
        }
    }

    /// Records a latency sample for every message sent at or after
    /// `from_ns` (to leave a warm-up out).
    pub(crate) fn record_latency(&mut self, from_ns: u64, capacity: usize) {
        self.record_latency = true;
        self.latency_from_ns = from_ns;
        self.latencies_us = Vec::with_capacity(capacity);
    }

    pub(crate) fn done(&self) -> bool {
        self.counts.unique >= self.counts.expected
    }

    fn deliver(&mut self, payload: &[u8], now_ns: u64) {
        let Some((p, seq, sent_ns)) = read_header(payload) else {
            self.counts.unexpected += 1;
            return;
        };
        match self
            .seen
            .get_mut(p as usize)
            .and_then(Option::as_mut)
            .and_then(|s| s.insert(seq))
        {
            Some(true) => {
                self.counts.unique += 1;
                if self.record_latency && sent_ns >= self.latency_from_ns {
                    let us = now_ns.saturating_sub(sent_ns) / 1_000;
                    self.latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Some(false) => self.counts.duplicated += 1,
            None => self.counts.unexpected += 1,
        }
    }

    /// Handles one packet from the broker; acknowledgements go to `out`.
    /// Returns true if it was a PUBLISH.
    pub(crate) fn handle(
        &mut self,
        enc: &Encoder,
        packet: Packet,
        out: &mut BytesMut,
        now_ns: u64,
    ) -> Result<bool> {
        match packet {
            Packet::Publish(p) => {
                match (p.qos, p.packet_id) {
                    (QoS::AtMostOnce, _) => self.deliver(&p.payload, now_ns),
                    (QoS::AtLeastOnce, Some(id)) => {
                        self.deliver(&p.payload, now_ns);
                        enc.encode(&Packet::PubAck(PubAck::new(id)), out)?;
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        let key = read_header(&p.payload)
                            .map_or((u32::MAX, u32::MAX), |(a, b, _)| (a, b));
                        match self.awaiting_rel.entry(id.get()) {
                            Entry::Vacant(v) => {
                                v.insert(key);
                                self.deliver(&p.payload, now_ns);
                            }
                            Entry::Occupied(o) => {
                                if *o.get() == key {
                                    self.counts.qos2_retransmits += 1;
                                } else {
                                    self.counts.qos2_id_reuse += 1;
                                }
                            }
                        }
                        enc.encode(&Packet::PubRec(PubRec::new(id)), out)?;
                    }
                    (_, None) => bail!("QoS > 0 PUBLISH without a packet id"),
                }
                Ok(true)
            }
            Packet::PubRel(r) => {
                self.awaiting_rel.remove(&r.packet_id.get());
                enc.encode(&Packet::PubComp(PubComp::new(r.packet_id)), out)?;
                Ok(false)
            }
            Packet::Disconnect(d) => bail!("broker sent DISCONNECT ({:?})", d.reason),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_codec::ProtocolVersion;

    #[test]
    fn header_round_trip() {
        let mut p = [0u8; 64];
        write_header(&mut p, 7, 123_456, 99);
        assert_eq!(read_header(&p), Some((7, 123_456, 99)));
    }

    #[test]
    fn ids_skip_in_flight() {
        let mut ids = PacketIds::new();
        let a = ids.alloc().unwrap();
        assert_eq!(a.get(), 1);
        for _ in 0..65_533 {
            let id = ids.alloc().unwrap();
            assert!(ids.release(id));
        }
        // Wraps around past 65535 and skips 1, still in flight.
        assert_eq!(ids.alloc().unwrap().get(), 65_535);
        assert_eq!(ids.alloc().unwrap().get(), 2);
        assert!(ids.release(a));
        assert!(!ids.release(a));
        assert_eq!(ids.in_flight(), 2);
    }

    fn publish(qos: QoS, id: u16, publisher: u32, seq: u32) -> Packet {
        let mut payload = vec![0u8; 64];
        write_header(&mut payload, publisher, seq, 0);
        let mut p = Publish::new(mqtt_codec::PublishTopic::from_static("t"), payload);
        p.qos = qos;
        p.packet_id = PacketId::new(id);
        Packet::Publish(p)
    }

    #[test]
    fn counts_lost_and_duplicates() {
        let enc = Encoder::new(ProtocolVersion::V3_1_1);
        let mut out = BytesMut::new();
        let mut r = Receiver::new(&[(0, 3), (2, 2)]);
        for (p, s) in [(0, 0), (0, 1), (0, 1), (2, 1), (1, 0), (2, 5)] {
            r.handle(&enc, publish(QoS::AtLeastOnce, 9, p, s), &mut out, 0)
                .unwrap();
        }
        assert_eq!(r.counts.expected, 5);
        assert_eq!(r.counts.unique, 3);
        assert_eq!(r.counts.duplicated, 1);
        assert_eq!(r.counts.unexpected, 2);
        assert_eq!(out.len(), 6 * 4);
        assert!(!r.done());
    }

    #[test]
    fn qos2_receiver_keeps_id_until_pubrel() {
        let enc = Encoder::new(ProtocolVersion::V3_1_1);
        let mut out = BytesMut::new();
        let mut r = Receiver::new(&[(0, 3)]);
        r.handle(&enc, publish(QoS::ExactlyOnce, 5, 0, 0), &mut out, 0)
            .unwrap();
        // Same id, same message: a retransmission, not delivered again.
        r.handle(&enc, publish(QoS::ExactlyOnce, 5, 0, 0), &mut out, 0)
            .unwrap();
        // Same id, another message before PUBREL: the broker reused an id.
        r.handle(&enc, publish(QoS::ExactlyOnce, 5, 0, 1), &mut out, 0)
            .unwrap();
        let rel = Packet::PubRel(mqtt_codec::PubRel::new(PacketId::new(5).unwrap()));
        r.handle(&enc, rel, &mut out, 0).unwrap();
        r.handle(&enc, publish(QoS::ExactlyOnce, 5, 0, 2), &mut out, 0)
            .unwrap();
        assert_eq!(r.counts.unique, 2);
        assert_eq!(r.counts.duplicated, 0);
        assert_eq!(r.counts.qos2_retransmits, 1);
        assert_eq!(r.counts.qos2_id_reuse, 1);
    }

    #[test]
    fn sender_flows() {
        let enc = Encoder::new(ProtocolVersion::V3_1_1);
        let mut out = BytesMut::new();
        let mut ids = PacketIds::new();
        let mut bad = 0;
        let a = ids.alloc().unwrap();
        let b = ids.alloc().unwrap();
        let ev = sender_handle(
            &mut ids,
            &enc,
            Packet::PubAck(PubAck::new(a)),
            &mut out,
            &mut bad,
        );
        assert_eq!(ev.unwrap(), SenderEvent::Completed);
        let ev = sender_handle(
            &mut ids,
            &enc,
            Packet::PubRec(PubRec::new(b)),
            &mut out,
            &mut bad,
        );
        assert_eq!(ev.unwrap(), SenderEvent::Nothing);
        assert_eq!(&out[..], b"\x62\x02\x00\x02");
        let ev = sender_handle(
            &mut ids,
            &enc,
            Packet::PubComp(PubComp::new(b)),
            &mut out,
            &mut bad,
        );
        assert_eq!(ev.unwrap(), SenderEvent::Completed);
        let ev = sender_handle(
            &mut ids,
            &enc,
            Packet::PubAck(PubAck::new(b)),
            &mut out,
            &mut bad,
        );
        assert_eq!(ev.unwrap(), SenderEvent::Nothing);
        assert_eq!(bad, 1);
        assert_eq!(ids.in_flight(), 0);
    }
}
