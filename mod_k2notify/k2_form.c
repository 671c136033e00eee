/* k2_form.c: strict application/x-www-form-urlencoded decoding.
 *
 * Written by hand rather than with APR: apr_unescape_url() stops at a raw
 * NUL byte (a value would be cut short silently) and, for a '%' at the end
 * of a (buffer, length) slice, reads the two bytes past the slice; and
 * ap_parse_form_data() is too lenient for money (it keeps %00, accepts bad
 * hex, splits names at %3D and returns every duplicate).  Here every byte is
 * accounted for within len, so a fuzzer's exact-size buffers can prove it.
 */
#include <string.h>

#include "k2_notification.h"

int k2_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int k2_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t n, k;
        unsigned long cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        }
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        }
        else {
            return 0;           /* continuation byte, C0/C1 overlong, F5+ */
        }
        if (len - i - 1 < n) {
            return 0;           /* truncated sequence */
        }
        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
            || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;           /* overlong, past U+10FFFF, or a surrogate */
        }
        i += n + 1;
    }
    return 1;
}

k2_reason_e k2_form_decode(const char *in, size_t len, char *out, size_t *outlen)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '+') {
            c = ' ';
        }
        else if (c == '%') {
            int hi, lo;

            if (len - i < 3) {
                return K2_BAD_ESCAPE;
            }
            hi = k2_hex_value((unsigned char)in[i + 1]);
            lo = k2_hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0) {
                return K2_BAD_ESCAPE;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c == 0) {
            return K2_BAD_NUL;
        }
        if (c < 0x20 || c == 0x7F) {
            return K2_BAD_CONTROL;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *outlen = o;
    return k2_utf8_valid(out, o) ? K2_OK : K2_BAD_UTF8;
}

k2_reason_e k2_form_parse(k2_notification_t *n, const char *buf, size_t len,
                          char *scratch, k2_pair_fn *on_pair, void *baton)
{
    size_t pos = 0;

    while (pos < len) {
        const char *seg = buf + pos;
        const char *amp = memchr(seg, '&', len - pos);
        size_t seglen = amp ? (size_t)(amp - seg) : len - pos;
        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen;
        const char *value = "";
        size_t dlen;
        k2_reason_e rv;
        char *name;
        int field;

        pos += seglen + 1;
        if (seglen == 0) {
            continue;                       /* "a=1&&b=2", a trailing '&' */
        }
        if (nlen == 0) {
            return K2_BAD_EMPTY_NAME;
        }
        name = scratch;
        if ((rv = k2_form_decode(seg, nlen, name, &dlen)) != K2_OK) {
            return rv;
        }
        scratch += dlen + 1;
        if (eq) {
            char *v = scratch;

            rv = k2_form_decode(eq + 1, seglen - nlen - 1, v, &dlen);
            if (rv != K2_OK) {
                return rv;
            }
            scratch += dlen + 1;
            value = v;
        }
        if (on_pair) {
            on_pair(baton, name, value);
        }
        field = k2_field_lookup(name, strlen(name), 1);
        if (field < 0) {
            continue;                       /* unknown parameters are ignored */
        }
        if (n->value[field] && strcmp(n->value[field], value) != 0) {
            n->conflict_field = field;
            return K2_BAD_CONFLICT;
        }
        n->value[field] = value;
    }
    return K2_OK;
}
