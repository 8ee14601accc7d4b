/* CRC-32C (Castagnoli), written for orgloop: SSE4.2 instruction when the CPU has it,
 * otherwise a slicing-by-8 table. Same convention as the `crc32c` package (init ~0, final xor). */
#ifndef ORGLOOP_CRC32C_H
#define ORGLOOP_CRC32C_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t ol_crc_table[8][256];
static int ol_crc_ready = 0;
static int ol_crc_hw = 0;

static void ol_crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        ol_crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            ol_crc_table[t][i] = (ol_crc_table[t - 1][i] >> 8) ^ ol_crc_table[0][ol_crc_table[t - 1][i] & 0xFF];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    ol_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
    ol_crc_ready = 1;
}

static uint32_t ol_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { crc = (crc >> 8) ^ ol_crc_table[0][(crc ^ *p++) & 0xFF]; n--; }
    while (n >= 8) {
        uint64_t w; memcpy(&w, p, 8);
        w ^= crc;
        crc = ol_crc_table[7][w & 0xFF] ^ ol_crc_table[6][(w >> 8) & 0xFF] ^
              ol_crc_table[5][(w >> 16) & 0xFF] ^ ol_crc_table[4][(w >> 24) & 0xFF] ^
              ol_crc_table[3][(w >> 32) & 0xFF] ^ ol_crc_table[2][(w >> 40) & 0xFF] ^
              ol_crc_table[1][(w >> 48) & 0xFF] ^ ol_crc_table[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ ol_crc_table[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2")))
static uint32_t ol_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = __builtin_ia32_crc32di(c, w); p += 8; n -= 8; }
    while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

/* crc32c(prev, buf, len): continue a CRC-32C from a previous *final* value (0 to start). */
static inline uint32_t ol_crc32c(uint32_t prev, const unsigned char *p, size_t n) {
    uint32_t crc = ~prev;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (ol_crc_hw) return ~ol_crc32c_hw(crc, p, n);
#endif
    return ~ol_crc32c_sw(crc, p, n);
}
#endif
