"""The async edge of a session: a link's items through the pipeline to the publisher."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np
from numpy.typing import NDArray

from hipsense.history import History
from hipsense.link import SensorLink, StreamItem
from hipsense.motion import Calibration, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import MqttPublisher, OutboxFullError, SensorState, event_payload, utc_now
from hipsense.protocol import SampleBlock
from hipsense.session import SessionPipeline

F64Array = NDArray[np.float64]

__all__ = ["run_session", "sensor_state"]

log = logging.getLogger("hipsense.session")

_STATE_PERIOD_S = 5.0


def sensor_state(link: SensorLink) -> SensorState:
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
    closed and the final summary is queued. Live frames go out at most every
    `live_period_s` of wall time (QoS 0, dropped while the broker is away). Pass
    `items` (the link's iterator) to run several sessions one after another on one
    stream; it is then left open. With a `history`, the session, its events and its
    angle trace are stored as they happen, and with `keep_raw` its raw samples too.
    """
    loop = asyncio.get_running_loop()
    last_seq = -1
    next_live = next_state = loop.time()
    stop = stop if stop is not None else asyncio.Event()

    sid = pipeline.session_id

    def publish(events: list[MotionEvent]) -> list[MotionEvent]:
        nonlocal last_seq
        for ev in events:
            assert isinstance(ev, RepEvent | HoldEvent | SetEvent | Calibration)
            if publisher is None:
                last_seq += 1
                payload = event_payload(ev)
            else:
                try:
                    msg = publisher.publish_event(sid, link.sensor_id, ev)
                    last_seq, payload = msg.seq, msg.event
                    if isinstance(ev, SetEvent):
                        publisher.publish_summary(pipeline.summary(last_seq=last_seq))
                except OutboxFullError as exc:
                    # Measuring goes on; the patient is not stopped by a full queue.
                    log.error("session %s: %s not queued: %s", sid, ev, exc)
                    last_seq += 1
                    payload = event_payload(ev)
            if history is not None:
                history.add_event(sid, last_seq, payload.model_dump(mode="json"))
        return events

    raw: list[tuple[F64Array, F64Array, F64Array]] = []

    def keep_trace() -> None:
        if history is not None:
            history.add_trace(sid, *pipeline.take_trace())
            if raw:
                history.add_raw(
                    sid,
                    np.concatenate([r[0] for r in raw]),
                    np.concatenate([r[1] for r in raw]),
                    np.concatenate([r[2] for r in raw]),
                )
                raw.clear()

    if history is not None:
        history.start(
            sid,
            sensor_id=link.sensor_id,
            exercise=pipeline.exercise_id,
            started_at=pipeline.started_at.isoformat(),
            patient_id=pipeline.patient_id,
        )

    if publisher is not None:
        publisher.publish_sensor_state(sensor_state(link))
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
                    publisher.publish_sensor_state(sensor_state(link))
    finally:
        stopped.cancel()
        if own_items:
            await items.aclose()  # type: ignore[attr-defined]
    for ev in publish(pipeline.finish()):
        yield ev
    summary = pipeline.summary(last_seq=last_seq, ended_at=utc_now())
    keep_trace()
    if history is not None:
        history.finish(sid, summary.model_dump(mode="json"))
    if publisher is not None:
        publisher.publish_summary(summary)
        publisher.publish_sensor_state(sensor_state(link))
    log.info("session %s ended: %d reps", pipeline.session_id, len(pipeline.tally.reps))
