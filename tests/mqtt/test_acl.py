"""Every account's rights on every topic of the contract, on mosquitto with the shipped ACL.

RIGHTS is what the comments of configs/mosquitto/hipsense.acl (and docs/mqtt.md) promise:
for each topic family of `Topics` (one row each), what each account may do on a
gateway's prefix. The test runs configs/mosquitto/hipsense.conf and hipsense.acl on a
real mosquitto, tries every cell over MQTT 5 and compares.

- Publish: a QoS 1 message. mosquitto answers a refused one with PUBACK "Not authorized"
  (over MQTT 3.1.1 it would drop it without a word), and an observer that may read
  everything tells whether it arrived; both must agree.
- Subscribe: the family's topic filter. mosquitto 2.0 grants every SUBSCRIBE and checks
  the ACL on each message it would deliver, so a cell is allowed only when the SUBACK
  grants the filter and a message the observer publishes there arrives.

The observer is one account appended to the test's copy of the ACL: mosquitto keeps a
`user` section's lines to that user, so it changes no one else's rights.
"""

import inspect
import re
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from hipsense.mqtt import Topics
from tests.brokers import Mosquitto
from tests.mqtt.test_broker_security import CONFIGS, start_secure_broker

ACL = CONFIGS / "hipsense.acl"
"""The ACL under test (a module attribute, so it can be pointed at another file)."""

OBSERVER = "test-observer"
PASSWORDS = {
    "gw-1": "gw-1-secret",
    "gw-2": "gw-2-secret",
    "dashboard": "dash-secret",
    "backend": "backend-secret",
    OBSERVER: "observer-secret",
}
ANONYMOUS = "anonymous"
"""A client without user name (refused while hipsense.conf says allow_anonymous false)."""

# Columns: account@prefix, where the prefix is hipsense/v1/{that name}: a gateway's own
# (gw-1@gw-1), another gateway's (@gw-2), or the one a non-gateway account would have
# under its own name, which consumers would take for a gateway's (dashboard@dashboard).
# P: may publish there; S: may subscribe and gets the messages; -: neither.
RIGHTS = """
family         gw-1@gw-1  gw-1@gw-2  dashboard@dashboard  dashboard@gw-2  backend@backend  backend@gw-2  anonymous@gw-2
status         P          -          -                    S               -                S             -
sensor_state   P          -          -                    S               -                S             -
sensor_session P          -          -                    S               -                S             -
live           P          -          -                    S               -                S             -
events         P          -          -                    S               -                S             -
summary        P          -          -                    S               -                S             -
cmd            S          -          -                    PS              -                S             -
cmd_reply      P          -          -                    S               -                S             -
cmd_reply/any  P          -          -                    S               -                S             -
prescription   S          -          -                    PS              -                S             -
"""  # noqa: E501

_ID = "id-1"
"""The id in every topic with one (sensor, session, patient; the reply's own level)."""


def contract_families() -> dict[str, Callable[[Topics], str]]:
    """Each topic of `Topics` (the contract) by name, as a function of a gateway's Topics.

    Filters (`prescriptions`) are a way to read a family, not a family; `cmd_reply/any`
    is the MQTT 5 response topic under `cmd_reply` that the ACL and docs/mqtt.md allow.
    """

    def with_id(method: Callable[[Topics, str], str]) -> Callable[[Topics], str]:
        return lambda topics: method(topics, _ID)

    sample = Topics("gw-1")
    families: dict[str, Callable[[Topics], str]] = {}
    for name, member in vars(Topics).items():
        if name.startswith("_") or name == "prefix":
            continue
        if isinstance(member, property) and member.fget is not None:
            families[name] = member.fget
        elif inspect.isfunction(member):
            families[name] = with_id(member)
        else:
            continue
        topic = families[name](sample)
        if not isinstance(topic, str) or any(c in topic for c in "+#"):
            del families[name]  # a check such as `may_reply_to`, or a filter
    families["cmd_reply/any"] = lambda topics: f"{topics.cmd_reply}/{_ID}"
    return families


FAMILIES = contract_families()


def topic_filter(topic: str) -> str:
    """How a consumer reads a family: its id levels as `+`."""
    return "/".join("+" if level == _ID else level for level in topic.split("/"))


def parse_rights(text: str) -> dict[tuple[str, str], str]:
    """{(column, family): "P" / "S" / "PS" / "-"} from a table like RIGHTS."""
    header, *rows = (line.split() for line in text.strip().splitlines())
    table: dict[tuple[str, str], str] = {}
    for family, *cells in rows:
        assert len(cells) == len(header) - 1, f"row {family}: {len(cells)} cells"
        for column, cell in zip(header[1:], cells, strict=True):
            assert cell in {"P", "S", "PS", "-"}, f"{column} {family}: {cell!r}"
            table[column, family] = cell
    return table


def columns(table: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """(account, prefix owner) of each column, in order."""
    seen = dict.fromkeys(column for column, _ in table)
    return [(a, p) for a, p in (c.split("@") for c in seen)]


def render(table: dict[tuple[str, str], str]) -> str:
    """The table as RIGHTS writes it (for failure messages)."""
    heads = list(dict.fromkeys(c for c, _ in table))
    rows = [["family", *heads]]
    rows += [[f, *(table[c, f] for c in heads)] for f in dict.fromkeys(f for _, f in table)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads) + 1)]
    lines = ("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


def acl_accounts(acl: str) -> set[str]:
    """The accounts with a `user` section: every other account is a gateway."""
    return set(re.findall(r"^user\s+(\S+)\s*$", acl, re.MULTILINE))


def test_the_table_covers_the_contract_and_every_account() -> None:
    table = parse_rights(RIGHTS)
    # A topic added to the contract needs its row (and a thought about who may use it).
    assert {f for _, f in table} == set(FAMILIES)
    assert set(FAMILIES) >= {"status", "sensor_state", "events", "summary", "cmd"}
    # Every non-gateway account of the ACL has columns, on a gateway's prefix and on
    # its own name; so does a gateway.
    cols = set(columns(table))
    for account in acl_accounts(ACL.read_text()):
        assert {(account, account), (account, "gw-2")} <= cols, account
    assert {("gw-1", "gw-1"), ("gw-1", "gw-2")} <= cols
    assert all(a in PASSWORDS or a == ANONYMOUS for a, _ in cols)


@dataclass
class Account:
    """One MQTT 5 client over TLS, recording what the broker answers and delivers."""

    name: str
    client: mqtt.Client
    connack: ReasonCode | None = None
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    received: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        return info.mid

    def subscribe(self, filters: list[str]) -> int:
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        assert mid is not None
        return mid


def _wait(cond: Callable[[], object], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, Path]]:
    """The shipped conf and ACL, plus the observer; and the CA to trust."""
    tmp = tmp_path_factory.mktemp("acl")
    acl = ACL.read_text() + f"\n# Added by tests/mqtt/test_acl.py.\nuser {OBSERVER}\n"
    acl += "topic readwrite #\n"
    mosquitto = start_secure_broker(tmp, acl=acl, passwords=PASSWORDS)
    try:
        yield mosquitto, tmp / "certs" / "ca.crt"
    finally:
        mosquitto.stop()


@pytest.fixture
def connect(broker: tuple[Mosquitto, Path]) -> Iterator[Callable[[str], Account | None]]:
    """Log in as an account; None when the broker refuses it (not authorized)."""
    mosquitto, ca = broker
    opened: list[mqtt.Client] = []

    def login(name: str) -> Account | None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"acl-test-{name}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if name != ANONYMOUS:
            client.username_pw_set(name, PASSWORDS[name])
        client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        account = Account(name, client)

        def on_connect(c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
            account.connack = rc

        def on_publish(c: mqtt.Client, u: Any, mid: int, rc: ReasonCode, p: Any) -> None:
            account.pubacks[mid] = rc

        def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], p: Any) -> None:
            account.subacks[mid] = rcs

        def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
            account.received.append((m.topic, bytes(m.payload)))

        client.on_connect = on_connect
        client.on_publish = on_publish
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        opened.append(client)
        assert _wait(lambda: account.connack is not None, 5), f"{name}: no CONNACK"
        assert account.connack is not None
        if account.connack.is_failure:
            assert str(account.connack) == "Not authorized", (name, str(account.connack))
            return None
        return account

    yield login
    for client in opened:
        client.disconnect()
        client.loop_stop()


def test_every_account_has_exactly_the_rights_the_acl_comments_promise(
    connect: Callable[[str], Account | None],
) -> None:
    expected = parse_rights(RIGHTS)
    cols = columns(expected)
    observer = connect(OBSERVER)
    assert observer is not None
    mid = observer.subscribe(["#"])
    assert _wait(lambda: mid in observer.subacks, 5)
    logins = {a: connect(a) for a in dict.fromkeys(a for a, _ in cols)}
    clients = {a: c for a, c in logins.items() if c is not None}
    tried = [(a, o) for a, o in cols if a in clients]  # the others cannot even log in

    # Each account subscribes to every family's filter on each prefix of its columns...
    sub_mids = {
        (a, o): clients[a].subscribe([topic_filter(f(Topics(o))) for f in FAMILIES.values()])
        for a, o in tried
    }
    assert _wait(lambda: all(m in clients[a].subacks for (a, _), m in sub_mids.items()), 5)

    # ... and publishes on every one of them.
    def written(account: str, owner: str, family: str) -> bytes:
        return f"from {account} on {owner} {family}".encode()

    pub_mids = {
        (a, o, f): clients[a].publish(topic_of(Topics(o)), written(a, o, f))
        for a, o in tried
        for f, topic_of in FAMILIES.items()
    }
    # The observer publishes on every family of every prefix, for the subscribers.
    sent = {
        (o, f): f"to {o} {f}".encode() for o in dict.fromkeys(o for _, o in cols) for f in FAMILIES
    }
    observer_mids = [observer.publish(FAMILIES[f](Topics(o)), p) for (o, f), p in sent.items()]

    def acked() -> bool:
        return all(m in observer.pubacks for m in observer_mids) and all(
            m in clients[a].pubacks for (a, _, _), m in pub_mids.items()
        )

    assert _wait(acked, 5), "PUBACKs missing"
    assert not any(observer.pubacks[m].is_failure for m in observer_mids)
    # mosquitto queues a message to every subscriber as it takes it in: once the observer
    # has its own back, the others' are on their way.
    assert _wait(lambda: {p for _, p in observer.received} >= set(sent.values()), 5)

    def delivered(account: str, owner: str, family: str) -> bool:
        return any(p == sent[owner, family] for _, p in clients[account].received)

    # Wait for what the table says arrives; then a moment for what it says does not.
    promised = [(a, o, f) for a, o in tried for f in FAMILIES if "S" in expected[f"{a}@{o}", f]]
    _wait(lambda: all(delivered(*cell) for cell in promised), 2)
    time.sleep(0.2)

    observed = dict.fromkeys(expected, "-")
    why = dict.fromkeys(observed, "refused at CONNECT")
    at_observer = {p for _, p in observer.received}
    for a, o in tried:
        for index, (f, topic_of) in enumerate(FAMILIES.items()):
            puback = clients[a].pubacks[pub_mids[a, o, f]]
            arrived = written(a, o, f) in at_observer
            # Over MQTT 5 mosquitto says what it drops; both ways must agree.
            assert arrived != puback.is_failure, (a, o, f, str(puback))
            suback = clients[a].subacks[sub_mids[a, o]][index]
            received = delivered(a, o, f) and not suback.is_failure
            observed[f"{a}@{o}", f] = ("P" if arrived else "") + ("S" if received else "") or "-"
            why[f"{a}@{o}", f] = (
                f"{topic_of(Topics(o))}: PUBACK {puback}, {'arrived' if arrived else 'dropped'}; "
                f"SUBACK {suback}, {'received' if received else 'nothing arrived'}"
            )

    wrong = [
        f"{cell} {f}: ACL comments say {want}, broker did {observed[cell, f]} ({why[cell, f]})"
        for (cell, f), want in expected.items()
        if observed[cell, f] != want
    ]
    assert not wrong, (
        f"{len(wrong)} cells differ:\n" + "\n".join(wrong) + "\n\nobserved:\n" + render(observed)
    )


def test_the_backend_reads_with_a_shared_subscription(
    connect: Callable[[str], Account | None],
) -> None:
    observer, backend = connect(OBSERVER), connect("backend")
    assert observer is not None
    assert backend is not None
    topics = Topics("gw-2")
    mid = backend.subscribe([f"$share/session-store/{topic_filter(topics.events(_ID))}"])
    assert _wait(lambda: mid in backend.subacks, 5)
    assert not backend.subacks[mid][0].is_failure
    observer.publish(topics.events("s-1"), b"shared")
    assert _wait(lambda: (topics.events("s-1"), b"shared") in backend.received, 5)
