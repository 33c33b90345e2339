#!/usr/bin/env python3
"""A revokd subscriber in Python: keeps a local denylist in sync with Redis.

It follows docs/subscribing.md exactly, so a resource server in any language
can copy its shape:

1. SUBSCRIBE to ``{<prefix>}:events`` first (nothing published from now on is
   missed: it waits in the connection);
2. read a snapshot (seq + every rule) atomically with the Lua script below;
3. apply events in seq order: ``seq <= last`` is a duplicate (ignored),
   ``seq == last + 1`` is applied, anything else is a gap -> resync;
4. every second, ``GET {<prefix>}:seq``: equal to the last applied seq proves
   the denylist in sync; ahead of it twice in a row, or behind it (Redis lost
   data), means resync;
5. on any error, reconnect with capped exponential backoff and resync.

Events are ``revokd.v1.RevocationEvent`` protobuf messages
(proto/revokd/v1/events.proto). The message is small enough to decode by hand
(below); a generated class from ``protoc --python_out`` works just as well.

Needs redis-py (``python3 -m pip install redis``). Run:

    python3 examples/python_subscriber.py --redis redis://127.0.0.1:6379

It prints one JSON line per change of state (snapshot, event, resync) so a
test or a human can follow it.
"""

import argparse
import json
import random
import sys
import time

import redis

# The snapshot: seq, epoch and every rule, read in one atomic step. Same as
# src/store/lua/snapshot.lua.
SNAPSHOT_LUA = """
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = redis.call('GET', KEYS[3])
local result = {seq, epoch}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do
  result[#result + 1] = all[i]
end
return result
"""

OP_ADD, OP_REMOVE = 1, 2
ALL = "all"


# --- protobuf, by hand -------------------------------------------------------

def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def decode_event(buf):
    """revokd.v1.RevocationEvent -> dict. Unknown fields are skipped (v1
    readers must ignore fields they do not know)."""
    event = {"seq": 0, "op": 0, "key": "", "revoked_before": 0,
             "expires_at": 0, "published_at_ms": 0, "all": False}
    names = {1: "seq", 2: "op", 4: "revoked_before", 5: "expires_at",
             6: "published_at_ms"}
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            if field in names:
                event[names[field]] = value
            elif field == 7:
                event["all"] = value != 0
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            chunk = buf[pos:pos + length]
            pos += length
            if field == 3:
                event["key"] = chunk.decode("utf-8")
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
    if event["seq"] == 0 or event["op"] not in (OP_ADD, OP_REMOVE):
        raise ValueError("invalid event")
    return event


# --- the denylist ------------------------------------------------------------

class Denylist:
    """Rules by key: key -> (revoked_before: int or ALL, expires_at)."""

    def __init__(self):
        self.rules = {}

    def apply(self, key, revoked_before, expires_at):
        held = self.rules.get(key)
        if held is not None:
            # Merge: the larger of each field; ALL beats any iat.
            old_before, old_expires = held
            if ALL in (old_before, revoked_before):
                revoked_before = ALL
            else:
                revoked_before = max(old_before, revoked_before)
            expires_at = max(old_expires, expires_at)
        self.rules[key] = (revoked_before, expires_at)

    def remove(self, key):
        self.rules.pop(key, None)

    def is_revoked(self, jti, sid, sub, client_id, iat, now=None):
        """Whether a verified token with these claims is revoked."""
        now = time.time() if now is None else now
        keys = ["jti:" + jti, "client:" + client_id]
        if sid:
            keys.append("sid:" + sid)
        if sub:
            keys += ["sub:" + sub, "subclient:%s/%s" % (sub, client_id)]
        for key in keys:
            rule = self.rules.get(key)
            if rule is None:
                continue
            before, expires_at = rule
            if now < expires_at and (before == ALL or iat <= before):
                return True
        return False


def parse_stored_rule(value):
    """A stored rule is '<revoked_before or all>:<expires_at>'."""
    before, expires_at = value.rsplit(":", 1)
    return (ALL if before == ALL else int(before)), int(expires_at)


# --- the subscriber ----------------------------------------------------------

class Resync(Exception):
    pass


def emit(**fields):
    print(json.dumps(fields, sort_keys=True), flush=True)


class Subscriber:
    def __init__(self, url, prefix, check_interval=1.0):
        tag = "{%s}" % prefix
        self.rules_key = tag + ":rules"
        self.seq_key = tag + ":seq"
        self.epoch_key = tag + ":epoch"
        self.channel = tag + ":events"
        self.url = url
        self.check_interval = check_interval
        self.denylist = Denylist()
        self.last_seq = 0
        self.epoch = None

    def session(self):
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        pubsub.subscribe(self.channel)
        # Wait for the subscription to be confirmed before the snapshot.
        deadline = time.monotonic() + 5
        while True:
            message = pubsub.get_message(timeout=1.0)
            if message and message["type"] == "subscribe":
                break
            if time.monotonic() > deadline:
                raise Resync("subscribe not confirmed")
        self.apply_snapshot(client)
        awaited = None
        next_check = time.monotonic() + self.check_interval
        while True:
            message = pubsub.get_message(timeout=min(self.check_interval, 0.1))
            if message and message["type"] == "message":
                self.apply_event(message["data"])
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_interval
                seq = int(client.get(self.seq_key) or 0)
                if seq < self.last_seq:
                    raise Resync("reset")
                if seq == self.last_seq:
                    awaited = None
                elif awaited is not None and self.last_seq < awaited:
                    raise Resync("behind")
                else:
                    awaited = seq

    def apply_snapshot(self, client):
        reply = client.eval(SNAPSHOT_LUA, 3, self.rules_key, self.seq_key,
                            self.epoch_key)
        seq, epoch = int(reply[0]), reply[1]
        fields = reply[2:]
        rules = {}
        for i in range(0, len(fields), 2):
            key = fields[i].decode("utf-8")
            rules[key] = parse_stored_rule(fields[i + 1].decode("utf-8"))
        epoch = epoch.decode("utf-8") if epoch else None
        if epoch is not None and epoch == self.epoch:
            # Same dataset: the snapshot is complete, it replaces the rules.
            self.denylist.rules = rules
        else:
            # First sync, or Redis lost its data: merge, so nothing revoked
            # comes back to life.
            for key, (before, expires_at) in rules.items():
                self.denylist.apply(key, before, expires_at)
        self.epoch = epoch
        self.last_seq = seq
        emit(snapshot=seq, rules=self.dump())

    def apply_event(self, payload):
        try:
            event = decode_event(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise Resync("decode: %s" % error)
        if event["seq"] <= self.last_seq:
            return
        if event["seq"] != self.last_seq + 1:
            raise Resync("gap: %d after %d" % (event["seq"], self.last_seq))
        if event["op"] == OP_ADD:
            before = ALL if event["all"] else event["revoked_before"]
            self.denylist.apply(event["key"], before, event["expires_at"])
            op = "add"
        else:
            self.denylist.remove(event["key"])
            op = "remove"
        self.last_seq = event["seq"]
        emit(applied=event["seq"], op=op, key=event["key"],
             rules=self.dump())

    def dump(self):
        return {key: [before, expires_at]
                for key, (before, expires_at) in sorted(self.denylist.rules.items())}

    def run_forever(self, min_backoff=0.05, max_backoff=5.0):
        failures = 0
        while True:
            started = time.monotonic()
            try:
                self.session()
            except (Resync, redis.RedisError, OSError) as reason:
                emit(resync=str(reason) or type(reason).__name__)
            if time.monotonic() - started > max_backoff:
                failures = 0
            delay = min(max_backoff, min_backoff * 2 ** min(failures, 16))
            failures += 1
            time.sleep(delay * (1 - random.random() * 0.5))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--prefix", default="revokd")
    parser.add_argument("--check-interval", type=float, default=1.0)
    args = parser.parse_args()
    try:
        Subscriber(args.redis, args.prefix, args.check_interval).run_forever()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
