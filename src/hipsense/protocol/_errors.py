"""The ProtocolError family: everything that can be wrong with bytes from a sensor."""

from .._errors import HipsenseError

__all__ = [
    "ControlPointError",
    "InvalidSampleError",
    "PacketTooLongError",
    "PacketTooShortError",
    "ProtocolError",
    "SampleCountMismatchError",
    "TruncatedSampleBlockError",
    "UnknownPayloadKindError",
    "UnsupportedSettingError",
    "UnsupportedVersionError",
]


class ProtocolError(HipsenseError):
    """Bytes that do not follow the hipsense sensor protocol."""


class PacketTooShortError(ProtocolError):
    """Fewer bytes than the smallest valid message of this kind."""

    def __init__(self, what: str, expected_min: int, actual: int) -> None:
        self.what = what
        self.expected_min = expected_min
        self.actual = actual
        super().__init__(f"{what}: expected at least {expected_min} bytes, got {actual}")


class PacketTooLongError(ProtocolError):
    """More bytes than the largest valid message of this kind."""

    def __init__(self, what: str, expected_max: int, actual: int) -> None:
        self.what = what
        self.expected_max = expected_max
        self.actual = actual
        super().__init__(f"{what}: expected at most {expected_max} bytes, got {actual}")


class UnsupportedVersionError(ProtocolError):
    """A protocol major version this host does not implement."""

    def __init__(self, supported_major: int, actual_major: int, actual_minor: int) -> None:
        self.supported_major = supported_major
        self.actual_major = actual_major
        self.actual_minor = actual_minor
        super().__init__(
            f"protocol version: expected major {supported_major} (any minor), "
            f"got {actual_major}.{actual_minor}"
        )


class UnknownPayloadKindError(ProtocolError):
    """A payload kind code that this protocol version does not define."""

    def __init__(self, expected: tuple[int, ...], actual: int) -> None:
        self.expected = expected
        self.actual = actual
        codes = ", ".join(str(k) for k in expected)
        super().__init__(f"payload kind: expected one of {codes}, got {actual}")


class TruncatedSampleBlockError(ProtocolError):
    """The sample block is not a whole number of samples."""

    def __init__(self, sample_size: int, block_len: int) -> None:
        self.sample_size = sample_size
        self.block_len = block_len
        super().__init__(
            f"sample block: expected a multiple of {sample_size} bytes, got {block_len} "
            f"({block_len // sample_size} samples and {block_len % sample_size} stray bytes)"
        )


class SampleCountMismatchError(ProtocolError):
    """The header's sample count disagrees with the packet length."""

    def __init__(self, header_count: int, count_from_length: int) -> None:
        self.header_count = header_count
        self.count_from_length = count_from_length
        super().__init__(
            f"sample count: expected {count_from_length} (what the packet length holds), "
            f"got {header_count} in the header"
        )


class InvalidSampleError(ProtocolError):
    """A sample whose value cannot be what the protocol says it is."""

    def __init__(self, index: int, expected: str, actual: str) -> None:
        self.index = index
        super().__init__(f"sample {index}: expected {expected}, got {actual}")


class ControlPointError(ProtocolError):
    """A malformed control point command or response, or a status value out of range."""

    def __init__(self, field: str, expected: str, actual: str) -> None:
        self.field = field
        super().__init__(f"{field}: expected {expected}, got {actual}")


class UnsupportedSettingError(ProtocolError, ValueError):
    """A sample rate or range that the protocol does not offer."""

    def __init__(self, setting: str, allowed: tuple[int, ...], actual: int) -> None:
        self.setting = setting
        self.allowed = allowed
        self.actual = actual
        options = ", ".join(str(v) for v in allowed)
        super().__init__(f"{setting}: expected one of {options}, got {actual}")
