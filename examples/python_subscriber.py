#!/usr/bin/env python3
"""A revokd subscriber in Python: keeps a local denylist in sync with Redis.

It follows docs/subscribing.md ("The protocol") step by step, and makes the
same decisions as src/follow.rs, so a resource server in any language can
copy its shape:

1. SUBSCRIBE to ``{<prefix>}:events`` first (nothing published from now on is
   missed: it waits in the connection);
2. read a snapshot with src/store/lua/snapshot.lua: seq, head, the log a
   follower at our position needs, every rule. First sync: take the rules.
   The log continues our head: apply it. Otherwise the history forked: apply
   the store's events after the fork point, then MERGE the rules (never
   replace: a rule leaves only by a proven REMOVE or by expiry);
3. apply events: ``seq <= last`` is a duplicate unless we hold another head
   for it (fork); ``seq == last + 1`` applies when its ``prev_head`` is our
   head (else fork); ``seq > last + 1`` is a gap. Fork and gap -> resync;
4. every second, ``MGET {<prefix>}:seq {<prefix>}:head``: lower, or equal with
   another head, is a fork; equal proves the denylist in sync; ahead of it
   twice in a row means events were lost ("behind"). All three but "in
   sync" -> resync;
5. on any error, reconnect with capped exponential backoff and resync.

Events are ``revokd.v1.RevocationEvent`` protobuf messages
(proto/revokd/v1/events.proto), decoded by hand below; a generated class from
``protoc --python_out`` works just as well.

Needs redis-py (``python3 -m pip install redis``). Run from the repository:

    python3 examples/python_subscriber.py --redis redis://127.0.0.1:6379

It prints one JSON line per change of state (snapshot, event, resync) so a
test or a human can follow it.
"""

import argparse
import collections
import json
import os
import random
import re
import sys
import time

import redis

# The snapshot script, read from the repository (KEYS: rules, seq, head, log;
# ARGV: our last seq or "none", our head).
SNAPSHOT_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "src", "store", "lua", "snapshot.lua")
# Recent (seq, head) positions kept; the store's log is as long.
HISTORY_WINDOW = 10_000

OP_ADD, OP_REMOVE = 1, 2
ALL = "all"
HEAD = re.compile(r"^([0-9a-f]{40})?$")  # empty: the genesis head (seq 0)


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
             "expires_at": 0, "published_at_ms": 0, "all": False,
             "head": "", "prev_head": ""}
    varints = {1: "seq", 2: "op", 4: "revoked_before", 5: "expires_at",
               6: "published_at_ms"}
    strings = {3: "key", 8: "head", 9: "prev_head"}
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            if field in varints:
                event[varints[field]] = value
            elif field == 7:
                event["all"] = value != 0
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            chunk = buf[pos:pos + length]
            pos += length
            if field in strings:
                event[strings[field]] = chunk.decode("utf-8")
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
    if event["seq"] == 0 or event["op"] not in (OP_ADD, OP_REMOVE):
        raise ValueError("invalid event")
    if not (HEAD.match(event["head"]) and HEAD.match(event["prev_head"])):
        raise ValueError("a head is not 40 lowercase hex digits")
    return event


def chained(events):
    """Whether each event follows the one before (seq + 1, prev_head)."""
    return all(b["seq"] == a["seq"] + 1 and b["prev_head"] == a["head"]
               for a, b in zip(events, events[1:]))


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

    def apply_event(self, event):
        if event["op"] == OP_ADD:
            before = ALL if event["all"] else event["revoked_before"]
            self.apply(event["key"], before, event["expires_at"])
        else:
            self.rules.pop(event["key"], None)

    def expire(self, now):
        for key in [k for k, (_, exp) in self.rules.items() if exp <= now]:
            del self.rules[key]

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
    def __init__(self, url, prefix, check_interval=1.0, lua=SNAPSHOT_LUA):
        tag = "{%s}" % prefix
        self.keys = [tag + ":rules", tag + ":seq", tag + ":head", tag + ":log"]
        self.channel = tag + ":events"
        self.url = url
        self.check_interval = check_interval
        with open(lua) as script:
            self.snapshot_lua = script.read()
        self.denylist = Denylist()
        self.synced = False
        self.last_seq, self.head = 0, ""
        # (seq, head) of our last positions, consecutive seqs, oldest first.
        self.recent = collections.deque(maxlen=HISTORY_WINDOW)
        self.awaited = None       # (seq, head, seen_at) a check saw ahead
        self.in_sync_at = None    # when the denylist last proved in sync

    # -- where we stand in the history --

    def advance(self, seq, head):
        if self.recent and self.recent[-1][0] + 1 != seq:
            self.recent.clear()
        self.recent.append((seq, head))
        self.last_seq, self.head = seq, head

    def recent_head(self, seq):
        """The head we held at `seq`, if it is recent enough to be known."""
        if not self.recent or not 0 <= seq - self.recent[0][0] < len(self.recent):
            return None
        return self.recent[seq - self.recent[0][0]][1]

    def staleness(self):
        """Seconds since the denylist last proved in sync (inf: never)."""
        return float("inf") if self.in_sync_at is None else time.time() - self.in_sync_at

    # -- one session --

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
        self.sync(client)
        next_check = time.monotonic() + self.check_interval
        while True:
            message = pubsub.get_message(timeout=min(self.check_interval, 0.1))
            if message and message["type"] == "message":
                self.on_event(message["data"])
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_interval
                seq, head = client.mget(self.keys[1], self.keys[2])
                self.on_check(int(seq or 0), (head or b"").decode())
                self.denylist.expire(time.time() - 2)

    def sync(self, client):
        self.awaited = None
        position = [self.last_seq, self.head] if self.synced else ["none", ""]
        reply = client.eval(self.snapshot_lua, 4, *self.keys, *position)
        seq, head = int(reply[0]), reply[1].decode()
        try:
            log = [decode_event(entry) for entry in reply[2]]
        except (ValueError, UnicodeDecodeError):
            log = None  # one undecodable entry and the log proves nothing
        if log is not None and not chained(log):
            log = None
        rules = {reply[i].decode(): parse_stored_rule(reply[i + 1].decode())
                 for i in range(3, len(reply), 2)}

        keep_until, events = None, log or []
        after = [e for e in events if e["seq"] > self.last_seq]  # ours onward
        if not self.synced:
            relation = "first"
        elif (seq, head) == (self.last_seq, self.head):
            relation, keep_until, events = "continued", self.last_seq, []
        elif (after and after[0]["seq"] == self.last_seq + 1
              and after[0]["prev_head"] == self.head
              and (after[-1]["seq"], after[-1]["head"]) == (seq, head)):
            # The log leads from our head to the store's: apply it.
            relation, keep_until, events = "continued", self.last_seq, after
        else:
            relation, keep_until, events = self.fork_point(events)
        if relation in ("continued", "forked"):
            for event in events:  # REMOVEs included: proven to follow ours
                self.denylist.apply_event(event)
        if relation != "continued":
            # Merge, never replace: a rule the store forgot stays.
            for key, (before, expires_at) in rules.items():
                self.denylist.apply(key, before, expires_at)
        # Adopt the store's position: our positions up to the shared point,
        # then the store's events after it, then its seq and head.
        kept = [p for p in self.recent if keep_until is not None and p[0] <= keep_until]
        self.recent.clear()
        self.recent.extend(kept)
        for event in events:
            if event["seq"] < seq:
                self.advance(event["seq"], event["head"])
        self.advance(seq, head)
        self.synced = True
        self.in_sync_at = time.time()
        emit(snapshot=seq, head=head, relation=relation, rules=self.dump())

    def fork_point(self, log):
        """("forked", shared seq, the log's events after it), or
        ("unproven", None, log) when no shared position is proven."""
        for index in range(len(log) - 1, -1, -1):
            if self.recent_head(log[index]["seq"]) == log[index]["head"]:
                return "forked", log[index]["seq"], log[index + 1:]
        if log and self.recent_head(log[0]["seq"] - 1) == log[0]["prev_head"]:
            return "forked", log[0]["seq"] - 1, log
        return "unproven", None, log

    def on_event(self, payload):
        try:
            event = decode_event(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise Resync("decode: %s" % error)
        seq = event["seq"]
        if seq <= self.last_seq:
            held = self.recent_head(seq)
            if held is not None and held != event["head"]:
                raise Resync("fork: event %d has another head" % seq)
            return  # a duplicate
        if seq != self.last_seq + 1:
            raise Resync("gap: %d after %d" % (seq, self.last_seq))
        if event["prev_head"] != self.head:
            raise Resync("fork: event %d does not follow our head" % seq)
        self.denylist.apply_event(event)
        self.advance(seq, event["head"])
        emit(applied=seq, op="add" if event["op"] == OP_ADD else "remove",
             key=event["key"], rules=self.dump())

    def on_check(self, seq, head):
        now = time.time()
        if seq < self.last_seq or (seq == self.last_seq and head != self.head):
            raise Resync("fork: redis at %d, we at %d" % (seq, self.last_seq))
        if self.awaited is not None:
            target, target_head, seen_at = self.awaited
            self.awaited = None
            if self.last_seq < target:
                raise Resync("behind")
            held = self.recent_head(target)
            if held is not None and held != target_head:
                raise Resync("fork: passed %d on another head" % target)
            self.in_sync_at = max(self.in_sync_at or 0, seen_at)
        if seq == self.last_seq:
            self.in_sync_at = now
        else:
            self.awaited = (seq, head, now)

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
    parser.add_argument("--snapshot-lua", default=SNAPSHOT_LUA)
    args = parser.parse_args()
    try:
        Subscriber(args.redis, args.prefix, args.check_interval,
                   args.snapshot_lua).run_forever()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
