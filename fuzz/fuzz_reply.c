/* fuzz_reply.c: libFuzzer target of the JSON replies (k2_reply.c).
 *
 * The input is split at its first NUL into a description and a reason (no
 * NUL: no reason).  When both are valid UTF-8 (k2_utf8_valid), the reply
 * must be JSON that Jansson parses back to exactly those strings and no
 * other member; written into an exact-size buffer it must fit, and one byte
 * less must be refused (0), never truncated.  When either is not UTF-8 the
 * reply must be refused (0): the handler falls back to a reply without it.
 * The first byte also picks one of the 200 replies, checked the same way.
 */
#include <jansson.h>

#include "fuzz_common.h"
#include "k2_notification.h"

/* Parse len bytes of JSON and check its members against the strings. */
static void check_json(const char *buf, size_t len, const char *const *keys,
                       const char *const *values, size_t n)
{
    json_error_t err;
    json_t *obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    size_t i;

    FUZZ_ASSERT(obj && json_is_object(obj));
    FUZZ_ASSERT(json_object_size(obj) == n);
    for (i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, keys[i]);

        FUZZ_ASSERT(v && json_is_string(v));
        FUZZ_ASSERT(json_string_length(v) == strlen(values[i]));
        FUZZ_ASSERT(strcmp(json_string_value(v), values[i]) == 0);
    }
    json_decref(obj);
}

/* A reply written by write(), checked in buffers of every telling size. */
typedef size_t writer_fn(const void *arg, char *buf, size_t size);

static size_t sized(writer_fn *write, const void *arg, int expect_ok,
                    char **out)
{
    size_t big = 65536, len;
    char *buf = malloc(big), *exact, *short1;

    len = write(arg, buf, big);
    if (!expect_ok) {
        FUZZ_ASSERT(len == 0);
        free(buf);
        *out = NULL;
        return 0;
    }
    FUZZ_ASSERT(len > 0 && len < big && buf[len] == '\0');
    FUZZ_ASSERT(strlen(buf) == len);
    exact = malloc(len + 1);
    FUZZ_ASSERT(write(arg, exact, len + 1) == len);
    FUZZ_ASSERT(memcmp(exact, buf, len + 1) == 0);
    short1 = malloc(len);
    FUZZ_ASSERT(write(arg, short1, len) == 0);
    free(short1);
    free(buf);
    *out = exact;
    return len;
}

typedef struct {
    const char *description, *reason;
} error_args_t;

static size_t write_error(const void *arg, char *buf, size_t size)
{
    const error_args_t *a = arg;

    return k2_reply_error(a->description, a->reason, buf, size);
}

static size_t write_status(const void *arg, char *buf, size_t size)
{
    return k2_reply_status(*(const k2_status_e *)arg, buf, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t dlen = nul ? (size_t)(nul - data) : size;
    error_args_t a;
    char *desc, *reason = NULL, *out;
    size_t len;
    int utf8;

    if (size > 8192) {
        return 0;               /* escaped 6 bytes a byte: under 64 KiB */
    }
    desc = fuzz_strndup(data, dlen);
    if (nul) {
        reason = fuzz_strndup(nul + 1, strnlen((const char *)nul + 1,
                                               size - dlen - 1));
    }
    utf8 = k2_utf8_valid(desc, strlen(desc))
           && (!reason || k2_utf8_valid(reason, strlen(reason)));
    a.description = desc;
    a.reason = reason;
    len = sized(write_error, &a, utf8, &out);
    if (utf8) {
        static const char *const keys[] = { "description", "reason" };
        const char *values[2];

        values[0] = desc;
        values[1] = reason;
        check_json(out, len, keys, values, reason ? 2 : 1);
        /* The description comes first, as in every reply. */
        FUZZ_ASSERT(strncmp(out, "{\"description\":", 15) == 0);
        free(out);
    }

    if (size > 0) {
        static const char *const keys[] = { "status", "description" };
        static const char *const codes[] = { "01", "02", "03" };
        static const char *const texts[] = {
            "Accepted", "Account not Found", "Invalid Payment"
        };
        k2_status_e st = (k2_status_e)(data[0] % 3 + 1);
        const char *values[2];

        values[0] = codes[st - 1];
        values[1] = texts[st - 1];
        len = sized(write_status, &st, 1, &out);
        check_json(out, len, keys, values, 2);
        free(out);
    }
    free(desc);
    free(reason);
    return 0;
}
