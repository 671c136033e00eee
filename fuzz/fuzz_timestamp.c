/* fuzz_timestamp.c: libFuzzer target of k2_timestamp (k2_notification.c).
 *
 * The input is split at its first NUL or newline into transaction_date and
 * transaction_time (NUL-terminated heap copies of exactly their size; with
 * no separator the whole input is the date and there is no time).  Each is
 * also tried alone.  The output buffer is exactly the 20 bytes promised.
 * The results are compared with a reference written here from the
 * documented formats: D/M/YY or D/M/YYYY (20YY; the year from 1970 and a
 * real calendar day), H:MM AM|PM (hours 1-12, AM/PM in any case).
 */
#include "fuzz_common.h"
#include "k2_notification.h"

/* Exactly 1..max ASCII digits at s[*i], as a number; -1 if not. */
static long digits(const char *s, size_t *i, size_t min, size_t max,
                   size_t *count)
{
    size_t n = 0;
    long v = 0;

    while (s[*i + n] >= '0' && s[*i + n] <= '9') {
        if (n == max) {
            return -1;
        }
        v = v * 10 + (s[*i + n] - '0');
        n++;
    }
    if (n < min) {
        return -1;
    }
    *i += n;
    *count = n;
    return v;
}

static int ref_date(const char *s, int *y, int *m, int *d)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    size_t i = 0, n;
    long dd, mm, yy;
    int leap;

    if ((dd = digits(s, &i, 1, 2, &n)) < 0 || s[i++] != '/'
        || (mm = digits(s, &i, 1, 2, &n)) < 0 || s[i++] != '/'
        || (yy = digits(s, &i, 2, 4, &n)) < 0 || n == 3 || s[i] != '\0') {
        return 0;
    }
    if (n == 2) {
        yy += 2000;
    }
    if (yy < 1970 || mm < 1 || mm > 12 || dd < 1) {
        return 0;
    }
    leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
    if (dd > mdays[mm - 1] + (mm == 2 && leap)) {
        return 0;
    }
    *y = (int)yy;
    *m = (int)mm;
    *d = (int)dd;
    return 1;
}

static int ref_time(const char *s, int *h24, int *mi)
{
    size_t i = 0, n;
    long hh, mm;
    char a, b;

    if ((hh = digits(s, &i, 1, 2, &n)) < 0 || s[i++] != ':'
        || (mm = digits(s, &i, 2, 2, &n)) < 0 || s[i++] != ' ') {
        return 0;
    }
    a = s[i];
    b = a ? s[i + 1] : '\0';
    if (!a || !b || s[i + 2] != '\0' || (b != 'M' && b != 'm')
        || (a != 'A' && a != 'a' && a != 'P' && a != 'p')) {
        return 0;
    }
    if (hh < 1 || hh > 12 || mm > 59) {
        return 0;
    }
    /* 12-hour clock: 12:xx AM is 00:xx, 12:xx PM is 12:xx. */
    *h24 = (int)(hh == 12 ? 0 : hh) + ((a == 'P' || a == 'p') ? 12 : 0);
    *mi = (int)mm;
    return 1;
}

static void check(const char *date, const char *time)
{
    char *out = malloc(20), want[32];
    int y = 0, m = 0, d = 0, h = 0, mi = 0;
    int date_ok = !date || ref_date(date, &y, &m, &d);
    int time_ok = !time || ref_time(time, &h, &mi);
    k2_reason_e rv;

    memset(out, 'x', 20);
    rv = k2_timestamp(date, time, out);
    if (!date_ok) {
        FUZZ_ASSERT(rv == K2_BAD_DATE);
    }
    else if (!time_ok) {
        FUZZ_ASSERT(rv == K2_BAD_TIME);
    }
    else {
        FUZZ_ASSERT(rv == K2_OK);
    }
    if (rv == K2_OK && date && time) {
        size_t i;

        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:00",
                 y, m, d, h, mi);
        FUZZ_ASSERT(strlen(out) == 19);
        for (i = 0; i < 19; i++) {
            /* YYYY-MM-DDTHH:MM:00 */
            FUZZ_ASSERT(("dddd-dd-ddTdd:dd:00"[i] == 'd')
                        ? (out[i] >= '0' && out[i] <= '9')
                        : out[i] == "dddd-dd-ddTdd:dd:00"[i]);
        }
        FUZZ_ASSERT(strcmp(out, want) == 0);
    }
    else {
        FUZZ_ASSERT(out[0] == '\0');
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut;
    char *date, *time = NULL;

    for (cut = 0; cut < size && data[cut] != '\0' && data[cut] != '\n'; cut++) {
    }
    date = fuzz_strndup(data, cut);
    if (cut < size) {
        time = fuzz_strndup(data + cut + 1, size - cut - 1);
    }
    check(date, time);
    check(date, NULL);
    if (time) {
        check(NULL, time);
    }
    check(NULL, NULL);
    free(date);
    free(time);
    return 0;
}
