/* k2_reply.c: the JSON bodies of the replies, written with Jansson.
 *
 * K2's spec shows "status":01, which is not JSON; the status is sent as the
 * string "01", as K2's own integrators compare it.
 */
#include <jansson.h>

#include "k2_notification.h"

/* Dump obj into buf; 0 if it is NULL or does not fit with its NUL. */
static size_t k2_dump(json_t *obj, char *buf, size_t size)
{
    size_t len;

    if (!obj) {
        return 0;
    }
    len = json_dumpb(obj, buf, size, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (len == 0 || len >= size) {
        return 0;
    }
    buf[len] = '\0';
    return len;
}

size_t k2_reply_status(k2_status_e status, char *buf, size_t size)
{
    return k2_dump(json_pack("{s:s, s:s}",
                             "status", k2_status_code(status),
                             "description", k2_status_description(status)),
                   buf, size);
}

size_t k2_reply_error(const char *description, const char *reason,
                      char *buf, size_t size)
{
    json_t *obj = reason
        ? json_pack("{s:s, s:s}", "description", description, "reason", reason)
        : json_pack("{s:s}", "description", description);

    return k2_dump(obj, buf, size);
}

size_t k2_reply_webhook(const char *outcome, char *buf, size_t size)
{
    return k2_dump(json_pack("{s:s, s:s}", "description", "OK",
                             "outcome", outcome), buf, size);
}
