"""WitMotion BLE 5.0 sensors (BWT901BLECL5.0 and siblings) behind the `SensorLink` interface.

`_codec` is the sans-I/O protocol; `_timing` gives the samples host times (the records
carry none); `_link` is the bleak edge.
"""

from ._codec import (
    NOTIFY_CHAR_UUID,
    RATE_CODES,
    REG_BATTERY,
    REG_RATE,
    SERVICE_UUID,
    WRITE_CHAR_UUID,
    Notification,
    RegisterReply,
    WitMotionDecoder,
    WitMotionProtocolError,
    WitMotionSamples,
    battery_pct,
    decode_command,
    encode_read_register,
    encode_register_reply,
    encode_samples,
    encode_save,
    encode_set_rate,
    encode_unlock,
    encode_write_register,
    rate_hz_of_code,
)
from ._link import WitMotionLink, WitMotionSettings, is_witmotion
from ._timing import ArrivalTimer

__all__ = [
    "NOTIFY_CHAR_UUID",
    "RATE_CODES",
    "REG_BATTERY",
    "REG_RATE",
    "SERVICE_UUID",
    "WRITE_CHAR_UUID",
    "ArrivalTimer",
    "Notification",
    "RegisterReply",
    "WitMotionDecoder",
    "WitMotionLink",
    "WitMotionProtocolError",
    "WitMotionSamples",
    "WitMotionSettings",
    "battery_pct",
    "decode_command",
    "encode_read_register",
    "encode_register_reply",
    "encode_samples",
    "encode_save",
    "encode_set_rate",
    "encode_unlock",
    "encode_write_register",
    "is_witmotion",
    "rate_hz_of_code",
]
