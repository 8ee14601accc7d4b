/* CRC-32C (Castagnoli), written for orgloop: SSE4.2 instruction when the CPU has it,
 * otherwise a slicing-by-8 table. Same convention as the `crc32c` package (init ~0, final xor).
 *
 * The crc32 instruction has a latency of several cycles but can start one per cycle, so the hardware
 * path runs three independent streams over three adjacent blocks and joins them: the CRC register
 * after A||B is shift(crc(A), |B|) ^ crc(B started from 0), where shift appends |B| zero bytes, a
 * linear map over GF(2) precomputed as four 256-entry tables per block size. */
#ifndef ORGLOOP_CRC32C_H
#define ORGLOOP_CRC32C_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t ol_crc_table[8][256];
static int ol_crc_ready = 0;
static int ol_crc_hw = 0;

#define OL_CRC_LONG 8192
#define OL_CRC_SHORT 256
static uint32_t ol_crc_long[4][256];
static uint32_t ol_crc_short[4][256];

/* GF(2) matrix (32 columns) times vector. */
static uint32_t ol_gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void ol_gf2_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = ol_gf2_times(mat, mat[n]);
}

/* The tables of the operator that appends `len` zero bytes (len a power of two) to a CRC register. */
static void ol_crc_zeros_tables(uint32_t tables[4][256], size_t len) {
    uint32_t odd[32], even[32], *op = even;
    odd[0] = 0x82F63B78u;                       /* one zero bit */
    for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);
    ol_gf2_square(even, odd);                   /* two zero bits */
    ol_gf2_square(odd, even);                   /* four */
    for (;;) {                                  /* eight (one byte), then doubling until len bytes */
        ol_gf2_square(even, odd);
        op = even;
        len >>= 1;
        if (!len) break;
        ol_gf2_square(odd, even);
        op = odd;
        len >>= 1;
        if (!len) break;
    }
    for (uint32_t n = 0; n < 256; n++) {
        tables[0][n] = ol_gf2_times(op, n);
        tables[1][n] = ol_gf2_times(op, n << 8);
        tables[2][n] = ol_gf2_times(op, n << 16);
        tables[3][n] = ol_gf2_times(op, n << 24);
    }
}

static inline uint32_t ol_crc_shift(uint32_t tables[4][256], uint32_t crc) {
    return tables[0][crc & 0xFF] ^ tables[1][(crc >> 8) & 0xFF] ^ tables[2][(crc >> 16) & 0xFF] ^
           tables[3][crc >> 24];
}

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
    ol_crc_zeros_tables(ol_crc_long, OL_CRC_LONG);
    ol_crc_zeros_tables(ol_crc_short, OL_CRC_SHORT);
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
static inline uint64_t ol_crc_hw_3way(uint64_t c, const unsigned char **pp, size_t *np, size_t block,
                                      uint32_t tables[4][256]) {
    const unsigned char *p = *pp;
    size_t n = *np;
    while (n >= 3 * block) {
        uint64_t c1 = 0, c2 = 0, w0, w1, w2;
        const unsigned char *end = p + block;
        do {
            memcpy(&w0, p, 8); memcpy(&w1, p + block, 8); memcpy(&w2, p + 2 * block, 8);
            c = __builtin_ia32_crc32di(c, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            p += 8;
        } while (p < end);
        c = ol_crc_shift(tables, (uint32_t)c) ^ (uint32_t)c1;
        c = ol_crc_shift(tables, (uint32_t)c) ^ (uint32_t)c2;
        p += 2 * block;
        n -= 3 * block;
    }
    *pp = p;
    *np = n;
    return c;
}

__attribute__((target("sse4.2")))
static uint32_t ol_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
    c = ol_crc_hw_3way(c, &p, &n, OL_CRC_LONG, ol_crc_long);
    c = ol_crc_hw_3way(c, &p, &n, OL_CRC_SHORT, ol_crc_short);
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
