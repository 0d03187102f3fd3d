"""The async edge of a session: a link's items through the pipeline to the publisher.

Also what a start does about the sessions a stopped gateway left open (`close_interrupted`).
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from hipsense._errors import HipsenseError
from hipsense.exercises import load_library
from hipsense.history import History, HistoryUnavailableError, SessionRecord
from hipsense.link import SensorLink, StreamItem
from hipsense.motion import Calibration, Flag, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import (
    CalibrationPayload,
    EventMessage,
    HoldPayload,
    MqttPublisher,
    Outbox,
    OutboxFullError,
    OutboxUnavailableError,
    Prescription,
    RepPayload,
    SensorSession,
    SensorState,
    SetPayload,
    Summary,
    Topics,
    event_payload,
    utc_now,
)
from hipsense.protocol import SampleBlock
from hipsense.session import (
    PrescriptionTracker,
    SessionPipeline,
    session_against_prescription,
)

from ._sensor_session import SessionStatus

F64Array = NDArray[np.float64]

__all__ = [
    "INTERRUPTED_NOTE",
    "close_interrupted",
    "interrupted_summary",
    "run_session",
    "sensor_state",
    "storage_state",
]

log = logging.getLogger("hipsense.session")

_STATE_PERIOD_S = 5.0


class _Storage:
    """What the state folder did during one session, for the notes of its summary."""

    def __init__(self, outbox: Outbox | None, history: History | None) -> None:
        self.outbox = outbox
        self.history = history
        self.lost_before = self._lost()
        self.reason: str | None = None
        """The storage fault that made the outbox or the history hold writes in memory."""
        self.raw_paused = False

    def _lost(self) -> int:
        return (self.outbox.lost if self.outbox else 0) + (self.history.lost if self.history else 0)

    def check(self) -> None:
        """Note the storage's state now."""
        for store in (self.outbox, self.history):
            if store is not None and store.degraded is not None:
                self.reason = store.degraded
        if self.history is not None and self.history.raw_paused is not None:
            self.raw_paused = True

    def notes(self) -> list[str]:
        """Notes for the summary: what was held in memory, lost or not stored."""
        self.check()
        notes = []
        if self.reason is not None:
            held = (self.outbox.held if self.outbox else 0) + (
                self.history.held if self.history else 0
            )
            notes.append(
                f"storage: the state folder could not be written ({self.reason}); events "
                "were held in memory"
                + (f" and {held} writes still are" if held else " and written out later")
            )
        if lost := self._lost() - self.lost_before:
            notes.append(f"storage: {lost} events or history writes lost (memory queue full)")
        if self.raw_paused:
            notes.append("storage: raw samples were not stored while the disk was (nearly) full")
        return notes

    def noted(self, summary: Summary) -> Summary:
        """The summary with the storage's notes, if any."""
        notes = self.notes()
        return summary.model_copy(update={"notes": [*summary.notes, *notes]}) if notes else summary


def storage_state(outbox: Outbox | None, history: History | None) -> str | None:
    """What the sensor state says of the state folder: None while all is written to it."""
    parts = []
    if outbox is not None and outbox.degraded is not None:
        parts.append(f"outbox: {outbox.degraded}; {outbox.held} messages held in memory")
    if history is not None and history.degraded is not None:
        parts.append(f"history: {history.degraded}; {history.held} writes held in memory")
    if history is not None and history.raw_paused is not None:
        parts.append(f"raw samples not stored: {history.raw_paused}")
    lost = (outbox.lost if outbox else 0) + (history.lost if history else 0)
    if lost:
        parts.append(f"{lost} lost (memory queue full)")
    return "; ".join(parts) or None


def sensor_state(
    link: SensorLink, outbox: Outbox | None = None, history: History | None = None
) -> SensorState:
    """The retained `sensors/{id}/state` message for a link now."""
    t = link.telemetry
    return SensorState(
        sensor_id=link.sensor_id,
        connected=t.connected,
        battery_pct=t.battery_pct,
        rssi_dbm=t.rssi_dbm,
        rate_hz=t.rate_hz,
        loss_pct=round(t.loss_pct, 2),
        reconnects=t.reconnects,
        error=t.error,
        kind=t.kind,
        timing=t.timing,
        delivered_rate_hz=None if t.delivered_rate_hz is None else round(t.delivered_rate_hz, 1),
        storage=storage_state(outbox, history),
    )


async def run_session(
    link: SensorLink,
    pipeline: SessionPipeline,
    publisher: MqttPublisher | None,
    *,
    stop: asyncio.Event | None = None,
    live_period_s: float = 0.25,
    items: AsyncIterator[StreamItem] | None = None,
    history: History | None = None,
    keep_raw: bool = False,
) -> AsyncIterator[MotionEvent]:
    """Stream `link` through `pipeline`; yield each event once it is durably queued.

    Ends when the link's stream ends or `stop` is set; then the open rep and set are
    closed and the final summary is queued; the running summary is queued when the first
    samples arrive and after each batch of events that changes a count. Live frames go
    out at most every `live_period_s` of wall time (QoS 0, dropped while the broker is
    away). Pass
    `items` (the link's iterator) to run several sessions one after another on one
    stream; it is then left open. With a `history`, the session, its events and its
    angle trace are stored as they happen, and with `keep_raw` its raw samples too.
    """
    loop = asyncio.get_running_loop()
    last_seq = -1
    next_live = next_state = loop.time()
    stop = stop if stop is not None else asyncio.Event()

    sid = pipeline.session_id
    storage = _Storage(publisher.outbox if publisher is not None else None, history)
    status = SessionStatus(sensor_id=link.sensor_id, session_id=sid, exercise=pipeline.exercise_id)

    def publish_status(message: SensorSession | None) -> None:
        # Droppable, like sensor states: a full outbox drops it (counted), never raises.
        if publisher is not None and message is not None:
            publisher.publish_sensor_session(message)

    def publish(events: list[MotionEvent], *, running: bool = True) -> list[MotionEvent]:
        # `running`: follow a batch that changes a count with the running summary (not
        # the last batch, which the final summary follows).
        nonlocal last_seq
        for ev in events:
            assert isinstance(ev, RepEvent | HoldEvent | SetEvent | Calibration)
            payload: RepPayload | HoldPayload | SetPayload | CalibrationPayload | None
            if publisher is None:
                last_seq += 1
                payload = event_payload(ev)
            else:
                try:
                    msg = publisher.publish_event(sid, link.sensor_id, ev)
                    last_seq, payload = msg.seq, msg.event
                except OutboxFullError as exc:
                    # Measuring goes on; the patient is not stopped by a full queue.
                    log.error("session %s: %s not queued: %s", sid, ev, exc)
                    # The number it used up (subscribers see the gap): the history keeps
                    # what was measured under it, the next event gets the next one. With
                    # none used up, any other would be the next event's on MQTT: not kept.
                    payload = None if exc.seq is None else event_payload(ev)
                    last_seq = last_seq if exc.seq is None else exc.seq
            if history is not None and payload is not None:
                history.add_event(sid, last_seq, payload.model_dump(mode="json"))
        counted = [ev for ev in events if isinstance(ev, RepEvent | HoldEvent | SetEvent)]
        if publisher is not None and running and counted:
            # The running summary after every batch that changes a count, so a consumer
            # opened mid-set (a clinic board) reads the count from the retained summary
            # alone. After the whole batch: the pipeline has counted all of it, and
            # `last_seq` must be the seq of the last event it counts. One after reps or
            # holds only is superseded by the next, so a full outbox may drop it; the
            # one of a set's end is kept like an event.
            storage.check()
            try:
                publisher.publish_summary(
                    storage.noted(pipeline.summary(last_seq=last_seq)),
                    droppable=not any(isinstance(ev, SetEvent) for ev in counted),
                )
            except OutboxFullError as exc:
                log.error("session %s: its summary not queued: %s", sid, exc)
        publish_status(status.update(events))
        storage.check()
        return events

    raw: list[tuple[F64Array, F64Array, F64Array]] = []

    def keep_trace() -> None:
        storage.check()
        if history is not None and recorded:
            history.add_trace(sid, *pipeline.take_trace())
            if raw:
                history.add_raw(
                    sid,
                    np.concatenate([r[0] for r in raw]),
                    np.concatenate([r[1] for r in raw]),
                    np.concatenate([r[2] for r in raw]),
                )
                raw.clear()

    # A session is recorded from its first samples: a sensor that never delivers any
    # (out of range, no Bluetooth) leaves no empty "0 reps" session behind.
    recorded = False

    def record() -> None:
        nonlocal recorded
        recorded = True
        if history is not None:
            history.start(
                sid,
                sensor_id=link.sensor_id,
                exercise=pipeline.exercise_id,
                started_at=pipeline.started_at.isoformat(),
                patient_id=pipeline.patient_id,
                topic_root=publisher.topics.prefix if publisher is not None else None,
                side=pipeline.side,
                prescription=(
                    None
                    if pipeline.tracker is None
                    else pipeline.tracker.prescription.model_dump(mode="json")
                ),
            )
        if publisher is not None:
            # The first running summary, before any rep: who, what and the prescription
            # (lines with their target band) are known from the start.
            try:
                publisher.publish_summary(pipeline.summary(last_seq=last_seq), droppable=True)
            except OutboxFullError as exc:
                log.error("session %s: its summary not queued: %s", sid, exc)

    if publisher is not None:
        publisher.publish_sensor_state(sensor_state(link, publisher.outbox, history))
    publish_status(status.message())
    own_items = items is None
    if items is None:
        items = link.items()
    # Raced against each item, so a stop is seen even while the link is silent.
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            next_item = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({next_item, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if next_item not in done:
                next_item.cancel()
                # The generator runs until the cancellation lands; only then can it close.
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_item
                break
            try:
                item = next_item.result()
            except StopAsyncIteration:
                break
            if not recorded and isinstance(item, SampleBlock) and item.count:
                record()
            events = pipeline.feed(item)
            if (
                keep_raw
                and isinstance(item, SampleBlock)
                and item.acc_m_s2 is not None
                and item.gyr_rad_s is not None
            ):
                raw.append((pipeline.last_t_s, item.acc_m_s2, item.gyr_rad_s))
            for ev in publish(events):
                yield ev
            now = loop.time()
            if publisher is not None and now >= next_live:
                next_live = now + live_period_s
                frame = pipeline.take_live()
                if frame is not None:
                    await publisher.publish_live(frame)
            if now >= next_state:
                next_state = now + _STATE_PERIOD_S
                keep_trace()
                if publisher is not None:
                    publisher.publish_sensor_state(sensor_state(link, publisher.outbox, history))
    finally:
        stopped.cancel()
        if own_items:
            await items.aclose()  # type: ignore[attr-defined]
    if not recorded:
        log.warning(
            "session %s: sensor %s delivered no samples; no session recorded",
            sid,
            link.sensor_id,
        )
        if publisher is not None:
            publisher.publish_sensor_state(sensor_state(link, publisher.outbox, history))
        return
    for ev in publish(pipeline.finish(), running=False):
        yield ev
    keep_trace()
    summary = storage.noted(pipeline.summary(last_seq=last_seq, ended_at=utc_now()))
    if history is not None:
        history.finish(sid, summary.model_dump(mode="json"))
    if publisher is not None:
        try:
            publisher.publish_summary(summary)
        except OutboxFullError as exc:
            log.error("session %s: its summary not queued: %s", sid, exc)
        publisher.publish_sensor_state(sensor_state(link, publisher.outbox, history))
    publish_status(status.end())
    log.info("session %s ended: %d reps", pipeline.session_id, len(pipeline.tally.reps))


INTERRUPTED_NOTE = (
    "interrupted: hipsense stopped before the session ended (killed, crashed or a power "
    "cut); closed when it started again, at its last stored event or sample"
)
"""The note that marks the summary of an interrupted session."""


def interrupted_summary(
    record: SessionRecord, *, last_seq: int, last_sample_s: float | None = None
) -> Summary:
    """The final summary of a session left open, from what the history kept of it.

    It ended at its last event or stored sample, whichever came later. The set that was
    still open counts as a set. Against the prescription it ran under (kept in the
    history), its events are scored again: its own adherence, quality, lines and side;
    the program's running total, which needs the program's other sessions, is not known.
    """
    events = record.events
    reps = [e for e in events if e.get("kind") == "rep"]
    holds = [e for e in events if e.get("kind") == "hold"]
    sets = [e for e in events if e.get("kind") == "set"]
    times = [float(e.get("end_s", e.get("t_s", 0.0))) for e in events]
    end_s = max([*times, last_sample_s or 0.0, 0.0])
    started = datetime.fromisoformat(record.started_at)
    reps_per_set = [int(s["reps"]) for s in sets]
    closed = max((int(s["index"]) + 1 for s in sets), default=0)
    if any(int(e["set_index"]) >= closed for e in [*reps, *holds]):
        reps_per_set.append(sum(1 for r in reps if int(r["set_index"]) >= closed))
    roms = [float(r["rom_deg"]) for r in reps]
    held_s = [float(e["hold_s"]) for e in [*reps, *holds]]
    flags = Counter(f for e in [*reps, *holds] for f in e.get("flags", []))
    return Summary.model_validate(
        {
            "session_id": record.session_id,
            "patient_id": record.patient_id,
            "sensor_id": record.sensor_id,
            "exercise": record.exercise,
            "started_at": started,
            "ended_at": started + timedelta(seconds=end_s),
            "rep_count": len(reps),
            "hold_count": len(holds),
            "set_count": len(reps_per_set),
            "reps_per_set": reps_per_set,
            "mean_rom_deg": round(float(np.mean(roms)), 2) if roms else None,
            "mean_hold_s": round(float(np.mean(held_s)), 2) if held_s else None,
            "flags": dict(sorted(flags.items())),
            "last_seq": last_seq,
            "notes": [INTERRUPTED_NOTE],
            **_scored_again(record),
        }
    )


def _scored_again(record: SessionRecord) -> dict[str, Any]:
    """The session's events against its stored prescription (nothing if it had none)."""
    if record.prescription is None:
        return {}
    try:
        prescription = Prescription.model_validate(record.prescription)
        tracker = PrescriptionTracker(prescription, load_library())
        if record.exercise != "auto" and not tracker.select(record.exercise):
            return {}
        tracker.begin(record.session_id)
        for e in record.events:
            ev = _motion_event(e)
            if ev is not None:
                tracker.add(ev)
    except _BAD_ROW:
        log.exception("session %s: its events could not be scored again", record.session_id)
        return {}
    return session_against_prescription(tracker, record.session_id)


def _motion_event(e: dict[str, Any]) -> RepEvent | HoldEvent | SetEvent | None:
    """A stored event payload as the motion core's event (the fields the tracker reads)."""
    kind = e.get("kind")
    fields = {k: v for k, v in e.items() if k != "kind"}
    if kind in ("rep", "hold"):
        fields["flags"] = tuple(Flag(f) for f in fields.get("flags", ()))
        return RepEvent(**fields) if kind == "rep" else HoldEvent(**fields)
    if kind == "set":
        return SetEvent(**fields)
    return None


_BAD_ROW = (KeyError, ValueError, TypeError, ValidationError, HipsenseError)
"""What a session's bad stored data can raise while it is closed (a missing key, a value
of the wrong kind or type, an invalid summary, an unknown session): that session is
skipped, the gateway starts. Anything else is a bug, and is raised."""


class _Queued:
    """What the outbox still holds of the sessions left open: their events, their root."""

    def __init__(self, outbox: Outbox, sessions: set[str]) -> None:
        self.events: dict[str, dict[int, dict[str, Any]]] = {}
        """Event payloads by session and seq."""
        self.roots: dict[str, str] = {}
        """The topic root each session's events were queued under."""
        self.brokers: dict[str, str] = {}
        """The broker each session's events were queued for (maybe not today's)."""
        for m in outbox.messages(every_broker=True):
            parts = m.topic.rsplit("/", 3)  # {root}/sessions/{session_id}/events
            if len(parts) != 4 or parts[1::2] != ["sessions", "events"] or parts[2] not in sessions:
                continue
            try:
                msg = EventMessage.model_validate_json(m.payload)
            except ValidationError:
                continue
            self.roots[msg.session_id] = parts[0]
            self.brokers[msg.session_id] = m.broker
            self.events.setdefault(msg.session_id, {})[msg.seq] = msg.event.model_dump(mode="json")


def _close(
    history: History, outbox: Outbox, sid: str, queued: dict[int, dict[str, Any]]
) -> tuple[Summary, SessionRecord]:
    stored = history.event_seqs(sid)
    for seq, payload in sorted(queued.items()):
        if seq not in stored:
            history.add_event(sid, seq, payload)
            stored.add(seq)
    # The publisher numbers a session's events in the stream "events/{session_id}".
    last_seq = max(outbox.next_seq(f"events/{sid}") - 1, max(stored, default=-1))
    record = history.load(sid)
    summary = interrupted_summary(
        record, last_seq=last_seq, last_sample_s=history.last_sample_s(sid)
    )
    return summary, record


def close_interrupted(history: History, outbox: Outbox, topics: Topics) -> list[Summary]:
    """Close the sessions a gateway left open when it stopped without ending them.

    Called on start, before any session begins, by the one gateway using the state folder
    (`prepare` locks it: another's live session is not to be closed). Each session the
    history has without an end is ended at its last stored event or sample, marked
    interrupted, and its final summary queued in the outbox (retained, after the events
    the stopped gateway left there, so it reaches the broker like any message), on the
    session's own topic tree (the root it was started under, which `topics` may no
    longer name). Events the gateway had queued but not yet stored in the history (it was
    killed in between) are stored first, so the counts are those of the events
    delivered. While the history or the outbox cannot be read, nothing is closed: a later
    start does it, with everything.
    """
    try:
        open_ids = history.unfinished()
    except HistoryUnavailableError as exc:
        log.warning("%s: the sessions left open will be closed on a later start", exc)
        return []
    if not open_ids:
        return []
    try:
        queued = _Queued(outbox, set(open_ids))
    except OutboxUnavailableError as exc:
        log.warning("%s: the sessions left open will be closed on a later start", exc)
        return []
    summaries = []
    for sid in open_ids:
        try:
            summary, record = _close(history, outbox, sid, queued.events.get(sid, {}))
        except _BAD_ROW:  # one bad row must not keep the gateway from starting
            log.exception("session %s: left open, and could not be closed", sid)
            continue
        # On the session's own tree: the root it was started under, else the one its
        # queued events went to, else (a history from before roots were kept) today's.
        root = record.topic_root or queued.roots.get(sid)
        topic = f"{root}/sessions/{sid}/summary" if root else topics.summary(sid)
        try:
            # To the broker its events went to: its subscribers have the rest of it.
            outbox.put(
                topic,
                summary.model_dump_json().encode(),
                retain=True,
                broker=queued.brokers.get(sid),
            )
        except OutboxFullError as exc:
            log.error("session %s: its summary not queued: %s", sid, exc)
        history.finish(sid, summary.model_dump(mode="json"), interrupted=True)
        log.warning(
            "session %s was left open by a gateway that stopped without ending it: closed "
            "as interrupted, ended %s, %d reps, %d holds",
            sid,
            summary.ended_at,
            summary.rep_count,
            summary.hold_count,
        )
        summaries.append(summary)
    return summaries
