"""The sensor's protocol state machine: control point, status, stream, link events.

No board access: the board part hands in the sensor clock (µs since power-up,
unwrapped), IMU samples as raw counts, connection events and the ATT payload size, and
sends what `next_packet()` gives. `configure` is the board's hook that sets the IMU's
rate and ranges; it returns False (or raises OSError) when the IMU did not take them.
"""

from .backlog import Backlog
from .batcher import Batcher
from .fusion import Mahony
from .protocol import (
    BATTERY_UNKNOWN,
    DEFAULT_ATT_PAYLOAD,
    ERR_CLOCK_UNSYNCED,
    ERR_CONFIG_REJECTED,
    ERR_FIFO_OVERFLOW,
    ERR_IMU_FAULT,
    ERR_LOW_BATTERY,
    KIND_RAW,
    LOW_BATTERY_PCT,
    OP_IDENTIFY,
    OP_SET_RANGES,
    OP_SET_RATE,
    OP_START_STREAMING,
    OP_STOP_STREAMING,
    OP_TIME_SYNC,
    RESULT_INVALID_PARAMETER,
    RESULT_NOT_PERMITTED,
    RESULT_OPERATION_FAILED,
    RESULT_SUCCESS,
    encode_response,
    encode_status,
    has_quat,
    has_raw,
    max_samples,
    parse_command,
)

KEEP_STREAM_US = 600_000_000
"""A stream with nobody connected stays open 10 minutes (PROTOCOL.md 4.3)."""
_OUTBOX_PACKETS = 8
"""Ring size of a sensor that keeps no backlog: packets queued while connected."""


def _accept_config(rate_hz, accel_range_g, gyro_range_dps):
    return True


class Sensor:
    """Everything a hipsense sensor decides, as plain state and methods.

    `backlog_packets` is what the status announces and the ring keeps across a
    disconnection; 0 makes a 1.0-style sensor that stops streaming when the link drops.
    `fuses` says whether the board can stream QUAT and RAW_QUAT.
    """

    def __init__(
        self,
        firmware=(1, 0, 0),
        backlog_packets=64,
        configure=_accept_config,
        fuses=True,
        keep_us=KEEP_STREAM_US,
    ):
        self.firmware = firmware
        self.backlog_packets = backlog_packets
        self.fuses = fuses
        self.keep_us = keep_us
        self._configure = configure
        self.rate_hz = 100
        self.accel_range_g = 8
        self.gyro_range_dps = 1000
        self.kind = KIND_RAW
        self.streaming = False
        self.battery_pct = BATTERY_UNKNOWN
        self.errors = ERR_CLOCK_UNSYNCED
        self.att_payload = DEFAULT_ATT_PAYLOAD
        self.connected = False
        self.identify_until_us = 0
        self.status_changed = True
        """Set whenever a status field changes; the board clears it when it notifies."""
        self.samples_missed = 0
        """Sample times the main loop came too late for (FIFO_OVERFLOW), since power-up."""
        self.packets_not_kept = 0
        """Packets a resume asked for that the ring no longer held, since power-up."""
        self.replayed = 0
        """Packets made due again by resumes, since power-up."""
        self.ring = Backlog(backlog_packets if backlog_packets > 0 else _OUTBOX_PACKETS)
        self.fusion = Mahony()
        self._batcher = None
        self._seq = 0
        self._live = False
        self._lost_at_us = None
        self._next_tick_us = 0

    # -- what the host reads ----------------------------------------------------------

    @property
    def period_us(self):
        """Sample period at the configured rate (an integer at every offered rate)."""
        return 1_000_000 // self.rate_hz

    def status(self):
        """The status characteristic's value now (16 bytes)."""
        return encode_status(
            self.firmware,
            self.rate_hz,
            self.accel_range_g,
            self.gyro_range_dps,
            self.kind,
            self.streaming,
            self.battery_pct,
            self.errors,
            self.backlog_packets,
        )

    def _set_error(self, flag, on):
        errors = (self.errors | flag) if on else (self.errors & ~flag)
        if errors != self.errors:
            self.errors = errors
            self.status_changed = True

    def set_battery(self, pct):
        """A new battery reading, percent 0..100, or None when it cannot be measured."""
        pct = BATTERY_UNKNOWN if pct is None else max(0, min(100, int(pct)))
        if pct != self.battery_pct:
            self.battery_pct = pct
            self.status_changed = True
        self._set_error(ERR_LOW_BATTERY, pct != BATTERY_UNKNOWN and pct < LOW_BATTERY_PCT)

    def set_imu_fault(self, fault):
        """The IMU stopped answering (True) or answers again (False)."""
        self._set_error(ERR_IMU_FAULT, fault)

    # -- control point ----------------------------------------------------------------

    def command(self, data, now_us):
        """Carry out one control point write; returns the indication to send back."""
        result, cmd = parse_command(data)
        op = cmd.opcode
        if result != RESULT_SUCCESS:
            if op in (OP_SET_RATE, OP_SET_RANGES):
                self._set_error(ERR_CONFIG_REJECTED, True)
            return encode_response(op, result)
        if op == OP_START_STREAMING:
            result = self._start(cmd.kind, cmd.resume_seq, now_us)
        elif op == OP_STOP_STREAMING:
            self._stop()
        elif op in (OP_SET_RATE, OP_SET_RANGES):
            result = self._reconfigure(cmd)
        elif op == OP_TIME_SYNC:
            self._set_error(ERR_CLOCK_UNSYNCED, False)
            return encode_response(op, RESULT_SUCCESS, cmd.token, now_us)
        elif op == OP_IDENTIFY:
            self.identify_until_us = now_us + cmd.duration_s * 1_000_000
        return encode_response(op, result)

    def _reconfigure(self, cmd):
        if self.streaming:
            self._set_error(ERR_CONFIG_REJECTED, True)
            return RESULT_NOT_PERMITTED
        rate = cmd.rate_hz if cmd.rate_hz is not None else self.rate_hz
        accel = cmd.accel_range_g if cmd.accel_range_g is not None else self.accel_range_g
        gyro = cmd.gyro_range_dps if cmd.gyro_range_dps is not None else self.gyro_range_dps
        try:
            taken = self._configure(rate, accel, gyro)
        except OSError:
            taken = False
        if not taken:
            self._set_error(ERR_CONFIG_REJECTED, True)
            return RESULT_OPERATION_FAILED
        if (rate, accel, gyro) != (self.rate_hz, self.accel_range_g, self.gyro_range_dps):
            self.status_changed = True
        self.rate_hz, self.accel_range_g, self.gyro_range_dps = rate, accel, gyro
        self._set_error(ERR_CONFIG_REJECTED, False)
        return RESULT_SUCCESS

    def _start(self, kind, resume_seq, now_us):
        if (has_quat(kind) and not self.fuses) or max_samples(kind, self.att_payload) == 0:
            return RESULT_INVALID_PARAMETER
        same = self.streaming and kind == self.kind
        if same and resume_seq is not None and self.backlog_packets > 0:
            # Give back what the host missed, oldest first, before any live packet.
            missing = self.ring.rewind(resume_seq, self._batcher.seq)
            self.packets_not_kept += missing
            self.replayed += self.ring.unsent
        elif same:
            self._drop_backlog()  # without resume_seq the host wants no backlog
        else:
            if self.streaming:
                self._end_packet()  # the old kind's last samples, then the new kind
                self._drop_backlog()
            self._new_stream(kind, now_us)
        self._batcher.resize(self.att_payload)
        self._live = True
        self._lost_at_us = None
        return RESULT_SUCCESS

    def _end_packet(self):
        # Sent as it is to a host that streams; for one that has not resumed the stream
        # (it reconnected and stops or restarts it) it would only be thrown away with
        # the backlog, so it takes no sequence number.
        if self._live:
            self._batcher.flush()
        else:
            self._batcher.drop()

    def _drop_backlog(self):
        # Packets already due on a live link are in flight: they still go out.
        if self._live:
            self.ring.forget_sent()
        else:
            self.ring.clear()

    def _new_stream(self, kind, now_us):
        if self._batcher is not None:
            self._seq = self._batcher.seq
        self.kind = kind
        self._batcher = Batcher(kind, self.att_payload, self.period_us, self._push, self._seq)
        # The stream starts with the next sample time: a whole number of periods on the
        # sensor clock, so a stopped and restarted stream stays on the same grid.
        self._next_tick_us = (now_us // self.period_us + 1) * self.period_us
        self.fusion.reset()
        self.streaming = True
        self._set_error(ERR_FIFO_OVERFLOW, False)
        self.status_changed = True

    def _stop(self):
        if self.streaming:
            self._end_packet()  # the partial packet: the only time one is sent
            self._seq = self._batcher.seq
            self._drop_backlog()
            self.streaming = False
            self.status_changed = True
        self._lost_at_us = None

    # -- the link ---------------------------------------------------------------------

    def connect(self, att_payload=DEFAULT_ATT_PAYLOAD):
        """A host connected. Nothing is sent until it writes START_STREAMING."""
        self.connected = True
        self._live = False
        self.att_payload = att_payload

    def set_att_payload(self, att_payload):
        """The negotiated ATT payload (MTU - 3) changed; new streams are cut to it."""
        self.att_payload = att_payload

    def disconnect(self, now_us):
        """The host went away: keep streaming into the ring, or stop without a backlog."""
        self.connected = False
        self._live = False
        if not self.streaming:
            return
        if self.backlog_packets > 0:
            self._lost_at_us = now_us
        else:
            self._batcher.drop()  # sent to nobody; the sequence counter carries on
            self._seq = self._batcher.seq
            self.ring.clear()
            self.streaming = False
            self.status_changed = True

    def poll(self, now_us):
        """Time-driven changes: end a stream nobody came back for within `keep_us`."""
        lost = self._lost_at_us
        if self.streaming and lost is not None and now_us - lost >= self.keep_us:
            self._batcher.drop()
            self._seq = self._batcher.seq
            self.ring.clear()
            self.streaming = False
            self._lost_at_us = None
            self.status_changed = True

    # -- sampling ---------------------------------------------------------------------

    @property
    def next_sample_us(self):
        """Sensor time of the next sample, or None when not streaming (the loop may sleep)."""
        return self._next_tick_us if self.streaming else None

    def sample_due(self, now_us):
        """Whether the main loop should read the IMU now."""
        return self.streaming and now_us >= self._next_tick_us

    def add_sample(self, raw, now_us):
        """The IMU's reading (ax, ay, az, gx, gy, gz counts), read at `now_us`.

        It is stamped with the latest sample time not after `now_us`; sample times the
        loop came too late for are lost (FIFO_OVERFLOW) and the packet is cut there.
        Returns the number of packets finished.
        """
        if not self.streaming or now_us < self._next_tick_us:
            return 0
        period = self.period_us
        t_us = self._next_tick_us
        late = (now_us - t_us) // period
        if late > 0:
            t_us += late * period
            self.samples_missed += late
            self._set_error(ERR_FIFO_OVERFLOW, True)
        self._next_tick_us = t_us + period
        quat = None
        if has_quat(self.kind):
            self.fusion.update(raw, self.gyro_range_dps, period / 1_000_000)
            quat = self.fusion.q14()
        return self._batcher.add(t_us, raw if has_raw(self.kind) else None, quat)

    def _push(self, packet, seq):
        if self.ring.push(packet, seq) and self._live:
            self._set_error(ERR_FIFO_OVERFLOW, True)  # the link could not keep up

    # -- sending ----------------------------------------------------------------------

    def next_packet(self):
        """The next IMU data packet to notify, or None; call `packet_sent()` after it.

        A kept packet longer than this connection's ATT payload cannot be sent: it is
        given up (the host sees a gap) and counted in `packets_not_kept`.
        """
        if not self._live:
            return None
        while True:
            packet = self.ring.peek()
            if packet is None or len(packet) <= self.att_payload:
                return packet
            self.ring.mark_sent()
            self.packets_not_kept += 1

    def packet_sent(self):
        """The packet from `next_packet()` was handed to the radio."""
        self.ring.mark_sent()

    def identifying(self, now_us):
        """Whether the board should be blinking for IDENTIFY."""
        return now_us < self.identify_until_us
