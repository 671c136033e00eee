/* k2_signature.c: the base string and the HMAC of K2's notification
 * signature, and the HMAC-SHA256 of a K2 Connect webhook.
 *
 * The HMAC is OpenSSL's (libcrypto, as mod_ssl uses), not a hand-written
 * SHA-1.  None of the public K2 receivers got this right: they hashed the
 * parameters unsorted, left the signature in its own base string,
 * base64-encoded a hex digest, or compared with strcmp().
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "k2_notification.h"
#include "k2_signature.h"

static int k2_pair_cmp(const void *a, const void *b)
{
    const k2_pair_t *x = *(const k2_pair_t *const *)a;
    const k2_pair_t *y = *(const k2_pair_t *const *)b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->value, y->value);
}

static int k2_pair_same(const k2_pair_t *x, const k2_pair_t *y)
{
    return strcmp(x->name, y->name) == 0 && strcmp(x->value, y->value) == 0;
}

size_t k2_signature_base(const k2_pair_t *pairs, size_t n, char *out,
                         size_t size)
{
    const k2_pair_t **sorted;
    const k2_pair_t *prev = NULL;
    size_t i, len = 0;

    if (size == 0) {
        return 0;
    }
    out[0] = '\0';
    if (n == 0) {
        return 0;
    }
    /* Sort pointers: the caller's pairs keep their order. */
    sorted = malloc(n * sizeof(*sorted));
    if (!sorted) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        sorted[i] = &pairs[i];
    }
    qsort(sorted, n, sizeof(*sorted), k2_pair_cmp);

    for (i = 0; i < n; i++) {
        const k2_pair_t *p = sorted[i];
        size_t nlen, vlen, need;

        if (strcmp(p->name, K2_SIGNATURE_PARAM) == 0
            || (prev && k2_pair_same(prev, p))) {
            continue;
        }
        nlen = strlen(p->name);
        vlen = strlen(p->value);
        need = (prev ? 1 : 0) + nlen + 1 + vlen;
        if (need >= size - len) {           /* room for the NUL as well */
            len = 0;
            break;
        }
        if (prev) {
            out[len++] = '&';
        }
        memcpy(out + len, p->name, nlen);
        len += nlen;
        out[len++] = '=';
        memcpy(out + len, p->value, vlen);
        len += vlen;
        prev = p;
    }
    free(sorted);
    out[len] = '\0';
    return len;
}

int k2_signature_valid(const char *base, size_t len,
                       const unsigned char *key, size_t keylen,
                       const char *signature)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned char expected[K2_SIGNATURE_LEN + 1];      /* with EVP's NUL */
    unsigned int dlen = 0;
    int ok;

    /* The length of a signature is public: only its bytes are compared in
     * constant time.  An empty key is a configuration the glue refuses. */
    if (!signature || strlen(signature) != K2_SIGNATURE_LEN
        || keylen == 0 || keylen > INT_MAX) {
        return 0;
    }
    if (!HMAC(EVP_sha1(), key, (int)keylen, (const unsigned char *)base, len,
              digest, &dlen) || dlen != 20) {
        return 0;
    }
    if (EVP_EncodeBlock(expected, digest, (int)dlen) != K2_SIGNATURE_LEN) {
        OPENSSL_cleanse(digest, sizeof(digest));
        return 0;
    }
    ok = CRYPTO_memcmp(expected, signature, K2_SIGNATURE_LEN) == 0;
    OPENSSL_cleanse(digest, sizeof(digest));
    OPENSSL_cleanse(expected, sizeof(expected));
    return ok;
}

int k2_connect_signature_valid(const char *body, size_t len,
                               const unsigned char *key, size_t keylen,
                               const char *header)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned char claimed[K2_CONNECT_SIGNATURE_LEN / 2];
    unsigned int dlen = 0;
    size_t i;
    int ok;

    /* The header is the client's: decoding it may branch on its bytes.
     * Only the comparison with the digest must not. */
    if (!header || strlen(header) != K2_CONNECT_SIGNATURE_LEN
        || keylen == 0 || keylen > INT_MAX) {
        return 0;
    }
    for (i = 0; i < sizeof(claimed); i++) {
        int hi = k2_hex_value((unsigned char)header[2 * i]);
        int lo = k2_hex_value((unsigned char)header[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return 0;
        }
        claimed[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)body,
              len, digest, &dlen) || dlen != sizeof(claimed)) {
        OPENSSL_cleanse(digest, sizeof(digest));
        return 0;
    }
    ok = CRYPTO_memcmp(digest, claimed, sizeof(claimed)) == 0;
    OPENSSL_cleanse(digest, sizeof(digest));
    return ok;
}
