"""The packet ring: outbox while connected, backlog across a disconnection (1.1, 4.3)."""

from .protocol import MAX_ATT_PAYLOAD

_HALF = 0x8000


class Backlog:
    """The last `capacity` packets built, in sequence order, each marked sent or not.

    Slots are allocated once, so keeping packets costs no heap churn on the board. Every
    packet goes through the ring: the newest unsent ones are what is due to be sent, the
    sent ones what a resume can give again. Packets are consecutive in sequence number
    (the batcher numbers them one by one), so a slot's number follows from the newest.
    """

    def __init__(self, capacity, slot_size=MAX_ATT_PAYLOAD):
        if capacity < 1:
            raise ValueError("capacity: expected at least 1 packet")
        self.capacity = capacity
        self._slots = [bytearray(slot_size) for _ in range(capacity)]
        self._views = [memoryview(s) for s in self._slots]
        self._lengths = [0] * capacity
        self._oldest = 0
        self._size = 0
        self._unsent = 0
        self._next_seq = 0
        self.overwritten_unsent = 0
        """Packets pushed out of the ring before they were sent, since made or cleared."""

    def __len__(self):
        return self._size

    @property
    def unsent(self):
        """Packets due to be sent, oldest first."""
        return self._unsent

    @property
    def next_seq(self):
        """Sequence number the next pushed packet will have (from the last push)."""
        return self._next_seq

    def push(self, packet, seq):
        """Keep a copy of `packet` (sequence number `seq`); the oldest makes room.

        Returns True if the packet pushed out was one not yet sent.
        """
        lost = False
        if self._size and seq != self._next_seq:
            # A new numbering (a restarted stream): what is kept no longer lines up.
            self.clear()
        if self._size == self.capacity:
            lost = self._unsent == self._size
            if lost:
                self._unsent -= 1
                self.overwritten_unsent += 1
            self._oldest = (self._oldest + 1) % self.capacity
            self._size -= 1
        i = (self._oldest + self._size) % self.capacity
        n = len(packet)
        self._slots[i][:n] = packet
        self._lengths[i] = n
        self._size += 1
        self._unsent += 1
        self._next_seq = (seq + 1) & 0xFFFF
        return lost

    def peek(self):
        """The oldest unsent packet as a memoryview into its slot, or None.

        Valid until the next push: send it before pushing again.
        """
        if self._unsent == 0:
            return None
        i = (self._oldest + self._size - self._unsent) % self.capacity
        return self._views[i][: self._lengths[i]]

    def peek_seq(self):
        """Sequence number of the packet `peek` returns (meaningless when none is due)."""
        return (self._next_seq - self._unsent) & 0xFFFF

    def mark_sent(self):
        """The packet from `peek` went out (or was given up): move on to the next."""
        if self._unsent:
            self._unsent -= 1

    def rewind(self, resume_seq, next_seq):
        """Make the packets from `resume_seq` on due again, oldest first.

        `next_seq` is the number the next packet built will get (the batcher's; the
        ring's own when it holds packets). Returns how many packets from `resume_seq`
        on the ring no longer holds: the ones a host will see as lost. A `resume_seq`
        ahead of every packet built (the host has them all, or its number is from
        another stream) makes nothing due.
        """
        if self._size:
            next_seq = self._next_seq
        wanted = (next_seq - resume_seq) & 0xFFFF
        if wanted >= _HALF:
            self._unsent = 0
            return 0
        self._unsent = min(wanted, self._size)
        return wanted - self._unsent

    def forget_sent(self):
        """Drop the packets already sent; the unsent ones stay due."""
        self._oldest = (self._oldest + self._size - self._unsent) % self.capacity
        self._size = self._unsent

    def clear(self):
        """Drop every packet, sent or not."""
        self._oldest = 0
        self._size = 0
        self._unsent = 0
        self.overwritten_unsent = 0
