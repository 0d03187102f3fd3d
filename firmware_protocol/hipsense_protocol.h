/*
 * hipsense_protocol.h - the hipsense native sensor protocol, version 1.1, for firmware.
 *
 * Header-only, C99, no allocation, no dependencies beyond <stdint.h> and <stddef.h>.
 * Byte order on the air is little-endian; the encoders below write bytes explicitly,
 * so they are correct on any CPU. The packed structs document the layouts and may be
 * used to read them on little-endian targets.
 *
 * Specification: PROTOCOL.md beside this file. Test vectors: the JSON files in vectors/.
 */
#ifndef HIPSENSE_PROTOCOL_H
#define HIPSENSE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ------------------------------------------------------------------- */
#define HS_PROTOCOL_MAJOR 1u
#define HS_PROTOCOL_MINOR 1u
#define HS_VERSION_BYTE ((uint8_t)((HS_PROTOCOL_MAJOR << 4) | HS_PROTOCOL_MINOR))

/* ---- GATT identifiers (128-bit UUIDs as text; the base spells "hipsense-v01") ----- */
#define HS_UUID_SERVICE       "48530000-6869-7073-656e-73652d763031"
#define HS_UUID_IMU_DATA      "48530001-6869-7073-656e-73652d763031" /* notify */
#define HS_UUID_CONTROL_POINT "48530002-6869-7073-656e-73652d763031" /* write w/ resp, indicate */
#define HS_UUID_STATUS        "48530003-6869-7073-656e-73652d763031" /* read, notify */
/* The same UUIDs as little-endian byte arrays, the order most BLE stacks want. */
#define HS_UUID128_BYTES(short16) \
    { 0x31, 0x30, 0x76, 0x2d, 0x65, 0x73, 0x6e, 0x65, 0x73, 0x70, 0x69, 0x68, \
      (uint8_t)((short16) & 0xFF), (uint8_t)((short16) >> 8), 0x53, 0x48 }
#define HS_SHORT_SERVICE       0x0000u
#define HS_SHORT_IMU_DATA      0x0001u
#define HS_SHORT_CONTROL_POINT 0x0002u
#define HS_SHORT_STATUS        0x0003u

/* ---- IMU data packet ------------------------------------------------------------ */
#define HS_HEADER_SIZE          8u
#define HS_DEFAULT_ATT_PAYLOAD  20u   /* MTU 23 */
#define HS_MAX_ATT_PAYLOAD      244u  /* MTU 247; never send a longer packet */
#define HS_MAX_SAMPLES          31u   /* 5-bit count field */

enum hs_payload_kind {
    HS_KIND_RAW = 1,      /* ax ay az gx gy gz, int16 counts at the configured ranges */
    HS_KIND_QUAT = 2,     /* qw qx qy qz, int16 Q14 (16384 == 1.0) */
    HS_KIND_RAW_QUAT = 3  /* RAW then QUAT */
};

static inline size_t hs_sample_size(uint8_t kind)
{
    switch (kind) {
    case HS_KIND_RAW: return 12u;
    case HS_KIND_QUAT: return 8u;
    case HS_KIND_RAW_QUAT: return 20u;
    default: return 0u;
    }
}

/* Most samples of `kind` that fit an ATT payload (MTU - 3); 0 if none fits. */
static inline uint8_t hs_max_samples(uint8_t kind, size_t att_payload)
{
    size_t size = hs_sample_size(kind), n;
    if (att_payload > HS_MAX_ATT_PAYLOAD) att_payload = HS_MAX_ATT_PAYLOAD;
    if (size == 0u || att_payload <= HS_HEADER_SIZE) return 0u;
    n = (att_payload - HS_HEADER_SIZE) / size;
    return (uint8_t)(n > HS_MAX_SAMPLES ? HS_MAX_SAMPLES : n);
}

#if defined(__GNUC__) || defined(__clang__)
#define HS_PACKED __attribute__((packed))
#else
#define HS_PACKED
#endif

typedef struct HS_PACKED {
    uint8_t version;       /* HS_VERSION_BYTE */
    uint8_t kind_count;    /* kind << 5 | count (1..31) */
    uint16_t seq;          /* +1 per packet, wraps at 65536 */
    uint32_t timestamp_us; /* sensor clock at the first sample, wraps at 2^32 */
} hs_packet_header_t;

typedef struct HS_PACKED {
    int16_t acc[3]; /* x y z */
    int16_t gyr[3]; /* x y z */
} hs_raw_sample_t;

typedef struct HS_PACKED {
    int16_t q[4]; /* w x y z, Q14 */
} hs_quat_sample_t;

/* Compile-time layout checks (C99 has no static_assert: a negative array size fails). */
typedef char hs_check_header_size[(sizeof(hs_packet_header_t) == HS_HEADER_SIZE) ? 1 : -1];
typedef char hs_check_raw_size[(sizeof(hs_raw_sample_t) == 12u) ? 1 : -1];
typedef char hs_check_quat_size[(sizeof(hs_quat_sample_t) == 8u) ? 1 : -1];

static inline void hs_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static inline void hs_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint16_t hs_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t hs_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/*
 * Encode one IMU data packet into `out` (capacity `cap`, normally the ATT payload).
 * `raw` holds count samples of 6 int16 (NULL for HS_KIND_QUAT); `quat` holds count
 * samples of 4 int16 in Q14 (NULL for HS_KIND_RAW). Returns the packet length, or 0 if
 * the arguments are invalid or the packet does not fit `cap` or HS_MAX_ATT_PAYLOAD.
 */
static inline size_t hs_encode_packet(uint8_t *out, size_t cap, uint8_t kind, uint16_t seq,
                                      uint32_t timestamp_us, uint8_t count,
                                      const int16_t *raw, const int16_t *quat)
{
    size_t size = hs_sample_size(kind), len, i, off;
    int has_raw = (kind == HS_KIND_RAW || kind == HS_KIND_RAW_QUAT);
    int has_quat = (kind == HS_KIND_QUAT || kind == HS_KIND_RAW_QUAT);
    uint8_t k;
    if (size == 0u || count == 0u || count > HS_MAX_SAMPLES) return 0u;
    if ((has_raw && raw == NULL) || (has_quat && quat == NULL)) return 0u;
    len = HS_HEADER_SIZE + (size_t)count * size;
    if (len > cap || len > HS_MAX_ATT_PAYLOAD) return 0u;
    out[0] = HS_VERSION_BYTE;
    out[1] = (uint8_t)((kind << 5) | count);
    hs_put_u16(out + 2, seq);
    hs_put_u32(out + 4, timestamp_us);
    off = HS_HEADER_SIZE;
    for (i = 0; i < count; i++) {
        if (has_raw) {
            for (k = 0; k < 6u; k++) {
                hs_put_u16(out + off, (uint16_t)raw[i * 6u + k]);
                off += 2u;
            }
        }
        if (has_quat) {
            for (k = 0; k < 4u; k++) {
                hs_put_u16(out + off, (uint16_t)quat[i * 4u + k]);
                off += 2u;
            }
        }
    }
    return len;
}

/* ---- Control point ---------------------------------------------------------------- */
enum hs_opcode {
    HS_OP_START_STREAMING = 0x01, /* u8 kind [, u16 resume_seq (1.1)] */
    HS_OP_STOP_STREAMING = 0x02,  /* no parameter */
    HS_OP_SET_RATE = 0x03,        /* u16 rate_hz: 25, 50, 100, 200 */
    HS_OP_SET_RANGES = 0x04,      /* u8 accel_range_g: 2,4,8,16; u16 gyro_range_dps: 125..2000 */
    HS_OP_TIME_SYNC = 0x05,       /* u32 token; response adds u32 token, u32 sensor time */
    HS_OP_IDENTIFY = 0x06,        /* u8 seconds, 1..255 */
    HS_OP_RESPONSE = 0x80
};

enum hs_result {
    HS_RESULT_SUCCESS = 0x01,
    HS_RESULT_OPCODE_NOT_SUPPORTED = 0x02,
    HS_RESULT_INVALID_PARAMETER = 0x03,
    HS_RESULT_OPERATION_FAILED = 0x04,
    HS_RESULT_NOT_PERMITTED = 0x05
};

typedef struct {
    uint8_t opcode;
    uint8_t kind;            /* START_STREAMING */
    uint8_t has_resume;      /* START_STREAMING: 1 when the host sent resume_seq (1.1) */
    uint16_t resume_seq;     /* START_STREAMING: first kept packet the host wants */
    uint16_t rate_hz;        /* SET_RATE */
    uint8_t accel_range_g;   /* SET_RANGES */
    uint16_t gyro_range_dps; /* SET_RANGES */
    uint32_t token;          /* TIME_SYNC */
    uint8_t duration_s;      /* IDENTIFY */
} hs_command_t;

static inline int hs_valid_rate(uint16_t r) { return r == 25 || r == 50 || r == 100 || r == 200; }
static inline int hs_valid_accel(uint8_t g) { return g == 2 || g == 4 || g == 8 || g == 16; }
static inline int hs_valid_gyro(uint16_t d)
{
    return d == 125 || d == 250 || d == 500 || d == 1000 || d == 2000;
}

/*
 * Parse a control point write. Returns the result code the sensor must indicate back:
 * HS_RESULT_SUCCESS when `cmd` is filled in, HS_RESULT_OPCODE_NOT_SUPPORTED for an
 * unknown opcode, HS_RESULT_INVALID_PARAMETER for a wrong length or value.
 */
static inline uint8_t hs_parse_command(const uint8_t *in, size_t len, hs_command_t *cmd)
{
    static const uint8_t sizes[7] = {0, 2, 1, 3, 4, 5, 2};
    cmd->opcode = len ? in[0] : 0u;
    if (len == 0u || in[0] == 0u || in[0] > HS_OP_IDENTIFY) return HS_RESULT_OPCODE_NOT_SUPPORTED;
    cmd->has_resume = (uint8_t)(in[0] == HS_OP_START_STREAMING && len == 4u);
    if (len != sizes[in[0]] && !cmd->has_resume) return HS_RESULT_INVALID_PARAMETER;
    switch (in[0]) {
    case HS_OP_START_STREAMING:
        cmd->kind = in[1];
        cmd->resume_seq = cmd->has_resume ? hs_get_u16(in + 2) : 0u;
        return hs_sample_size(in[1]) ? HS_RESULT_SUCCESS : HS_RESULT_INVALID_PARAMETER;
    case HS_OP_SET_RATE:
        cmd->rate_hz = hs_get_u16(in + 1);
        return hs_valid_rate(cmd->rate_hz) ? HS_RESULT_SUCCESS : HS_RESULT_INVALID_PARAMETER;
    case HS_OP_SET_RANGES:
        cmd->accel_range_g = in[1];
        cmd->gyro_range_dps = hs_get_u16(in + 2);
        return (hs_valid_accel(cmd->accel_range_g) && hs_valid_gyro(cmd->gyro_range_dps))
                   ? HS_RESULT_SUCCESS : HS_RESULT_INVALID_PARAMETER;
    case HS_OP_TIME_SYNC:
        cmd->token = hs_get_u32(in + 1);
        return HS_RESULT_SUCCESS;
    case HS_OP_IDENTIFY:
        cmd->duration_s = in[1];
        return in[1] ? HS_RESULT_SUCCESS : HS_RESULT_INVALID_PARAMETER;
    default: /* STOP_STREAMING */
        return HS_RESULT_SUCCESS;
    }
}

/* Encode a control point response; for a successful TIME_SYNC pass with_sync = 1.
 * `out` needs 11 bytes. Returns the length. */
static inline size_t hs_encode_response(uint8_t *out, uint8_t request, uint8_t result,
                                        int with_sync, uint32_t token, uint32_t sensor_time_us)
{
    out[0] = HS_OP_RESPONSE;
    out[1] = request;
    out[2] = result;
    if (!with_sync) return 3u;
    hs_put_u32(out + 3, token);
    hs_put_u32(out + 7, sensor_time_us);
    return 11u;
}

/* ---- Status characteristic -------------------------------------------------------- */
#define HS_STATUS_SIZE 16u    /* 1.1; a 1.0 status ends after `errors` (14 bytes) */
#define HS_STATUS_SIZE_1_0 14u
#define HS_BATTERY_UNKNOWN 0xFFu

enum hs_error_flag {
    HS_ERR_IMU_FAULT = 1u << 0,
    HS_ERR_FIFO_OVERFLOW = 1u << 1,
    HS_ERR_LOW_BATTERY = 1u << 2,
    HS_ERR_CLOCK_UNSYNCED = 1u << 3,
    HS_ERR_CONFIG_REJECTED = 1u << 4
};

typedef struct HS_PACKED {
    uint8_t version;          /* HS_VERSION_BYTE */
    uint8_t fw_major, fw_minor, fw_patch;
    uint16_t rate_hz;
    uint8_t accel_range_g;
    uint16_t gyro_range_dps;
    uint8_t kind;             /* payload kind that START_STREAMING last set */
    uint8_t state;            /* bit 0: streaming */
    uint8_t battery_pct;      /* 0..100, HS_BATTERY_UNKNOWN if not measured */
    uint16_t errors;          /* hs_error_flag bits */
    uint16_t backlog_packets; /* 1.1: packets kept across a disconnection, 0 if none */
} hs_status_t;

typedef char hs_check_status_size[(sizeof(hs_status_t) == HS_STATUS_SIZE) ? 1 : -1];

/* Encode the status characteristic into `out` (HS_STATUS_SIZE bytes); returns the length:
 * 14 bytes when `version` says minor 0, HS_STATUS_SIZE from 1.1 on. */
static inline size_t hs_encode_status(uint8_t *out, const hs_status_t *s)
{
    out[0] = s->version;
    out[1] = s->fw_major;
    out[2] = s->fw_minor;
    out[3] = s->fw_patch;
    hs_put_u16(out + 4, s->rate_hz);
    out[6] = s->accel_range_g;
    hs_put_u16(out + 7, s->gyro_range_dps);
    out[9] = s->kind;
    out[10] = s->state;
    out[11] = s->battery_pct;
    hs_put_u16(out + 12, s->errors);
    if ((s->version & 0x0Fu) == 0u) return HS_STATUS_SIZE_1_0;
    hs_put_u16(out + 14, s->backlog_packets);
    return HS_STATUS_SIZE;
}

#ifdef __cplusplus
}
#endif

#endif /* HIPSENSE_PROTOCOL_H */
