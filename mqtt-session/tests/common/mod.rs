//! `Pair`: a client session and a server session wired together in memory,
//! with a simulated clock, a transport that can be cut (losing what is in
//! transit) and a one-client broker that stores the session between
//! connections. Every packet crosses the real codec (encode, then decode in
//! random chunks are covered elsewhere; here one whole frame at a time).
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_codec::{Decoder, Encoder, Packet, ProtocolVersion};
use mqtt_session::{Accept, ClientConfig, ClientSession, Event, ServerConfig, ServerSession};

pub struct Pair {
    pub now: Instant,
    pub client: ClientSession,
    /// The server session of the current (or last) connection.
    pub server: ServerSession,
    pub server_config: ServerConfig,
    /// A session left by an earlier connection, kept by the "broker".
    pub offline: Option<ServerSession>,
    pub to_server: VecDeque<Packet>,
    pub to_client: VecDeque<Packet>,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    /// Every packet that crossed the wire, with its direction (true: to server).
    pub wire: Vec<(bool, Packet)>,
    pub link_up: bool,
    version: ProtocolVersion,
    /// When false, the test answers CONNECT and SUBSCRIBE itself.
    pub auto_broker: bool,
}

impl Pair {
    pub fn new(client: ClientConfig, server: ServerConfig) -> Self {
        let now = Instant::now();
        let version = client.protocol;
        Self {
            now,
            client: ClientSession::new(client),
            server: ServerSession::new(server.clone(), now),
            server_config: server,
            offline: None,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            wire: Vec::new(),
            link_up: false,
            version,
            auto_broker: true,
        }
    }

    /// A new transport: a fresh server session, and the client connects.
    pub fn connect(&mut self) {
        assert!(!self.link_up, "already connected");
        let old = std::mem::replace(
            &mut self.server,
            ServerSession::new(self.server_config.clone(), self.now),
        );
        if !old.is_ended() {
            self.offline = Some(old);
        }
        self.link_up = true;
        self.client.connect(self.now).unwrap();
    }

    /// Connects and runs the handshake to completion.
    pub fn establish(&mut self) {
        self.connect();
        self.drive();
        assert!(
            self.client.is_connected(),
            "handshake failed: {:?}",
            self.client_events
        );
    }

    /// Cuts the transport: what is in transit is lost and both sides learn
    /// the connection is gone.
    pub fn cut(&mut self) {
        self.to_server.clear();
        self.to_client.clear();
        self.link_up = false;
        self.client.connection_lost(self.now);
        self.server.connection_lost(self.now);
        // Packets queued but never written are lost with the transport.
        while self.client.poll_transmit().is_some() {}
        while self.server.poll_transmit().is_some() {}
        self.pump_events();
    }

    /// Encodes and decodes `p` at `v`, as the wire would.
    fn wire_copy(v: ProtocolVersion, p: &Packet) -> Packet {
        let mut buf = BytesMut::new();
        Encoder::new(v)
            .encode(p, &mut buf)
            .unwrap_or_else(|e| panic!("cannot encode {p:?}: {e}"));
        let mut dec = Decoder::with_version(v);
        let got = dec.decode(&mut buf).unwrap().expect("a whole packet");
        assert!(buf.is_empty());
        got
    }

    /// Moves packets the sessions produced onto the transport.
    fn collect(&mut self) -> bool {
        let mut moved = false;
        while let Some(p) = self.client.poll_transmit() {
            moved = true;
            if self.link_up {
                self.to_server.push_back(Self::wire_copy(self.version, &p));
            }
        }
        while let Some(p) = self.server.poll_transmit() {
            moved = true;
            if self.link_up {
                self.to_client.push_back(Self::wire_copy(self.version, &p));
            }
        }
        moved
    }

    /// Delivers at most `n` packets to the server.
    pub fn deliver_to_server(&mut self, n: usize) -> usize {
        self.collect();
        let mut done = 0;
        while done < n {
            let Some(p) = self.to_server.pop_front() else {
                break;
            };
            self.wire.push((true, p.clone()));
            self.server.handle_packet(self.now, p);
            done += 1;
            self.pump_events();
            self.collect();
        }
        done
    }

    /// Delivers at most `n` packets to the client.
    pub fn deliver_to_client(&mut self, n: usize) -> usize {
        self.collect();
        let mut done = 0;
        while done < n {
            let Some(p) = self.to_client.pop_front() else {
                break;
            };
            self.wire.push((false, p.clone()));
            self.client.handle_packet(self.now, p);
            done += 1;
            self.pump_events();
            self.collect();
        }
        done
    }

    /// Handles events: records them, and plays the broker for the server.
    pub fn pump_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            if matches!(e, mqtt_session::Event::Closed(_)) && self.link_up {
                // The client closed: the transport goes with it.
                self.link_up = false;
                self.to_server.clear();
                self.to_client.clear();
                self.server.connection_lost(self.now);
            }
            self.client_events.push(e);
        }
        loop {
            let mut any = false;
            for offline in [false, true] {
                let session = if offline {
                    match self.offline.as_mut() {
                        Some(s) => s,
                        None => continue,
                    }
                } else {
                    &mut self.server
                };
                while let Some(e) = session.poll_event() {
                    any = true;
                    self.server_events.push(e.clone());
                    if !self.auto_broker {
                        continue;
                    }
                    match e {
                        Event::Connect(c) if !offline => {
                            let accept = match self.offline.take() {
                                Some(mut old) if !c.clean_start => Accept::resume(old.take_state()),
                                Some(mut old) => {
                                    old.end(self.now);
                                    while let Some(e) = old.poll_event() {
                                        self.server_events.push(e);
                                    }
                                    Accept::new()
                                }
                                None => Accept::new(),
                            };
                            self.server.accept(self.now, accept).unwrap();
                        }
                        Event::Subscribe(req) if !offline => {
                            let reasons = req.grant_all();
                            self.server.suback(self.now, &req, reasons).unwrap();
                        }
                        Event::Closed(_) if !offline && self.link_up => {
                            self.link_up = false;
                            self.to_server.clear();
                            self.to_client.clear();
                            self.client.connection_lost(self.now);
                        }
                        _ => {}
                    }
                    break;
                }
            }
            if !any {
                break;
            }
        }
        if self.offline.as_ref().is_some_and(ServerSession::is_ended) {
            self.offline = None;
        }
    }

    /// Delivers everything until both sides are quiet.
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            self.pump_events();
            let moved = self.collect();
            let a = self.deliver_to_server(usize::MAX);
            let b = self.deliver_to_client(usize::MAX);
            if !moved && a == 0 && b == 0 {
                return;
            }
        }
        panic!("the sessions never went quiet");
    }

    /// Lets simulated time pass, firing every timer at its deadline and
    /// delivering what it makes the sessions send.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [
                self.client.poll_timeout(),
                self.server.poll_timeout(),
                self.offline.as_ref().and_then(ServerSession::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    if let Some(o) = self.offline.as_mut() {
                        o.handle_timeout(self.now);
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Client events of one kind, mapped.
    pub fn client_events<T>(&self, f: impl Fn(&Event) -> Option<T>) -> Vec<T> {
        self.client_events.iter().filter_map(f).collect()
    }

    /// Server events of one kind, mapped.
    pub fn server_events<T>(&self, f: impl Fn(&Event) -> Option<T>) -> Vec<T> {
        self.server_events.iter().filter_map(f).collect()
    }
}
