"""Batch samples into IMU data packets as large as the connection allows."""

from .protocol import HEADER_SIZE, max_samples, pack_header, pack_sample, sample_size


class Batcher:
    """Fills one packet at a time and hands each finished one to `sink(packet, seq)`.

    `sink` gets a memoryview of the batcher's own buffer, valid only during the call: it
    must copy what it keeps. Samples in one packet are one period apart on the sensor
    clock (PROTOCOL.md 3.1), so a sample that does not follow the one before closes the
    packet early and starts the next one. Sequence numbers run on from `seq`.
    """

    def __init__(self, kind, att_payload, period_us, sink, seq=0):
        self.kind = kind
        self.period_us = period_us
        self.seq = seq & 0xFFFF
        """Sequence number of the packet being filled."""
        self._sink = sink
        self._size = sample_size(kind)
        self.capacity = 0
        self._buf = None
        self._count = 0
        self._first_us = 0
        self._next_us = 0
        self.resize(att_payload)

    def resize(self, att_payload):
        """Use a new ATT payload size from the next sample on (the MTU changed).

        A packet already holding as many samples as the new size allows is closed now.
        Raises ValueError when not one sample of the kind fits.
        """
        capacity = max_samples(self.kind, att_payload)
        if capacity == 0:
            raise ValueError("att_payload: too small for one sample of this kind")
        if self._count and self._count >= capacity:
            self.flush()
        if self._buf is None or len(self._buf) < HEADER_SIZE + capacity * self._size:
            old = self._buf
            self._buf = bytearray(HEADER_SIZE + capacity * self._size)
            if old is not None and self._count:
                self._buf[: HEADER_SIZE + self._count * self._size] = old[
                    : HEADER_SIZE + self._count * self._size
                ]
        self.capacity = capacity

    @property
    def pending(self):
        """Samples in the packet being filled."""
        return self._count

    def add(self, t_us, raw=None, quat=None):
        """Add the sample taken at sensor time `t_us` (µs, unwrapped).

        Returns the number of packets handed to the sink (0, 1 or 2).
        """
        emitted = 0
        if self._count and t_us != self._next_us:
            emitted += self.flush()
        if self._count == 0:
            self._first_us = t_us
        offset = HEADER_SIZE + self._count * self._size
        pack_sample(self._buf, offset, self.kind, raw, quat)
        self._count += 1
        self._next_us = t_us + self.period_us
        if self._count == self.capacity:
            emitted += self.flush()
        return emitted

    def flush(self):
        """Hand over the packet being filled, however full; returns 1 if there was one."""
        if self._count == 0:
            return 0
        pack_header(self._buf, self.kind, self._count, self.seq, self._first_us)
        length = HEADER_SIZE + self._count * self._size
        seq = self.seq
        self._count = 0
        self.seq = (seq + 1) & 0xFFFF
        self._sink(memoryview(self._buf)[:length], seq)
        return 1

    def drop(self):
        """Forget the packet being filled, without using its sequence number."""
        self._count = 0
