/* fuzz_signature.c: libFuzzer target of K2's signature (k2_signature.c).
 *
 * The input is KEY '\n' PAIRS: PAIRS split at '&' into name=value pairs
 * (raw bytes, a NUL ends a string early), each a NUL-terminated heap copy of
 * exactly its size.  k2_signature_base must equal a reference built here
 * (sorted by name then value, "signature" left out, exact duplicates once,
 * joined with '&'), fit an exact-size buffer, and refuse one byte less.
 * k2_signature_valid, over an exact-size copy of the base string without a
 * NUL, must accept the base64 HMAC-SHA1 computed here (with a base64 encoder
 * of our own) under a non-empty key, the input's own signature value only if
 * it is that, and refuse any other string, one character changed, a longer
 * one, NULL, or an empty key.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_common.h"
#include "k2_signature.h"

static int cmp_pair(const void *a, const void *b)
{
    const k2_pair_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->value, y->value);
}

/* The documented base string, the slow and obvious way. */
static char *ref_base(const k2_pair_t *pairs, size_t n, size_t *len)
{
    k2_pair_t *s = malloc((n ? n : 1) * sizeof(*s));
    const k2_pair_t *prev = NULL;
    size_t i, cap = 1, o = 0;
    char *out;

    for (i = 0; i < n; i++) {
        cap += strlen(pairs[i].name) + strlen(pairs[i].value) + 2;
    }
    out = malloc(cap);
    memcpy(s, pairs, n * sizeof(*s));
    qsort(s, n, sizeof(*s), cmp_pair);
    for (i = 0; i < n; i++) {
        if (strcmp(s[i].name, "signature") == 0
            || (prev && cmp_pair(prev, &s[i]) == 0)) {
            continue;
        }
        o += (size_t)sprintf(out + o, "%s%s=%s", prev ? "&" : "",
                             s[i].name, s[i].value);
        prev = &s[i];
    }
    out[o] = '\0';
    *len = o;
    free(s);
    return out;
}

static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;

    for (i = 0; i < len; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16;

        v |= (i + 1 < len ? (unsigned long)in[i + 1] << 8 : 0);
        v |= (i + 2 < len ? in[i + 2] : 0);
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = '\0';
}

/* k2_signature_valid with the signature in an exact-size heap copy. */
static int valid(const char *base, size_t len, const char *key, size_t keylen,
                 const char *sig)
{
    char *copy = sig ? fuzz_strndup((const uint8_t *)sig, strlen(sig)) : NULL;
    int ok = k2_signature_valid(base, len, (const unsigned char *)key, keylen,
                                copy);

    FUZZ_ASSERT(ok == 0 || ok == 1);
    free(copy);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t keylen = nl ? (size_t)(nl - data) : 0;
    const uint8_t *p = nl ? nl + 1 : data, *end = data + size;
    k2_pair_t *pairs, *before;
    size_t n = 0, cap = 1, i, len, rlen;
    char *key, *out, *ref, *exact, *base;
    const char *their_sig = NULL;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char expected[64], other[64];

    key = malloc(keylen ? keylen : 1);
    memcpy(key, data, keylen);
    for (i = 0; p + i < end; i++) {
        cap += p[i] == '&';
    }
    pairs = malloc(cap * sizeof(*pairs));
    while (p < end) {
        const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
        const uint8_t *segend = amp ? amp : end;
        const uint8_t *eq = memchr(p, '=', (size_t)(segend - p));

        pairs[n].name = fuzz_strndup(p, (size_t)((eq ? eq : segend) - p));
        pairs[n].value = eq ? fuzz_strndup(eq + 1, (size_t)(segend - eq - 1))
                            : fuzz_strndup(p, 0);
        if (!their_sig && strcmp(pairs[n].name, "signature") == 0) {
            their_sig = pairs[n].value;
        }
        n++;
        p = segend + 1;
    }
    before = malloc((n ? n : 1) * sizeof(*before));
    memcpy(before, pairs, n * sizeof(*pairs));

    /* The base string: as documented, in a roomy buffer and exact ones. */
    ref = ref_base(pairs, n, &rlen);
    out = malloc(rlen + 64);
    len = k2_signature_base(pairs, n, out, rlen + 64);
    FUZZ_ASSERT(len == rlen && strcmp(out, ref) == 0);
    FUZZ_ASSERT(memcmp(before, pairs, n * sizeof(*pairs)) == 0);
    if (len > 0) {
        exact = malloc(len + 1);
        FUZZ_ASSERT(k2_signature_base(pairs, n, exact, len + 1) == len);
        FUZZ_ASSERT(memcmp(exact, ref, len + 1) == 0);
        free(exact);
        exact = malloc(len);
        FUZZ_ASSERT(k2_signature_base(pairs, n, exact, len) == 0);
        FUZZ_ASSERT(memchr(exact, '\0', len) != NULL);
        free(exact);
    }

    /* The signature over an exact-size base without its NUL. */
    base = malloc(len ? len : 1);
    memcpy(base, ref, len);
    FUZZ_ASSERT(HMAC(EVP_sha1(), keylen ? key : "", (int)keylen,
                     (const unsigned char *)base, len, digest, &dlen) != NULL
                && dlen == 20);
    base64(digest, dlen, expected);
    FUZZ_ASSERT(strlen(expected) == K2_SIGNATURE_LEN);
    FUZZ_ASSERT(valid(base, len, key, keylen, expected) == (keylen > 0));
    FUZZ_ASSERT(valid(base, len, key, 0, expected) == 0);
    FUZZ_ASSERT(valid(base, len, key, keylen, NULL) == 0);
    memcpy(other, expected, sizeof(expected));
    other[size % K2_SIGNATURE_LEN] ^= 0x01;
    FUZZ_ASSERT(valid(base, len, key, keylen, other) == 0);
    snprintf(other, sizeof(other), "%s=", expected);
    FUZZ_ASSERT(valid(base, len, key, keylen, other) == 0);
    if (their_sig) {
        FUZZ_ASSERT(valid(base, len, key, keylen, their_sig)
                    == (keylen > 0 && strcmp(their_sig, expected) == 0));
    }

    for (i = 0; i < n; i++) {
        free((char *)pairs[i].name);
        free((char *)pairs[i].value);
    }
    free(pairs);
    free(before);
    free(key);
    free(ref);
    free(out);
    free(base);
    return 0;
}
