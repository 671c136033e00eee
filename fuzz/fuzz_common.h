/* fuzz_common.h: helpers shared by the libFuzzer targets of the pure parts.
 *
 * The checkers here are written independently of mod_k2notify's code (from
 * the Unicode standard's table of well-formed byte sequences, not from
 * k2_utf8_valid), so that a target can compare the two.
 */
#ifndef K2_FUZZ_COMMON_H
#define K2_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed invariant: print it and abort, which libFuzzer reports as a
 * crash and saves the input. */
#define FUZZ_ASSERT(expr) \
    do { \
        if (!(expr)) { \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #expr); \
            abort(); \
        } \
    } while (0)

/* A NUL-terminated heap copy of len bytes: exactly len + 1 bytes, so that
 * ASan sees a read past the NUL. */
static inline char *fuzz_strndup(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1);

    if (!s) {
        abort();
    }
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* 1 if the len bytes of s are well-formed UTF-8 (Unicode 15, table 3-7),
 * else 0.  Deliberately table-driven, unlike k2_utf8_valid. */
static inline int fuzz_utf8_wellformed(const char *s, size_t len)
{
    static const struct {
        unsigned char lead_lo, lead_hi;
        unsigned char n;                  /* continuation bytes */
        unsigned char c1_lo, c1_hi;       /* range of the first one */
    } rows[] = {
        { 0xC2, 0xDF, 1, 0x80, 0xBF },
        { 0xE0, 0xE0, 2, 0xA0, 0xBF },
        { 0xE1, 0xEC, 2, 0x80, 0xBF },
        { 0xED, 0xED, 2, 0x80, 0x9F },
        { 0xEE, 0xEF, 2, 0x80, 0xBF },
        { 0xF0, 0xF0, 3, 0x90, 0xBF },
        { 0xF1, 0xF3, 3, 0x80, 0xBF },
        { 0xF4, 0xF4, 3, 0x80, 0x8F },
    };
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, r, k;

    while (i < len) {
        if (p[i] <= 0x7F) {
            i++;
            continue;
        }
        for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
            if (p[i] >= rows[r].lead_lo && p[i] <= rows[r].lead_hi) {
                break;
            }
        }
        if (r == sizeof(rows) / sizeof(rows[0]) || len - i <= rows[r].n) {
            return 0;
        }
        if (p[i + 1] < rows[r].c1_lo || p[i + 1] > rows[r].c1_hi) {
            return 0;
        }
        for (k = 2; k <= rows[r].n; k++) {
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) {
                return 0;
            }
        }
        i += rows[r].n + 1;
    }
    return 1;
}

/* 1 if s has a byte below 0x20 or 0x7F. */
static inline int fuzz_has_control(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7F) {
            return 1;
        }
    }
    return 0;
}

#endif /* K2_FUZZ_COMMON_H */
