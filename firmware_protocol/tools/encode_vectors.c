/*
 * encode_vectors - encode test vectors with hipsense_protocol.h, for the vector tests.
 *
 * Reads one vector per line on stdin, writes "<name> <hex>" per line on stdout:
 *   P name kind seq timestamp_us count n_raw raw... n_quat quat...   (IMU packet)
 *   S name version fw_major fw_minor fw_patch rate g dps kind state battery errors backlog
 *   R name request result with_sync token sensor_time_us             (CP response)
 *   C name hex   -> "name result opcode kind rate g dps token duration has_resume resume_seq"
 * Build: cc -std=c99 -Wall -Wextra -Werror -pedantic -I.. encode_vectors.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hipsense_protocol.h"

static void print_hex(const char *name, const uint8_t *buf, size_t len)
{
    size_t i;
    printf("%s ", name);
    for (i = 0; i < len; i++) printf("%02x", buf[i]);
    printf("\n");
}

static int read_i16s(int16_t *dst, long n)
{
    long i, v;
    for (i = 0; i < n; i++) {
        if (scanf("%ld", &v) != 1) return -1;
        dst[i] = (int16_t)v;
    }
    return 0;
}

int main(void)
{
    char tag[4], name[128];
    while (scanf("%3s %127s", tag, name) == 2) {
        if (strcmp(tag, "P") == 0) {
            unsigned kind, seq, count;
            unsigned long ts;
            long n_raw, n_quat;
            int16_t raw[HS_MAX_SAMPLES * 6], quat[HS_MAX_SAMPLES * 4];
            uint8_t out[HS_MAX_ATT_PAYLOAD];
            size_t len;
            if (scanf("%u %u %lu %u %ld", &kind, &seq, &ts, &count, &n_raw) != 5) return 2;
            if (n_raw < 0 || n_raw > (long)(HS_MAX_SAMPLES * 6) || read_i16s(raw, n_raw)) return 2;
            if (scanf("%ld", &n_quat) != 1) return 2;
            if (n_quat < 0 || n_quat > (long)(HS_MAX_SAMPLES * 4) || read_i16s(quat, n_quat)) return 2;
            len = hs_encode_packet(out, sizeof out, (uint8_t)kind, (uint16_t)seq, (uint32_t)ts,
                                   (uint8_t)count, n_raw ? raw : NULL, n_quat ? quat : NULL);
            if (len == 0) {
                fprintf(stderr, "%s: hs_encode_packet refused the vector\n", name);
                return 1;
            }
            print_hex(name, out, len);
        } else if (strcmp(tag, "S") == 0) {
            unsigned v[12];
            hs_status_t s;
            uint8_t out[HS_STATUS_SIZE];
            if (scanf("%u %u %u %u %u %u %u %u %u %u %u %u", &v[0], &v[1], &v[2], &v[3], &v[4],
                      &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) != 12) return 2;
            s.version = (uint8_t)v[0];
            s.fw_major = (uint8_t)v[1];
            s.fw_minor = (uint8_t)v[2];
            s.fw_patch = (uint8_t)v[3];
            s.rate_hz = (uint16_t)v[4];
            s.accel_range_g = (uint8_t)v[5];
            s.gyro_range_dps = (uint16_t)v[6];
            s.kind = (uint8_t)v[7];
            s.state = (uint8_t)v[8];
            s.battery_pct = (uint8_t)v[9];
            s.errors = (uint16_t)v[10];
            s.backlog_packets = (uint16_t)v[11];
            print_hex(name, out, hs_encode_status(out, &s));
        } else if (strcmp(tag, "R") == 0) {
            unsigned request, result;
            int with_sync;
            unsigned long token, t_us;
            uint8_t out[11];
            if (scanf("%u %u %d %lu %lu", &request, &result, &with_sync, &token, &t_us) != 5)
                return 2;
            print_hex(name, out,
                      hs_encode_response(out, (uint8_t)request, (uint8_t)result, with_sync,
                                         (uint32_t)token, (uint32_t)t_us));
        } else if (strcmp(tag, "C") == 0) {
            char hex[64];
            uint8_t in[32];
            size_t len, i;
            hs_command_t cmd;
            uint8_t result;
            if (scanf("%63s", hex) != 1) return 2;
            len = strlen(hex) / 2;
            if (len > sizeof in) return 2;
            for (i = 0; i < len; i++) {
                unsigned byte;
                if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return 2;
                in[i] = (uint8_t)byte;
            }
            memset(&cmd, 0, sizeof cmd);
            result = hs_parse_command(in, len, &cmd);
            printf("%s %u %u %u %u %u %u %lu %u %u %u\n", name, result, cmd.opcode, cmd.kind,
                   cmd.rate_hz, cmd.accel_range_g, cmd.gyro_range_dps, (unsigned long)cmd.token,
                   cmd.duration_s, cmd.has_resume, cmd.resume_seq);
        } else {
            fprintf(stderr, "unknown tag %s\n", tag);
            return 2;
        }
    }
    return 0;
}
