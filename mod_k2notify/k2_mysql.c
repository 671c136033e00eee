/* k2_mysql.c: configtest's reading of a MySQL / MariaDB configuration (see
 * k2_mysql.h for why each problem is one). */
#include <string.h>
#include <strings.h>

#include "k2_mysql.h"

/* -- DBDParams ---------------------------------------------------------------- */

/* The driver's keys, in its order: a key selects the first it prefixes. */
static const char *const k2_my_keys[] = {
    "host", "user", "pass", "dbname", "port", "sock", "flags", "fldsz",
    "group", "reconnect", NULL
};

static int k2_my_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int k2_my_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

/* The driver's value delimiters (and a NUL). */
static int k2_my_delim(unsigned char c)
{
    return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n'
           || c == ';' || c == '|' || c == ',';
}

static void k2_my_found(k2_mysql_finding_t *f, k2_mysql_problem_e problem,
                        const char *at, size_t len)
{
    if (f->problem == K2_MYSQL_OK) {
        f->problem = problem;
        f->at = at;
        f->len = len;
    }
}

/* The known key that key (klen letters) selects, as the driver matches it,
 * or NULL.  With klen 0 the driver takes the first ("host"): not a key
 * anyone meant, so NULL. */
static const char *k2_my_key(const char *key, size_t klen)
{
    int i;

    if (klen == 0) {
        return NULL;
    }
    for (i = 0; k2_my_keys[i]; i++) {
        if (strncasecmp(k2_my_keys[i], key, klen) == 0) {
            return k2_my_keys[i];
        }
    }
    return NULL;
}

/* A stray word at s, after the pair whose key is at last. */
static void k2_my_stray(k2_mysql_finding_t *f, const char *s, const char *last,
                        size_t last_len)
{
    const char *e = s;

    while (!k2_my_delim((unsigned char)*e)) {
        e++;
    }
    if (f->problem == K2_MYSQL_OK) {
        k2_my_found(f, K2_MYSQL_STRAY_WORD, s, (size_t)(e - s));
        f->after = last;
        f->after_len = last_len;
    }
}

void k2_mysql_params_check(const char *params, k2_mysql_finding_t *f)
{
    const char *p = params, *eq;
    const char *done = params;          /* everything before is accounted for */
    const char *last = NULL;            /* the last "key=" */
    size_t last_len = 0;

    memset(f, 0, sizeof(*f));
    while ((eq = strchr(p, '=')) != NULL) {
        const char *key = eq, *word, *value, *known, *s;
        size_t klen, vlen;

        while (key > params && k2_my_space((unsigned char)key[-1])) {
            key--;                      /* "host = x" */
        }
        s = key;
        while (key > params && k2_my_alpha((unsigned char)key[-1])) {
            key--;
        }
        klen = (size_t)(s - key);
        /* The word as written, for the message (the driver sees only the
         * letters: "ssl_ca" is key "ca" to it). */
        word = key;
        while (word > done && !k2_my_delim((unsigned char)word[-1])
               && word[-1] != '=') {
            word--;
        }
        /* Whatever stands between the last value and this key. */
        for (s = done; s < word; s++) {
            if (!k2_my_delim((unsigned char)*s)) {
                k2_my_stray(f, s, last, last_len);
                break;
            }
        }
        value = eq + 1;
        while (k2_my_space((unsigned char)*value)) {
            value++;
        }
        vlen = strcspn(value, " \r\n\t;|,");
        known = word == key ? k2_my_key(key, klen) : NULL;
        if (eq == params) {
            known = NULL;               /* the driver skips a leading '=' */
        }
        if (!known) {
            if ((klen >= 4 && strncasecmp(key, "pass", 4) == 0)
                || (klen >= 2 && strncasecmp(key, "pw", 2) == 0)) {
                k2_my_found(f, K2_MYSQL_PASSWORD, word, (size_t)(eq - word) + 1);
            }
            else {
                k2_my_found(f, K2_MYSQL_UNKNOWN_KEY, word,
                            (size_t)(eq - word) + 1);
            }
        }
        else if (strcmp(known, "flags") == 0) {
            k2_my_found(f, K2_MYSQL_FLAGS, word,
                        (size_t)(value + vlen - word));
        }
        else if (value > eq + 1 && memchr(value, '=', vlen) != NULL) {
            /* "pass= user=k2": an empty value takes the next pair */
            k2_my_found(f, K2_MYSQL_STRAY_WORD, word,
                        (size_t)(value + vlen - word));
            f->after = word;
            f->after_len = (size_t)(eq - word) + 1;
        }
        last = word;
        last_len = (size_t)(eq - word) + 1;
        p = done = value + vlen;
        if (!*p) {
            break;
        }
    }
    for (; *done; done++) {
        if (!k2_my_delim((unsigned char)*done)) {
            k2_my_stray(f, done, last, last_len);
            break;
        }
    }
}

/* -- a record statement -------------------------------------------------------- */

typedef enum {
    K2_TK_END = 0,
    K2_TK_WORD,                         /* a keyword, name or number */
    K2_TK_NAME,                         /* `a backquoted name` */
    K2_TK_STRING,                       /* '...' or "..." */
    K2_TK_PLACEHOLDER,                  /* %s */
    K2_TK_PUNCT                         /* one character: ( ) , . = ; ... */
} k2_tk_e;

typedef struct {
    k2_tk_e kind;
    const char *s;
    size_t len;
} k2_tk_t;

/* The lexer's position: copied to look ahead. */
typedef struct {
    const char *p;
    int in_exec;                        /* inside an executable comment */
    k2_mysql_finding_t *f;
} k2_lex_t;

static int k2_my_ident(unsigned char c)
{
    return k2_my_alpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '$'
           || c >= 0x80;
}

/* A placeholder where mod_dbd still sees one (apr_dbd_prepare reads '%'
 * and a letter everywhere) but MySQL reads text. */
static void k2_my_quoted(k2_lex_t *lx, const char *p)
{
    if (p[0] == '%' && k2_my_alpha((unsigned char)p[1])) {
        k2_my_found(lx->f, K2_MYSQL_QUOTED_PLACEHOLDER, p, 2);
    }
}

/* Skip spaces and comments; an executable comment's text is code. */
static void k2_my_skip(k2_lex_t *lx)
{
    const char *p = lx->p;

    for (;;) {
        if (k2_my_space((unsigned char)*p)) {
            p++;
        }
        else if (*p == '#' || (p[0] == '-' && p[1] == '-'
                               && (p[2] == '\0' || k2_my_space((unsigned char)p[2])
                                   || (unsigned char)p[2] < 0x20))) {
            while (*p && *p != '\n') {
                k2_my_quoted(lx, p);
                p++;
            }
        }
        else if (p[0] == '/' && p[1] == '*'
                 && (p[2] == '!' || (p[2] == 'M' && p[3] == '!'))) {
            p += p[2] == '!' ? 3 : 4;   /* MySQL's and MariaDB's */
            while (*p >= '0' && *p <= '9') {
                p++;                    /* the version it needs */
            }
            lx->in_exec = 1;
        }
        else if (p[0] == '/' && p[1] == '*') {
            for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++) {
                k2_my_quoted(lx, p);
            }
            p += *p ? 2 : 0;
        }
        else if (lx->in_exec && p[0] == '*' && p[1] == '/') {
            lx->in_exec = 0;
            p += 2;
        }
        else {
            break;
        }
    }
    lx->p = p;
}

static k2_tk_t k2_my_next(k2_lex_t *lx)
{
    k2_tk_t t;
    const char *p;

    k2_my_skip(lx);
    p = lx->p;
    t.s = p;
    t.len = 0;
    if (!*p) {
        t.kind = K2_TK_END;
        return t;
    }
    if (*p == '\'' || *p == '"' || *p == '`') {
        char q = *p;

        for (p++; *p; p++) {
            if (q != '`' && *p == '\\' && p[1]) {
                p++;                    /* \' \\ \% ... */
                continue;
            }
            if (*p == q) {
                if (p[1] == q) {
                    p++;                /* '' is a quote */
                    continue;
                }
                break;
            }
            k2_my_quoted(lx, p);
        }
        p += *p ? 1 : 0;
        t.kind = q == '`' ? K2_TK_NAME : K2_TK_STRING;
    }
    else if (p[0] == '%' && p[1] == '%') {
        p += 2;
        t.kind = K2_TK_PUNCT;
    }
    else if (p[0] == '%' && k2_my_alpha((unsigned char)p[1])) {
        p += 2;
        t.kind = K2_TK_PLACEHOLDER;
    }
    else if (k2_my_ident((unsigned char)*p)) {
        while (k2_my_ident((unsigned char)*p)) {
            p++;
        }
        t.kind = K2_TK_WORD;
    }
    else {
        p++;
        t.kind = K2_TK_PUNCT;
    }
    t.len = (size_t)(p - t.s);
    lx->p = p;
    return t;
}

static k2_tk_t k2_my_peek(const k2_lex_t *lx)
{
    k2_lex_t copy = *lx;
    k2_mysql_finding_t scratch;

    memset(&scratch, 0, sizeof(scratch));
    copy.f = &scratch;                  /* found again when consumed */
    return k2_my_next(&copy);
}

static int k2_my_is(k2_tk_t t, const char *word)
{
    return t.kind == K2_TK_WORD && strlen(word) == t.len
           && strncasecmp(t.s, word, t.len) == 0;
}

static int k2_my_punct(k2_tk_t t, char c)
{
    return t.kind == K2_TK_PUNCT && t.len == 1 && t.s[0] == c;
}

/* A column reference, a or t.a or `t`.`a`: up to 3 parts.  Returns the
 * number of parts (0: not a name), and leaves the lexer after it. */
#define K2_NAME_PARTS 3
typedef struct {
    int n;
    k2_tk_t part[K2_NAME_PARTS];
} k2_name_t;

static int k2_my_name(k2_lex_t *lx, k2_name_t *name)
{
    name->n = 0;
    for (;;) {
        k2_tk_t t = k2_my_peek(lx);

        if ((t.kind != K2_TK_WORD && t.kind != K2_TK_NAME)
            || name->n == K2_NAME_PARTS) {
            return name->n = 0;
        }
        name->part[name->n++] = k2_my_next(lx);
        if (!k2_my_punct(k2_my_peek(lx), '.')) {
            return name->n;
        }
        k2_my_next(lx);
    }
}

/* A name part as MySQL compares it: without its backquotes, ignoring case. */
static int k2_my_same_part(k2_tk_t a, k2_tk_t b)
{
    const char *as = a.s, *bs = b.s;
    size_t al = a.len, bl = b.len;

    if (a.kind == K2_TK_NAME) {
        as++;
        al -= al >= 2 ? 2 : al;
    }
    if (b.kind == K2_TK_NAME) {
        bs++;
        bl -= bl >= 2 ? 2 : bl;
    }
    return al == bl && strncasecmp(as, bs, al) == 0
           && !memchr(as, '`', al);     /* `a``b` is not compared */
}

static int k2_my_same_name(const k2_name_t *a, const k2_name_t *b)
{
    int i;

    if (a->n != b->n) {
        return 0;
    }
    for (i = 0; i < a->n; i++) {
        if (!k2_my_same_part(a->part[i], b->part[i])) {
            return 0;
        }
    }
    return 1;
}

/* After ON DUPLICATE KEY UPDATE: every assignment must be a = a. */
static void k2_my_assignments(k2_lex_t *lx, const char *start)
{
    for (;;) {
        k2_name_t lhs, rhs;
        k2_tk_t t;

        if (!k2_my_name(lx, &lhs) || !k2_my_punct(k2_my_next(lx), '=')
            || !k2_my_name(lx, &rhs) || !k2_my_same_name(&lhs, &rhs)) {
            k2_my_found(lx->f, K2_MYSQL_UPDATE_CHANGES, start, strlen(start));
            return;
        }
        t = k2_my_peek(lx);
        if (t.kind == K2_TK_END || k2_my_punct(t, ';')) {
            return;
        }
        if (!k2_my_punct(t, ',')) {
            /* a = a + 1, a = a OR ... */
            k2_my_found(lx->f, K2_MYSQL_UPDATE_CHANGES, start, strlen(start));
            return;
        }
        k2_my_next(lx);
    }
}

static int k2_my_decimal_type(k2_tk_t t)
{
    return k2_my_is(t, "decimal") || k2_my_is(t, "dec")
           || k2_my_is(t, "numeric") || k2_my_is(t, "fixed");
}

/* After the type word of a CAST or CONVERT: DECIMAL(M, D) with D >= 2, or
 * a finding at start. */
static void k2_my_decimal_args(k2_lex_t *lx, const char *start)
{
    k2_tk_t t = k2_my_peek(lx), m, d;
    size_t i, scale = 0;

    if (k2_my_punct(t, '(')) {
        k2_my_next(lx);
        m = k2_my_next(lx);
        if (m.kind == K2_TK_WORD && k2_my_punct(k2_my_next(lx), ',')) {
            d = k2_my_next(lx);
            for (i = 0; d.kind == K2_TK_WORD && i < d.len; i++) {
                if (d.s[i] < '0' || d.s[i] > '9') {
                    scale = 0;
                    break;
                }
                scale = scale * 10 + (size_t)(d.s[i] - '0');
                if (scale > 99) {
                    break;
                }
            }
        }
    }
    if (scale < 2) {
        k2_my_found(lx->f, K2_MYSQL_DECIMAL_SCALE, start,
                    (size_t)(lx->p - start));
    }
}

/* CAST(expr AS type) or CONVERT(expr, type), the lexer after the '(':
 * the type, if it is a decimal one, must keep cents. */
static void k2_my_conversion(k2_lex_t *lx, const char *start, int cast)
{
    int depth = 1;

    while (depth > 0) {
        k2_tk_t t = k2_my_next(lx);

        if (t.kind == K2_TK_END) {
            return;
        }
        if (k2_my_punct(t, '(')) {
            depth++;
        }
        else if (k2_my_punct(t, ')')) {
            depth--;
        }
        else if (depth == 1 && (cast ? k2_my_is(t, "as") : k2_my_punct(t, ','))
                 && k2_my_decimal_type(k2_my_peek(lx))) {
            k2_my_next(lx);
            k2_my_decimal_args(lx, start);
        }
    }
}

void k2_mysql_record_check(const char *sql, k2_mysql_finding_t *f)
{
    k2_lex_t lx;
    k2_tk_t t, prev[3];
    int first = 1;

    memset(f, 0, sizeof(*f));
    memset(prev, 0, sizeof(prev));
    lx.p = sql;
    lx.in_exec = 0;
    lx.f = f;
    while ((t = k2_my_next(&lx)).kind != K2_TK_END) {
        if (first && k2_my_is(t, "replace")) {
            k2_my_found(f, K2_MYSQL_REPLACE, t.s, t.len);
        }
        first = 0;
        if (k2_my_is(t, "ignore")) {
            k2_tk_t next = k2_my_peek(&lx);

            if (!k2_my_is(next, "index") && !k2_my_is(next, "key")) {
                k2_my_found(f, K2_MYSQL_IGNORE, t.s, t.len);
            }
        }
        else if (k2_my_is(t, "conflict") && k2_my_is(prev[2], "on")) {
            k2_my_found(f, K2_MYSQL_ON_CONFLICT, prev[2].s,
                        (size_t)(t.s + t.len - prev[2].s));
        }
        else if (k2_my_is(t, "update") && k2_my_is(prev[2], "key")
                 && k2_my_is(prev[1], "duplicate") && k2_my_is(prev[0], "on")) {
            k2_my_assignments(&lx, prev[0].s);
        }
        else if ((k2_my_is(t, "cast") || k2_my_is(t, "convert"))
                 && k2_my_punct(k2_my_peek(&lx), '(')) {
            int cast = k2_my_is(t, "cast");

            k2_my_next(&lx);
            k2_my_conversion(&lx, t.s, cast);
        }
        prev[0] = prev[1];
        prev[1] = prev[2];
        prev[2] = t;
    }
}

const char *k2_mysql_problem_why(k2_mysql_problem_e problem)
{
    switch (problem) {
    case K2_MYSQL_OK:
        return "no problem";
    case K2_MYSQL_PASSWORD:
        return "the mysql driver reads the password from pass= and ignores "
               "any other key silently (the server then refuses the "
               "connection: \"Access denied ... (using password: NO)\"): "
               "write pass=";
    case K2_MYSQL_UNKNOWN_KEY:
        return "the mysql driver knows only host, user, pass, dbname, port, "
               "sock, flags, fldsz, group and reconnect (a key's letters, "
               "matched as a prefix) and ignores any other key silently; TLS "
               "and the character set are set in an option-file group named "
               "by group= (docs/mysql.md)";
    case K2_MYSQL_STRAY_WORD:
        return "it is not key=value as the mysql driver reads it: a value "
               "ends at a space, tab, ';', '|' or ',' (a password holding "
               "one is cut there), an empty value takes the next word, and "
               "what is left is ignored silently; DBDParams has no quoting: "
               "choose a password without those characters, or set it in "
               "an option-file group named by group=";
    case K2_MYSQL_FLAGS:
        return "the mysql driver knows one flag, CLIENT_FOUND_ROWS (any other "
               "is ignored), and with it an unchanged row counts 1: every "
               "resend would be logged accepted instead of duplicate";
    case K2_MYSQL_IGNORE:
        return "IGNORE turns errors into warnings, even in strict mode: a "
               "value too long for its column is cut, an amount too large is "
               "clipped (1000000000000 stored as 999999999999.99 in "
               "DECIMAL(14,2)), and the notification would be answered 01 "
               "for a row that is not what K2 sent; write INSERT ... ON "
               "DUPLICATE KEY UPDATE k2_transaction_id = k2_transaction_id";
    case K2_MYSQL_REPLACE:
        return "REPLACE deletes the stored row and inserts the new one: a "
               "resend, or another payment reusing the transaction id, would "
               "overwrite a recorded payment; write INSERT ... ON DUPLICATE "
               "KEY UPDATE k2_transaction_id = k2_transaction_id";
    case K2_MYSQL_UPDATE_CHANGES:
        return "ON DUPLICATE KEY UPDATE may only set a column to itself "
               "(k2_transaction_id = k2_transaction_id, 0 rows on a resend): "
               "any other assignment overwrites the stored payment when K2 "
               "resends (2 rows affected), where a resend with another amount "
               "must leave it as it is and be answered 03";
    case K2_MYSQL_ON_CONFLICT:
        return "MySQL and MariaDB have no ON CONFLICT clause (the statement "
               "would not prepare): write ON DUPLICATE KEY UPDATE "
               "k2_transaction_id = k2_transaction_id, which affects 0 rows "
               "on a resend";
    case K2_MYSQL_DECIMAL_SCALE:
        return "a DECIMAL without 2 decimals rounds the amount (DECIMAL alone "
               "is DECIMAL(10,0): 1500.50 stored as 1501.00, 7.10 as 7.00); "
               "bind the amount as it is, the column's DECIMAL(17,2) converts "
               "the text exactly, or write DECIMAL(17,2)";
    case K2_MYSQL_QUOTED_PLACEHOLDER:
        return "by MySQL's rules (a backslash escapes the next character in "
               "a string, '\"' quotes a string, '#' starts a comment) this "
               "placeholder is inside a string or a comment: mod_dbd would "
               "not bind it there; write %s without quotes";
    }
    return "?";
}
