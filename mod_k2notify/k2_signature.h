/* k2_signature.h: K2's signatures, both made with the account's API key:
 * the form API's (HMAC-SHA1 of sorted parameters) and K2 Connect's
 * (HMAC-SHA256 of the raw body, in a header).
 *
 * K2 signs a notification with a `signature` parameter: every other received
 * parameter, sorted by name, joined as name=value with '&' (decoded values,
 * no re-encoding), HMAC-SHA1 with the account's API key as the key, the raw
 * 20-byte digest base64-encoded (28 characters).  Pure code: no httpd header;
 * the HMAC comes from OpenSSL's libcrypto.
 */
#ifndef K2_SIGNATURE_H
#define K2_SIGNATURE_H

#include <stddef.h>

/* The name of the parameter that carries the signature; it is not part of
 * its own base string. */
#define K2_SIGNATURE_PARAM "signature"

/* Length of a signature: base64 of a 20-byte SHA-1 digest. */
#define K2_SIGNATURE_LEN 28

/* One received parameter, decoded. */
typedef struct {
    const char *name;
    const char *value;
} k2_pair_t;

/* Write the base string of n received pairs into out (NUL-terminated):
 * the pairs sorted by name, then by value (byte order), the pair named
 * "signature" left out, exact duplicates (same name and value) written once,
 * joined as name=value with '&'.  The pairs themselves are not reordered.
 * Returns the length, or 0 if it does not fit in size bytes with its NUL
 * (or memory ran out).  An empty base string is also 0: no notification
 * has one. */
size_t k2_signature_base(const k2_pair_t *pairs, size_t n, char *out,
                         size_t size);

/* 1 if signature is the base64 HMAC-SHA1 of the len bytes of base under
 * key, else 0.  The comparison takes the same time whatever the bytes of
 * signature (its length, which is not secret, is checked first).  A NULL
 * signature is 0. */
int k2_signature_valid(const char *base, size_t len,
                       const unsigned char *key, size_t keylen,
                       const char *signature);

/* K2 Connect webhooks carry their signature in this header: the hex
 * HMAC-SHA256 of the request body exactly as received, keyed with the API
 * key (K2 sends lowercase hex; 64 characters). */
#define K2_CONNECT_SIGNATURE_HEADER "X-KopoKopo-Signature"
#define K2_CONNECT_SIGNATURE_LEN 64

/* 1 if header is the hex HMAC-SHA256 of the len bytes of body under key,
 * else 0.  Hex digits in either case; any other length or character is 0,
 * as is a NULL header or an empty key.  The digests are compared in
 * constant time (CRYPTO_memcmp).  body need not be NUL-terminated: it is
 * the signed bytes, before any JSON parsing. */
int k2_connect_signature_valid(const char *body, size_t len,
                               const unsigned char *key, size_t keylen,
                               const char *header);

#endif /* K2_SIGNATURE_H */
