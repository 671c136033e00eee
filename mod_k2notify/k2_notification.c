/* k2_notification.c: the fields of a K2 notification and their validation. */
#include <string.h>

#include "k2_notification.h"

static const char *const k2_field_names[K2_F_COUNT] = {
    "k2_account_id", "k2_transaction_id", "mm_system_id", "mp_transaction_id",
    "biller_number", "transaction_date", "transaction_time", "transaction_type",
    "ac_no", "sender", "first_name", "last_name", "middle_name", "amount",
    "currency",
    "transaction_timestamp", "remote_user"
};

/* The parameters a notification cannot do without (issue 2, "400"). */
static const int k2_required[] = {
    K2_F_K2_TRANSACTION_ID, K2_F_AC_NO, K2_F_AMOUNT, K2_F_CURRENCY
};

const char *k2_field_name(int field)
{
    return (field >= 0 && field < K2_F_COUNT) ? k2_field_names[field] : NULL;
}

int k2_field_lookup(const char *name, size_t len, int params_only)
{
    int i, last = params_only ? K2_F_NPARAMS : K2_F_COUNT;

    for (i = 0; i < last; i++) {
        if (strlen(k2_field_names[i]) == len
            && memcmp(k2_field_names[i], name, len) == 0) {
            return i;
        }
    }
    return -1;
}

const char *k2_reason(k2_reason_e reason)
{
    switch (reason) {
    case K2_OK:               return "ok";
    case K2_BAD_ESCAPE:       return "broken percent-encoding";
    case K2_BAD_NUL:          return "NUL byte in a parameter";
    case K2_BAD_CONTROL:      return "control character in a parameter";
    case K2_BAD_UTF8:         return "parameter is not valid UTF-8";
    case K2_BAD_EMPTY_NAME:   return "parameter with an empty name";
    case K2_BAD_CONFLICT:     return "parameter given twice with different values";
    case K2_BAD_MISSING:      return "required parameter missing or empty";
    case K2_BAD_DATE:         return "transaction_date is not D/M/YY or D/M/YYYY";
    case K2_BAD_TIME:         return "transaction_time is not H:MM AM|PM";
    case K2_INVALID_AMOUNT:   return "amount is not a positive decimal with at most two decimals";
    case K2_INVALID_CURRENCY: return "currency not accepted";
    case K2_INVALID_BILLER:   return "biller_number not accepted";
    }
    return "unknown reason";
}

int k2_reason_is_invalid_payment(k2_reason_e reason)
{
    return reason == K2_INVALID_AMOUNT || reason == K2_INVALID_CURRENCY
           || reason == K2_INVALID_BILLER;
}

void k2_notification_init(k2_notification_t *n)
{
    memset(n, 0, sizeof(*n));
    n->conflict_field = -1;
    n->missing_field = -1;
}

static int k2_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

int k2_amount_valid(const char *s)
{
    size_t ints = 0, decs = 0;
    int nonzero = 0;

    for (; k2_isdigit(*s); s++, ints++) {
        nonzero |= (*s != '0');
    }
    if (ints == 0 || ints > 15) {
        return 0;
    }
    if (*s == '.') {
        for (s++; k2_isdigit(*s); s++, decs++) {
            nonzero |= (*s != '0');
        }
        if (decs == 0 || decs > 2) {
            return 0;
        }
    }
    return *s == '\0' && nonzero;
}

/* Split a plain decimal into its integer digits without leading zeros and
 * its fraction without trailing zeros.  0 if s is not one. */
static int k2_decimal_parts(const char *s, const char **ip, size_t *ilen,
                            const char **fp, size_t *flen)
{
    const char *dot;

    while (*s == '0' && k2_isdigit(s[1])) {
        s++;
    }
    *ip = s;
    for (*ilen = 0; k2_isdigit(s[*ilen]); (*ilen)++) {
    }
    if (*ilen == 0) {
        return 0;
    }
    dot = s + *ilen;
    *fp = dot;
    *flen = 0;
    if (*dot == '.') {
        *fp = dot + 1;
        while (k2_isdigit((*fp)[*flen])) {
            (*flen)++;
        }
        if (*flen == 0 || (*fp)[*flen] != '\0') {
            return 0;
        }
        while (*flen > 0 && (*fp)[*flen - 1] == '0') {
            (*flen)--;
        }
    }
    else if (*dot != '\0') {
        return 0;
    }
    return 1;
}

int k2_amount_equal(const char *a, const char *b)
{
    const char *ai, *af, *bi, *bf;
    size_t ail, afl, bil, bfl;

    if (!k2_decimal_parts(a, &ai, &ail, &af, &afl)
        || !k2_decimal_parts(b, &bi, &bil, &bf, &bfl)) {
        return 0;
    }
    return ail == bil && afl == bfl && memcmp(ai, bi, ail) == 0
           && memcmp(af, bf, afl) == 0;
}

/* Read 1..max digits at *s into *val; advance *s.  0 if none or too many. */
static int k2_number(const char **s, int max, int *val, int *ndigits)
{
    int n = 0, v = 0;

    while (k2_isdigit(**s)) {
        if (++n > max) {
            return 0;
        }
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    *val = v;
    *ndigits = n;
    return n > 0;
}

static int k2_days_in_month(int year, int month)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return (month == 2 && leap) ? 29 : days[month - 1];
}

static int k2_parse_date(const char *s, int *y, int *m, int *d)
{
    int nd;

    if (!k2_number(&s, 2, d, &nd) || *s++ != '/'
        || !k2_number(&s, 2, m, &nd) || *s++ != '/'
        || !k2_number(&s, 4, y, &nd) || *s != '\0'
        || (nd != 2 && nd != 4)) {
        return 0;
    }
    if (nd == 2) {
        *y += 2000;
    }
    if (*y < 1970 || *m < 1 || *m > 12) {
        return 0;
    }
    return *d >= 1 && *d <= k2_days_in_month(*y, *m);
}

static int k2_parse_time(const char *s, int *h, int *mi)
{
    int nd, pm;

    if (!k2_number(&s, 2, h, &nd) || *s++ != ':'
        || !k2_number(&s, 2, mi, &nd) || nd != 2 || *s++ != ' ') {
        return 0;
    }
    if ((s[0] == 'A' || s[0] == 'a') && (s[1] == 'M' || s[1] == 'm')) {
        pm = 0;
    }
    else if ((s[0] == 'P' || s[0] == 'p') && (s[1] == 'M' || s[1] == 'm')) {
        pm = 1;
    }
    else {
        return 0;
    }
    if (s[2] != '\0' || *h < 1 || *h > 12 || *mi > 59) {
        return 0;
    }
    *h = (*h % 12) + (pm ? 12 : 0);     /* 12:xx AM is 00:xx, 12:xx PM 12:xx */
    return 1;
}

k2_reason_e k2_timestamp(const char *date, const char *time, char out[20])
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0;

    out[0] = '\0';
    if (date && !k2_parse_date(date, &y, &mo, &d)) {
        return K2_BAD_DATE;
    }
    if (time && !k2_parse_time(time, &h, &mi)) {
        return K2_BAD_TIME;
    }
    if (date && time) {
        /* Every part is range-checked above: the result is exactly 19 bytes. */
        out[0] = (char)('0' + y / 1000);
        out[1] = (char)('0' + y / 100 % 10);
        out[2] = (char)('0' + y / 10 % 10);
        out[3] = (char)('0' + y % 10);
        out[4] = '-';
        out[5] = (char)('0' + mo / 10);
        out[6] = (char)('0' + mo % 10);
        out[7] = '-';
        out[8] = (char)('0' + d / 10);
        out[9] = (char)('0' + d % 10);
        out[10] = 'T';
        out[11] = (char)('0' + h / 10);
        out[12] = (char)('0' + h % 10);
        out[13] = ':';
        out[14] = (char)('0' + mi / 10);
        out[15] = (char)('0' + mi % 10);
        memcpy(out + 16, ":00", 4);
    }
    return K2_OK;
}

static int k2_in_list(const char *value, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(*list, value) == 0) {
            return 1;
        }
    }
    return 0;
}

k2_reason_e k2_notification_validate(k2_notification_t *n,
                                     const char *const *currencies,
                                     const char *const *billers)
{
    size_t i;
    k2_reason_e rv;

    for (i = 0; i < sizeof(k2_required) / sizeof(k2_required[0]); i++) {
        const char *v = n->value[k2_required[i]];

        if (!v || !*v) {
            n->missing_field = k2_required[i];
            return K2_BAD_MISSING;
        }
    }
    for (i = 0; i < K2_F_NPARAMS; i++) {
        if (n->value[i] && !*n->value[i]) {
            n->value[i] = NULL;         /* an empty optional field is absent */
        }
    }
    rv = k2_timestamp(n->value[K2_F_TRANSACTION_DATE],
                      n->value[K2_F_TRANSACTION_TIME], n->timestamp);
    if (rv != K2_OK) {
        return rv;
    }
    n->value[K2_F_TRANSACTION_TIMESTAMP] = n->timestamp[0] ? n->timestamp : NULL;
    if (!k2_amount_valid(n->value[K2_F_AMOUNT])) {
        return K2_INVALID_AMOUNT;
    }
    if (!k2_in_list(n->value[K2_F_CURRENCY], currencies)) {
        return K2_INVALID_CURRENCY;
    }
    if (billers && (!n->value[K2_F_BILLER_NUMBER]
                    || !k2_in_list(n->value[K2_F_BILLER_NUMBER], billers))) {
        return K2_INVALID_BILLER;
    }
    return K2_OK;
}

const char *k2_status_code(k2_status_e status)
{
    switch (status) {
    case K2_STATUS_ACCEPTED:          return "01";
    case K2_STATUS_ACCOUNT_NOT_FOUND: return "02";
    case K2_STATUS_INVALID_PAYMENT:   return "03";
    }
    return "";
}

const char *k2_status_description(k2_status_e status)
{
    switch (status) {
    case K2_STATUS_ACCEPTED:          return "Accepted";
    case K2_STATUS_ACCOUNT_NOT_FOUND: return "Account not Found";
    case K2_STATUS_INVALID_PAYMENT:   return "Invalid Payment";
    }
    return "";
}
