"""Publishing to the broker: an async context manager around aiomqtt and the outbox.

Events and summaries go through the durable outbox: `publish_event` returns once the
message is on disk, and a named connection task sends the outbox in order, removing
each message when the broker acknowledges it (QoS 1). Live frames are never queued:
sent when connected, dropped (and counted) when not. The connection task is an
explicit loop: connect, announce "online" (the Last Will says "offline"), drain; on
any broker error, wait a capped, jittered exponential backoff and connect again.
"""

import asyncio
import collections
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import random
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from hipsense.domain import (
    ALGORITHM_VERSION,
    SCHEMA_VERSION,
    CommandReply,
    CommandRequest,
    EventMessage,
    LiveFrame,
    Prescription,
    SensorSession,
    SensorState,
    Status,
    Summary,
    event_payload,
)
from hipsense.motion import Calibration, HoldEvent, RepEvent, SetEvent

from ._broker import BrokerConfig
from ._home_assistant import HomeAssistantDiscovery
from ._outbox import Outbox
from ._topics import Topics

__all__ = ["Command", "MqttPublisher", "PublisherStats"]

log = logging.getLogger("hipsense.mqtt")


class _LostConnectionIsAWarning(logging.Filter):
    """paho logs a broker that went away as an error; here it is an expected event.

    The publisher's loop reconnects with backoff and says so; an ERROR line would read as
    a failure of the gateway (and trips any alert that watches for errors).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(
            "failed to receive on socket"
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_paho_log = logging.getLogger("mqtt")
"""The client library's own log (aiomqtt's default name for it)."""
_paho_log.addFilter(_LostConnectionIsAWarning())

_LIVE_EXPIRY_S = 5


class PublisherStats:
    """Counters a dashboard or a test can read."""

    def __init__(self) -> None:
        self.connects = 0
        self.connection_failures = 0
        self.published = 0
        """Outbox messages the broker acknowledged."""
        self.rejected = 0
        """Outbox messages the broker refused (kept in the outbox's rejected table)."""
        self.live_sent = 0
        self.live_dropped = 0


_RECENT_COMMANDS = 256
"""Requests remembered to answer a redelivery without carrying it out again: far more
than arrive between a connection's loss and the broker's redelivery."""


@dataclass(eq=False)
class Command:
    """A valid command from `cmd`, waiting for the daemon to carry it out.

    The daemon calls `reply(...)` once; the publisher sends that reply to whoever asked.
    """

    request: CommandRequest
    _done: asyncio.Future[CommandReply] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future(), repr=False
    )
    _taken: bool = field(default=False, repr=False)

    def take(self) -> bool:
        """Claim the command to carry it out; False if it was already answered (expired).

        Once taken, it is never answered "not carried out": the reply waits for `reply`.
        """
        if self._done.done():
            return False
        self._taken = True
        return True

    def _expire(self, waited_s: float) -> bool:
        """Answer "not carried out" if nobody took the command; whether it did."""
        if self._taken:
            return False
        self.reply(ok=False, error=f"not carried out within {waited_s:g} s; nothing changed")
        return True

    def reply(
        self, *, ok: bool = True, session_id: str | None = None, error: str | None = None
    ) -> None:
        """Answer the command (later calls are ignored)."""
        if not self._done.done():
            self._done.set_result(
                CommandReply(
                    ok=ok,
                    command=self.request.request.command,
                    session_id=session_id,
                    error=error,
                    correlation_id=self.request.correlation_id,
                )
            )


def _new_props(*, expiry_s: int | None = None) -> Properties:
    """A publish's properties: content type, versions, expiry."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    props.UserProperty = [
        ("schema_version", SCHEMA_VERSION),
        ("algorithm_version", ALGORITHM_VERSION),
    ]
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    return props


# Shared: building them costs more than the rest of a live frame's publish. Never
# changed once built: paho reads them when it packs the message, which for a message
# queued behind the in-flight window is after later publishes were made.
_props = functools.cache(_new_props)


class MqttPublisher:
    """`async with MqttPublisher(broker, topics, outbox) as pub:` then publish.

    On a clean exit the outbox is flushed (up to `flush_timeout_s`), "offline" is
    published and the connection closed; what could not be sent stays in the outbox
    for the next start.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        topics: Topics,
        outbox: Outbox,
        *,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        publish_timeout_s: float = 5.0,
        flush_timeout_s: float = 10.0,
        command_timeout_s: float = 10.0,
        discovery: HomeAssistantDiscovery | None = None,
    ) -> None:
        self.broker = broker
        self.discovery = discovery
        """Home Assistant discovery, announced on each connection (None: off)."""
        self.topics = topics
        self.outbox = outbox
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.publish_timeout_s = publish_timeout_s
        self.flush_timeout_s = flush_timeout_s
        self.command_timeout_s = command_timeout_s
        self.stats = PublisherStats()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._conn: asyncio.Task[None] | None = None
        self._v5 = broker.protocol != "3.1.1"
        self._refused: dict[int, str] = {}
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        """Valid commands from `cmd`, in arrival order, for the daemon to carry out."""
        self._recent: collections.OrderedDict[bytes, asyncio.Future[CommandReply]] = (
            collections.OrderedDict()
        )
        """Replies to the latest requests, by `_redelivery_key`."""
        self.prescriptions: dict[str, Prescription] = {}
        """Retained per-patient prescriptions (`patients/{patient_id}/prescription`)."""

    @property
    def protocol(self) -> Literal["5", "3.1.1"]:
        """The MQTT version in use (after any fallback)."""
        return "5" if self._v5 else "3.1.1"

    def _props(self, *, expiry_s: int | None = None) -> Properties | None:
        return _props(expiry_s=expiry_s) if self._v5 else None

    @property
    def connected(self) -> bool:
        """Whether a broker connection is up now."""
        return self._client is not None

    async def __aenter__(self) -> Self:
        self._stack = contextlib.AsyncExitStack()
        tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._conn = tg.create_task(self._connection_loop(), name="hipsense-mqtt-connection")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        assert self._conn is not None
        self._closing.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._conn), self.flush_timeout_s)
        except TimeoutError:
            log.warning("mqtt: %d messages left in the outbox for next time", len(self.outbox))
        self._conn.cancel()
        await self._stack.aclose()

    # -- what the daemon calls ----------------------------------------------------

    def publish_event(
        self,
        session_id: str,
        sensor_id: str,
        event: RepEvent | HoldEvent | SetEvent | Calibration,
    ) -> EventMessage:
        """Queue an event durably (QoS 1); returns the message with its id and seq."""
        topic = self.topics.events(session_id)
        payload = event_payload(event)
        built: list[EventMessage] = []

        def make(seq: int) -> tuple[str, bytes]:
            msg = EventMessage(
                id=f"{session_id}-{seq}",
                session_id=session_id,
                seq=seq,
                sensor_id=sensor_id,
                event=payload,
            )
            built.append(msg)
            return topic, msg.model_dump_json().encode()

        self.outbox.put_sequenced(f"events/{session_id}", make)
        self._wake.set()
        return built[0]

    def publish_summary(self, summary: Summary, *, droppable: bool = False) -> None:
        """Queue a session summary durably (retained, QoS 1).

        `droppable`: a running summary that a later one supersedes, which a full outbox
        may drop rather than refuse (see `Outbox.put`).
        """
        self.outbox.put(
            self.topics.summary(summary.session_id),
            summary.model_dump_json().encode(),
            qos=1,
            retain=True,
            droppable=droppable,
        )
        self._wake.set()

    def publish_sensor_state(self, state: SensorState) -> None:
        """Queue a sensor's link state (retained, QoS 1; superseded states may drop)."""
        self.outbox.put(
            self.topics.sensor_state(state.sensor_id),
            state.model_dump_json().encode(),
            qos=1,
            retain=True,
            droppable=True,
        )
        self._wake.set()

    def publish_sensor_session(self, session: SensorSession) -> None:
        """Queue a sensor's current session (retained, QoS 1; superseded ones may drop)."""
        self.outbox.put(
            self.topics.sensor_session(session.sensor_id),
            session.model_dump_json().encode(),
            qos=1,
            retain=True,
            droppable=True,
        )
        self._wake.set()

    async def publish_live(self, frame: LiveFrame) -> bool:
        """Send a live frame now (QoS 0, expires); False if it was dropped."""
        client = self._client
        if client is None:
            self.stats.live_dropped += 1
            return False
        try:
            await client.publish(
                self.topics.live(frame.session_id),
                frame.model_dump_json().encode(),
                qos=0,
                properties=self._props(expiry_s=_LIVE_EXPIRY_S),
            )
        except aiomqtt.MqttError:
            self.stats.live_dropped += 1
            return False
        self.stats.live_sent += 1
        return True

    # -- the connection task ------------------------------------------------------

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        status = Status(state=state, gateway_id=self.topics.gateway_id)
        return status.model_dump_json().encode()

    def _client_for(self) -> aiomqtt.Client:
        b = self.broker
        user, password = b.credentials()
        client = aiomqtt.Client(
            b.host,
            b.port,
            username=user,
            password=password,
            identifier=b.client_id or f"hipsense-{self.topics.gateway_id}",
            protocol=aiomqtt.ProtocolVersion.V5 if self._v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.topics.status, self._status("offline"), qos=1, retain=True),
            keepalive=b.keepalive_s,
            tls_context=b.ssl_context(),
            timeout=self.publish_timeout_s,
            logger=_paho_log,
        )
        _watch_refusals(client, self._refused)
        return client

    async def _connection_loop(self) -> None:
        attempt = 0
        settled = False  # whether the MQTT version is known: a connection has worked
        while True:
            try:
                log.info("mqtt: connecting to %s", self.broker.address)
                async with self._client_for() as client:
                    _no_delay(client)
                    attempt = 0
                    settled = True
                    self.stats.connects += 1
                    log.info("mqtt: connected to %s:%d", self.broker.host, self.broker.port)
                    await client.publish(
                        self.topics.status,
                        self._status("online"),
                        qos=1,
                        retain=True,
                        properties=self._props(),
                        timeout=self.publish_timeout_s,
                    )
                    self._client = client
                    try:
                        await self._serve(client)
                        await client.publish(
                            self.topics.status,
                            self._status("offline"),
                            qos=1,
                            retain=True,
                            properties=self._props(),
                            timeout=self.publish_timeout_s,
                        )
                    finally:
                        self._client = None
                    return
            except aiomqtt.MqttError as exc:
                if self.broker.protocol == "auto" and not settled:
                    # A broker that only speaks 3.1.1 may answer an MQTT 5 CONNECT with
                    # an error, or (amqtt, when a Will is set) with nothing until the
                    # timeout. Until one version has worked, try the other at once.
                    self._v5 = not self._v5
                    if not self._v5:
                        log.info("mqtt: no MQTT 5 connection (%s); trying 3.1.1", exc)
                        continue
                attempt = await self._backoff(exc, attempt)
                if attempt < 0:
                    return

    async def _backoff(self, exc: aiomqtt.MqttError, attempt: int) -> int:
        """Wait before the next connection attempt; -1 when closing with nothing to send."""
        self.stats.connection_failures += 1
        if self._closing.is_set() and not len(self.outbox):
            return -1
        delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not secrecy: gateways must not reconnect in step
        attempt += 1
        log.warning("mqtt: %s; reconnecting in %.1f s (attempt %d)", exc, delay, attempt)
        await asyncio.sleep(delay)
        return attempt

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Drain the outbox while a receiver watches the connection and the `cmd` topic.

        A publish waiting for its PUBACK does not notice a dead connection by itself;
        the receiver does (the message stream ends with an error), and the task group
        then cancels the drain at once instead of after `publish_timeout_s`.
        """
        try:
            async with asyncio.TaskGroup() as tg:
                recv = tg.create_task(self._receive(client), name="hipsense-mqtt-receive")
                announce = None
                if self.discovery is not None:
                    announce = tg.create_task(
                        self.discovery.serve(functools.partial(self._publish_retained, client)),
                        name="hipsense-mqtt-discovery",
                    )
                await self._drain(client)
                recv.cancel()
                if announce is not None:
                    announce.cancel()
        except BaseExceptionGroup as group:
            mqtt_errors = group.subgroup(aiomqtt.MqttError)
            if mqtt_errors is None:
                raise
            first = mqtt_errors.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from group

    async def _receive(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.topics.cmd, qos=1)
        await client.subscribe(self.topics.prescriptions, qos=1)
        birth = self.discovery.birth_topic if self.discovery is not None else None
        if birth is not None:
            await client.subscribe(birth, qos=1)
        async with asyncio.TaskGroup() as replies:
            async for message in client.messages:
                if message.topic.matches(self.topics.cmd):
                    self._on_command(client, message, replies)
                elif birth is not None and message.topic.matches(birth):
                    assert self.discovery is not None
                    raw = message.payload if isinstance(message.payload, bytes | str) else b""
                    self.discovery.on_birth(raw)
                else:
                    self._on_prescription(message)

    def _on_prescription(self, message: aiomqtt.Message) -> None:
        patient_id = str(message.topic).split("/")[-2]
        raw = message.payload if isinstance(message.payload, bytes | str) else b""
        if not raw:  # a cleared retained message withdraws the prescription
            self.prescriptions.pop(patient_id, None)
            return
        try:
            prescription = Prescription.model_validate_json(raw)
        except ValidationError as exc:
            log.warning("mqtt: ignored the prescription of %s: %s", patient_id, _first_error(exc))
            return
        if prescription.patient_id != patient_id:
            log.warning(
                "mqtt: ignored a prescription on %s: expected patient_id %r, got %r",
                message.topic,
                patient_id,
                prescription.patient_id,
            )
            return
        self.prescriptions[patient_id] = prescription

    def _on_command(
        self, client: aiomqtt.Client, message: aiomqtt.Message, replies: asyncio.TaskGroup
    ) -> None:
        """Validate a command; a bad one gets an error reply and changes nothing."""
        raw = message.payload if isinstance(message.payload, bytes | str) else b""
        key = self._redelivery_key(message, raw)
        if key is not None and key in self._recent:
            # The broker delivered it again (QoS 1 after a reconnect): answered again
            # with the same reply, carried out once.
            replies.create_task(
                self._send_reply(client, message.properties, self._recent[key], None),
                name="hipsense-mqtt-reply",
            )
            return
        command: Command | None = None
        try:
            request = CommandRequest.model_validate_json(raw)
        except ValidationError as exc:
            reply = CommandReply(
                ok=False, error=_first_error(exc), correlation_id=_correlation_id(raw)
            )
            log.warning("mqtt: rejected command: %s", reply.error)
            done: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
            done.set_result(reply)
        else:
            command = Command(request)
            self.commands.put_nowait(command)
            done = command._done
        if key is not None:
            self._recent[key] = done
            while len(self._recent) > _RECENT_COMMANDS:
                self._recent.popitem(last=False)
        replies.create_task(
            self._send_reply(client, message.properties, done, command),
            name="hipsense-mqtt-reply",
        )

    @staticmethod
    def _redelivery_key(message: aiomqtt.Message, raw: bytes | str) -> bytes | None:
        """What makes a request the same request: its correlation data and payload.

        None without correlation data: two plain identical commands are two commands.
        """
        correlation = getattr(message.properties, "CorrelationData", None)
        if not correlation:
            return None
        body = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        return hashlib.sha256(bytes(correlation) + b"\0" + body).digest()

    async def next_command(self) -> Command:
        """The next valid command that has not expired, taken: the caller must reply."""
        while True:
            command = await self.commands.get()
            if command.take():
                return command

    async def _send_reply(
        self,
        client: aiomqtt.Client,
        props: Properties | None,
        done: asyncio.Future[CommandReply],
        command: Command | None,
    ) -> None:
        try:
            reply = await asyncio.wait_for(asyncio.shield(done), self.command_timeout_s)
        except TimeoutError:
            # Untaken, it is dropped and said so; taken, it is being carried out and its
            # own answer says what happened.
            if command is not None:
                command._expire(self.command_timeout_s)
            reply = await done
        response_topic = getattr(props, "ResponseTopic", None) if self._v5 else None
        if response_topic is not None and not self.topics.may_reply_to(response_topic):
            log.warning(
                "mqtt: command named response topic %r, which is no reply topic: replying on %s",
                response_topic[:200],
                self.topics.cmd_reply,
            )
            response_topic = None
        correlation = getattr(props, "CorrelationData", None)
        # Its own properties: the correlation data is this reply's alone (the shared
        # ones would carry it to every later publish, and to replies still queued).
        rprops = _new_props() if self._v5 else None
        if rprops is not None and correlation is not None:
            rprops.CorrelationData = correlation
        await client.publish(
            response_topic or self.topics.cmd_reply,
            reply.model_dump_json().encode(),
            qos=1,
            properties=rprops,
            timeout=self.publish_timeout_s,
        )

    async def _publish_retained(
        self, client: aiomqtt.Client, topic: str, payload: bytes
    ) -> str | None:
        """Publish retained at QoS 1 now; the broker's refusal reason, or None."""
        await client.publish(
            topic,
            payload,
            qos=1,
            retain=True,
            properties=self._props(),
            timeout=self.publish_timeout_s,
        )
        # Popped here, in this task, so a refused id never lingers for the drain to find.
        return self._refused.pop(_last_mid.get(), None)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Send the outbox in order until closing with nothing left."""
        while True:
            batch = self.outbox.peek(limit=100)
            if not batch:
                if self._closing.is_set():
                    return
                self._wake.clear()
                if self.outbox.peek(limit=1):
                    continue
                await self._wake.wait()
                continue
            for m in batch:
                await client.publish(
                    m.topic,
                    m.payload,
                    qos=m.qos,
                    retain=m.retain,
                    properties=self._props(),
                    timeout=self.publish_timeout_s,
                )
                reason = self._refused.pop(_last_mid.get(), None)
                if reason is None:
                    self.outbox.ack(m.id)
                    self.stats.published += 1
                else:
                    self.outbox.reject(m.id, reason)
                    self.stats.rejected += 1
                    log.error("mqtt: the broker refused %s: %s; kept aside", m.topic, reason)


_last_mid: contextvars.ContextVar[int] = contextvars.ContextVar("_last_mid", default=-1)
"""Message id of the last publish made in this task (paho assigns it)."""


def _no_delay(client: aiomqtt.Client) -> None:
    """Send each packet at once (TCP_NODELAY), as MQTT clients usually do.

    An event is a small write that waits for its PUBACK. With Nagle's algorithm a small
    write that follows another one not yet acknowledged waits for the broker's delayed
    TCP acknowledgement: about 40 ms on Linux, the worst rep-event latency measured.
    """
    sock = client._client.socket()
    setsockopt = getattr(sock, "setsockopt", None)  # not on a WebSocket transport
    if setsockopt is None:
        return
    with contextlib.suppress(OSError):
        setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _watch_refusals(client: aiomqtt.Client, refused: dict[int, str]) -> None:
    """Record the PUBACK reason codes that say no, which aiomqtt does not pass on.

    paho gives each publish a message id and reports the broker's reason code with it;
    wrapping its publish (to learn the id, per task) and its on_publish (to see the code)
    lets the drain tell an acknowledged message from a refused one.
    """
    paho = client._client
    publish, on_publish = paho.publish, paho.on_publish

    def publish_noting_mid(*args: Any, **kwargs: Any) -> Any:
        info = publish(*args, **kwargs)
        _last_mid.set(info.mid)
        return info

    def on_publish_noting_refusals(*args: Any) -> None:
        mid, reason = args[2], args[3]
        if getattr(reason, "is_failure", False):
            refused[mid] = str(reason)
        if on_publish is not None:
            on_publish(*args)

    paho.publish = publish_noting_mid  # type: ignore[method-assign]
    paho.on_publish = on_publish_noting_refusals


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


def _correlation_id(raw: bytes | str) -> str | None:
    """The `correlation_id` of a request that failed validation, if one can be read."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        return None
    cid = value.get("correlation_id") if isinstance(value, dict) else None
    return cid if isinstance(cid, str) and len(cid) <= 128 else None
