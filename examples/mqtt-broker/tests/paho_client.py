#!/usr/bin/env python3
"""paho-mqtt 2.x against mqtt-broker: run by tests/interop.rs.

Usage: paho_client.py PORT

Exchanges messages through the broker on 127.0.0.1:PORT with MQTT 3.1.1 and
5.0 clients: QoS 0/1/2 (and the downgrade to the granted QoS), retained
messages, MQTT 5.0 properties (user properties, response topic, correlation
data, content type, payload format, message expiry) and a request/response
round trip, and a shared subscription. Prints one line per check; the Rust
test compares the whole output. Exits non-zero on the first failure.
"""

import queue
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
TIMEOUT = 5.0
V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
NAMES = {V311: "v3.1.1", V5: "v5"}


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Client:
    """A paho client with its callbacks turned into queues."""

    def __init__(self, cid, proto, clean=True, expiry=None):
        self.proto = proto
        self.messages = queue.Queue()
        self.events = queue.Queue()
        kwargs = {}
        if proto == V311:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=proto, **kwargs
        )
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        connect = {}
        if proto == V5:
            connect["clean_start"] = clean
            if expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = expiry
                connect["properties"] = props
        self.c.connect(HOST, PORT, keepalive=30, **connect)
        self.c.loop_start()
        kind, rc, flags = self.events.get(timeout=TIMEOUT)
        check(kind == "connack" and rc == 0, f"{cid}: CONNACK {rc}")
        self.session_present = flags.session_present

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.events.put(("connack", reason_code.value, flags))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.events.put(("suback", mid, [r.value for r in reason_codes]))

    def subscribe(self, topic, qos):
        rc, mid = self.c.subscribe(topic, qos)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {rc}")
        kind, got_mid, codes = self.events.get(timeout=TIMEOUT)
        check(kind == "suback" and got_mid == mid, f"SUBACK {kind} {got_mid}")
        return codes

    def publish(self, topic, payload, qos, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(TIMEOUT)
        check(info.is_published(), f"publish {topic} not completed")

    def message(self):
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise Fail("no message") from None

    def nothing(self, wait=0.3):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise Fail(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def show(m):
    return f"{m.topic} {m.payload.decode()!r} qos={m.qos} retain={int(m.retain)}"


def qos_levels():
    # Each version publishing to each version, at each QoS.
    for pub_v in (V311, V5):
        for sub_v in (V311, V5):
            name = f"{NAMES[pub_v]}->{NAMES[sub_v]}"
            sub = Client(f"paho-sub-{name}", sub_v)
            pub = Client(f"paho-pub-{name}", pub_v)
            topic = f"interop/paho/{name}"
            codes = sub.subscribe(f"{topic}/#", 2)
            print(f"{name} suback {codes}")
            for qos in (0, 1, 2):
                pub.publish(f"{topic}/{qos}", f"qos {qos} from {NAMES[pub_v]}", qos)
                print(f"{name} {show(sub.message())}")
            sub.nothing()
            sub.close()
            pub.close()
    # QoS downgraded to the granted one.
    sub = Client("paho-down", V5)
    pub = Client("paho-down-pub", V311)
    print(f"downgrade suback {sub.subscribe('interop/paho/down', 1)}")
    pub.publish("interop/paho/down", "sent at 2", 2)
    print(f"downgrade {show(sub.message())}")
    sub.close()
    pub.close()


def retained():
    for v in (V311, V5):
        pub = Client(f"paho-ret-pub-{NAMES[v]}", v)
        topic = f"interop/paho/retained/{NAMES[v]}"
        pub.publish(topic, f"kept by {NAMES[v]}", 1, retain=True)
        sub = Client(f"paho-ret-sub-{NAMES[v]}", v)
        sub.subscribe(topic, 1)
        print(f"{NAMES[v]} retained {show(sub.message())}")
        # A live message has RETAIN clear (no Retain As Published).
        pub.publish(topic, "replaced", 1, retain=True)
        print(f"{NAMES[v]} live {show(sub.message())}")
        # Cleared by an empty retained payload.
        pub.publish(topic, b"", 0, retain=True)
        print(f"{NAMES[v]} clear {show(sub.message())}")
        late = Client(f"paho-ret-late-{NAMES[v]}", v)
        late.subscribe(topic, 1)
        late.nothing()
        print(f"{NAMES[v]} cleared")
        for c in (pub, sub, late):
            c.close()


def properties():
    sub = Client("paho-props-sub", V5)
    pub = Client("paho-props-pub", V5)
    sub.subscribe("interop/paho/props", 2)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("key", "value"), ("key", "second"), ("other", "x y")]
    props.ResponseTopic = "interop/paho/reply"
    props.CorrelationData = b"\x00\x01corr"
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    props.MessageExpiryInterval = 120
    for qos in (0, 1, 2):
        pub.publish("interop/paho/props", '{"n": %d}' % qos, qos, properties=props)
        m = sub.message()
        p = m.properties
        expiry = getattr(p, "MessageExpiryInterval", None)
        print(
            f"props qos={m.qos} payload={m.payload.decode()} "
            f"user={getattr(p, 'UserProperty', None)} "
            f"response={getattr(p, 'ResponseTopic', None)} "
            f"correlation={getattr(p, 'CorrelationData', None)!r} "
            f"content={getattr(p, 'ContentType', None)} "
            f"format={getattr(p, 'PayloadFormatIndicator', None)} "
            f"expiry_ok={expiry in (119, 120)}"
        )
    # A 3.1.1 subscriber gets the message without properties.
    old = Client("paho-props-v311", V311)
    old.subscribe("interop/paho/props", 1)
    pub.publish("interop/paho/props", "to 3.1.1", 1, properties=props)
    print(f"props to v3.1.1 {show(old.message())}")
    sub.message()
    for c in (sub, pub, old):
        c.close()

    # Request / response: the responder answers on the Response Topic with
    # the request's Correlation Data.
    responder = Client("paho-responder", V5)
    requester = Client("paho-requester", V5)
    responder.subscribe("interop/paho/service", 1)
    requester.subscribe("interop/paho/reply/+", 1)
    for i in range(3):
        req = Properties(PacketTypes.PUBLISH)
        req.ResponseTopic = f"interop/paho/reply/{i}"
        req.CorrelationData = f"id-{i}".encode()
        requester.publish("interop/paho/service", f"question {i}", 1, properties=req)
        q = responder.message()
        resp = Properties(PacketTypes.PUBLISH)
        resp.CorrelationData = q.properties.CorrelationData
        responder.publish(
            q.properties.ResponseTopic,
            "answer to " + q.payload.decode(),
            1,
            properties=resp,
        )
        a = requester.message()
        print(
            f"request/response {a.topic} {a.payload.decode()!r} "
            f"correlation={a.properties.CorrelationData!r}"
        )
    responder.close()
    requester.close()


def shared():
    members = [Client(f"paho-share-{i}", V5) for i in range(2)]
    old = Client("paho-share-v311", V311)
    for m in members:
        print(f"shared suback {m.subscribe('$share/group/interop/paho/shared/#', 1)}")
    # A plain subscriber gets every message as well.
    plain = Client("paho-share-plain", V5)
    plain.subscribe("interop/paho/shared/#", 1)
    pub = Client("paho-share-pub", V311)
    n = 40
    for i in range(n):
        pub.publish(f"interop/paho/shared/{i % 3}", f"m{i}", 1)
    got = []
    for _ in range(n):
        got.append(plain.message().payload.decode())
    plain.nothing()
    received = []
    counts = []
    for m in members:
        mine = []
        while True:
            try:
                mine.append(m.messages.get(timeout=0.5).payload.decode())
            except queue.Empty:
                break
        counts.append(len(mine))
        received.extend(mine)
    print(f"shared plain got {len(got)} in order={got == [f'm{i}' for i in range(n)]}")
    print(
        f"shared group got {len(received)} unique={len(set(received))} "
        f"every member={all(c > 0 for c in counts)}"
    )
    old.nothing(0.1)
    for c in members + [old, plain, pub]:
        c.close()


def persistent():
    # A persistent v5 and 3.1.1 session: messages published while away
    # arrive on reconnection.
    for v in (V311, V5):
        cid = f"paho-persist-{NAMES[v]}"
        kw = {"expiry": 300} if v == V5 else {}
        c = Client(cid, v, clean=True, **kw)
        c.close()
        c = Client(cid, v, clean=False, **kw)
        c.subscribe(f"interop/paho/persist/{NAMES[v]}", 2)
        c.close()
        pub = Client(f"{cid}-pub", v)
        for qos in (1, 2):
            pub.publish(f"interop/paho/persist/{NAMES[v]}", f"while away {qos}", qos)
        pub.close()
        c = Client(cid, v, clean=False, **kw)
        print(f"{NAMES[v]} persistent session_present={c.session_present}")
        for _ in range(2):
            print(f"{NAMES[v]} persistent {show(c.message())}")
        c.close()


def main():
    try:
        qos_levels()
        retained()
        properties()
        shared()
        persistent()
    except Fail as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("done")


if __name__ == "__main__":
    main()
