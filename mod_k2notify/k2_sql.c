/* k2_sql.c: a lexer just large enough to find misplaced placeholders and a
 * RETURNING clause (see k2_sql.h for why it exists). */
#include <string.h>
#include <strings.h>

#include "k2_sql.h"

static int k2_sql_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
           || c >= 0x80;
}

static int k2_sql_ident_char(unsigned char c)
{
    return k2_sql_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int k2_sql_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

const char *k2_sql_context_name(k2_sql_context_e where)
{
    switch (where) {
    case K2_SQL_PLAIN:           return "the statement";
    case K2_SQL_IN_STRING:       return "a quoted string";
    case K2_SQL_IN_IDENTIFIER:   return "a double-quoted (or backquoted) name";
    case K2_SQL_IN_DOLLAR_QUOTE: return "a dollar-quoted string";
    case K2_SQL_IN_COMMENT:      return "an SQL comment";
    }
    return "?";
}

void k2_sql_scan(const char *sql, k2_sql_info_t *info)
{
    const unsigned char *s = (const unsigned char *)sql;
    const unsigned char *start = s;
    k2_sql_context_e ctx = K2_SQL_PLAIN;
    unsigned char close = 0;            /* of a quoted identifier */
    int backslash = 0;                  /* E'...': backslash escapes */
    int line_comment = 0;               /* -- (else a block comment) */
    const unsigned char *tag = NULL;    /* of a dollar quote, both '$' */
    size_t taglen = 0;

    memset(info, 0, sizeof(*info));
    while (*s) {
        /* Placeholders first: apr_dbd_prepare() sees them everywhere. */
        if (s[0] == '%') {
            if (s[1] == '%') {
                s += 2;
                continue;
            }
            if (k2_sql_alpha(s[1])) {
                info->placeholders++;
                if (s[1] != 's' && !info->bad) {
                    info->bad = (const char *)s;
                }
                if (ctx != K2_SQL_PLAIN && !info->misplaced) {
                    info->misplaced = (const char *)s;
                    info->where = ctx;
                }
                s += 2;
                continue;
            }
            s++;
            continue;
        }
        switch (ctx) {
        case K2_SQL_PLAIN:
            if (s[0] == '\'') {
                backslash = s > start && (s[-1] == 'E' || s[-1] == 'e')
                            && (s - 1 == start || !k2_sql_ident_char(s[-2]));
                ctx = K2_SQL_IN_STRING;
                s++;
            }
            else if (s[0] == '"' || s[0] == '`') {
                close = s[0];
                ctx = K2_SQL_IN_IDENTIFIER;
                s++;
            }
            else if ((s[0] == '-' && s[1] == '-') || (s[0] == '/' && s[1] == '*')) {
                line_comment = s[0] == '-';
                ctx = K2_SQL_IN_COMMENT;
                s += 2;
            }
            else if (s[0] == '$' && (s == start || !k2_sql_ident_char(s[-1]))
                     && (s[1] == '$' || k2_sql_ident_start(s[1]))) {
                /* $$ or $tag$; $1 is a parameter, not a quote */
                const unsigned char *e = s + 1;

                while (*e != '$' && k2_sql_ident_char(*e)) {
                    e++;
                }
                if (*e == '$') {
                    tag = s;
                    taglen = (size_t)(e - s) + 1;
                    ctx = K2_SQL_IN_DOLLAR_QUOTE;
                    s = e + 1;
                }
                else {
                    s = e;
                }
            }
            else if (k2_sql_ident_start(s[0])
                     && (s == start || !k2_sql_ident_char(s[-1]))) {
                const unsigned char *e = s;

                while (k2_sql_ident_char(*e)) {
                    e++;
                }
                if (e - s == 9 && strncasecmp((const char *)s, "returning", 9) == 0
                    && !info->returning) {
                    info->returning = (const char *)s;
                }
                s = e;
            }
            else {
                s++;
            }
            break;
        case K2_SQL_IN_STRING:
            if (backslash && s[0] == '\\' && s[1] && s[1] != '%') {
                s += 2;
            }
            else if (s[0] == '\'' && s[1] == '\'') {
                s += 2;
            }
            else {
                ctx = s[0] == '\'' ? K2_SQL_PLAIN : ctx;
                s++;
            }
            break;
        case K2_SQL_IN_IDENTIFIER:
            if (s[0] == close && s[1] == close) {
                s += 2;
            }
            else {
                ctx = s[0] == close ? K2_SQL_PLAIN : ctx;
                s++;
            }
            break;
        case K2_SQL_IN_DOLLAR_QUOTE:
            if (s[0] == '$' && strncmp((const char *)s, (const char *)tag, taglen) == 0) {
                ctx = K2_SQL_PLAIN;
                s += taglen;
            }
            else {
                s++;
            }
            break;
        case K2_SQL_IN_COMMENT:
            if (line_comment ? s[0] == '\n' : (s[0] == '*' && s[1] == '/')) {
                s += line_comment ? 1 : 2;
                ctx = K2_SQL_PLAIN;
            }
            else {
                s++;
            }
            break;
        }
    }
}

/* -- the ON CONFLICT key of an INSERT ----------------------------------------- */

typedef enum {
    K2_TOK_END = 0,
    K2_TOK_WORD,                /* a name or keyword, plain or quoted */
    K2_TOK_PLACEHOLDER,         /* '%' + a letter */
    K2_TOK_PUNCT,               /* one character: ( ) , . ; ... */
    K2_TOK_OTHER                /* a string, a number, an operator */
} k2_tok_e;

typedef struct {
    const char *s;              /* where the next token is looked for */
    k2_tok_e type;
    const char *text;           /* the token (a quoted name: inside quotes) */
    size_t len;
    int quoted;
} k2_tok_t;

static void k2_tok_next(k2_tok_t *t)
{
    const unsigned char *s = (const unsigned char *)t->s;

    for (;;) {                  /* blanks and comments */
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'
               || *s == '\f' || *s == '\v') {
            s++;
        }
        if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n') {
                s++;
            }
        }
        else if (s[0] == '/' && s[1] == '*') {
            s += 2;
            while (*s && !(s[0] == '*' && s[1] == '/')) {
                s++;
            }
            s += *s ? 2 : 0;
        }
        else {
            break;
        }
    }
    t->text = (const char *)s;
    t->quoted = 0;
    if (!*s) {
        t->type = K2_TOK_END;
        t->len = 0;
    }
    else if (s[0] == '%' && k2_sql_alpha(s[1])) {
        t->type = K2_TOK_PLACEHOLDER;
        t->len = 2;
    }
    else if (k2_sql_ident_start(*s)) {
        const unsigned char *e = s;

        while (k2_sql_ident_char(*e)) {
            e++;
        }
        t->type = K2_TOK_WORD;
        t->len = (size_t)(e - s);
    }
    else if (*s == '"' || *s == '`' || *s == '\'') {
        unsigned char close = *s;
        const unsigned char *e = s + 1;

        while (*e && !(*e == close && e[1] != close)) {
            e += *e == close ? 2 : 1;
        }
        t->type = close == '\'' ? K2_TOK_OTHER : K2_TOK_WORD;
        t->quoted = 1;
        t->text = (const char *)s + 1;
        t->len = (size_t)(e - s - 1);
        t->s = (const char *)(*e ? e + 1 : e);
        return;
    }
    else if (strchr("(),.;", *s)) {
        t->type = K2_TOK_PUNCT;
        t->len = 1;
    }
    else if (s[0] == '%' && s[1] == '%') {
        t->type = K2_TOK_OTHER;         /* a literal percent sign */
        t->len = 2;
    }
    else {
        const unsigned char *e = s + 1;

        while (*e && !k2_sql_ident_start(*e) && !strchr(" \t\r\n(),.;'\"`%", *e)) {
            e++;
        }
        t->type = K2_TOK_OTHER;
        t->len = (size_t)(e - s);
    }
    t->s = t->text + t->len;
}

static int k2_tok_is(const k2_tok_t *t, const char *word)
{
    size_t n = strlen(word);

    if (t->type == K2_TOK_PUNCT) {
        return n == 1 && t->text[0] == word[0];
    }
    return t->type == K2_TOK_WORD && !t->quoted && t->len == n
           && strncasecmp(t->text, word, n) == 0;
}

/* Take the token if it is word (or punctuation): 1 if taken. */
static int k2_tok_take(k2_tok_t *t, const char *word)
{
    if (!k2_tok_is(t, word)) {
        return 0;
    }
    k2_tok_next(t);
    return 1;
}

#define K2_SQL_MAX_COLUMNS 128

typedef struct {
    const char *name;
    size_t len;
    int quoted;
    int first, count;           /* its value's placeholders, count -1: a
                                 * value of another shape */
} k2_sql_column_t;

static int k2_sql_same_name(const char *a, size_t alen, int aq,
                            const char *b, size_t blen, int bq)
{
    return alen == blen && (aq || bq ? strncmp(a, b, alen) == 0
                                     : strncasecmp(a, b, alen) == 0);
}

/* One value of VALUES (...), up to its ',' or ')': a placeholder, or
 * COALESCE of placeholders only, sets first and count; any other value
 * count -1.  *n counts the placeholders seen. */
static int k2_sql_value(k2_tok_t *t, k2_sql_column_t *c, int *n)
{
    int depth = 0, shape = 0;   /* 0 start, 1 one placeholder, 2 COALESCE(,
                                 * 3 in it after a placeholder, 4 closed,
                                 * -1 other */

    c->first = *n;
    c->count = 0;
    for (;;) {
        if (t->type == K2_TOK_END) {
            return -1;
        }
        if (depth == 0 && (k2_tok_is(t, ",") || k2_tok_is(t, ")"))) {
            break;
        }
        if (t->type == K2_TOK_PLACEHOLDER) {
            (*n)++;
            c->count++;
            shape = shape == 0 ? 1 : shape == 2 ? 3 : -1;
        }
        else if (k2_tok_is(t, "(")) {
            depth++;
            shape = shape == -1 || depth != 1 || shape != 5 ? -1 : 2;
        }
        else if (k2_tok_is(t, ")")) {
            depth--;
            shape = shape == 3 && depth == 0 ? 4 : -1;
        }
        else if (k2_tok_is(t, ",")) {
            shape = shape == 3 ? 2 : -1;
        }
        else if (k2_tok_is(t, "coalesce")) {
            shape = shape == 0 ? 5 : -1;
        }
        else {
            shape = -1;
        }
        k2_tok_next(t);
    }
    if (shape != 1 && shape != 4) {
        c->count = -1;
    }
    return 0;
}

const char *k2_sql_insert_or(const char *sql)
{
    static const char *const clauses[][2] = {
        { "ignore", "IGNORE" }, { "replace", "REPLACE" }, { "abort", "ABORT" },
        { "fail", "FAIL" }, { "rollback", "ROLLBACK" }
    };
    k2_tok_t t;
    unsigned i;

    t.s = sql;
    k2_tok_next(&t);
    if (k2_tok_take(&t, "replace")) {
        return "REPLACE";               /* REPLACE INTO t ... */
    }
    if (!k2_tok_take(&t, "insert") || !k2_tok_take(&t, "or")) {
        return NULL;
    }
    for (i = 0; i < sizeof(clauses) / sizeof(clauses[0]); i++) {
        if (k2_tok_is(&t, clauses[i][0])) {
            return clauses[i][1];
        }
    }
    return NULL;
}

static int k2_sql_conflict_key_of(const char *sql, int *key, int nkey)
{
    k2_sql_column_t cols[K2_SQL_MAX_COLUMNS];
    k2_tok_t t;
    int ncols = 0, n = 0, i, nkeys = 0;

    for (i = 0; i < nkey; i++) {
        key[i] = 0;
    }
    t.s = sql;
    k2_tok_next(&t);
    if (!k2_tok_take(&t, "insert") || !k2_tok_take(&t, "into")
        || t.type != K2_TOK_WORD) {
        return 0;               /* INSERT OR IGNORE ... names no key */
    }
    k2_tok_next(&t);            /* the table, maybe schema.table AS alias */
    if (k2_tok_take(&t, ".")) {
        if (t.type != K2_TOK_WORD) {
            return 0;
        }
        k2_tok_next(&t);
    }
    if (k2_tok_take(&t, "as")) {
        if (t.type != K2_TOK_WORD) {
            return 0;
        }
        k2_tok_next(&t);
    }
    if (!k2_tok_take(&t, "(")) {
        return 0;
    }
    do {
        if (t.type != K2_TOK_WORD || ncols == K2_SQL_MAX_COLUMNS) {
            return 0;
        }
        cols[ncols].name = t.text;
        cols[ncols].len = t.len;
        cols[ncols].quoted = t.quoted;
        ncols++;
        k2_tok_next(&t);
    } while (k2_tok_take(&t, ","));
    if (!k2_tok_take(&t, ")") || !k2_tok_take(&t, "values")
        || !k2_tok_take(&t, "(")) {
        return 0;
    }
    for (i = 0; i < ncols; i++) {
        if (k2_sql_value(&t, &cols[i], &n) != 0
            || !k2_tok_take(&t, i + 1 < ncols ? "," : ")")) {
            return 0;
        }
    }
    if (!k2_tok_take(&t, "on") || !k2_tok_take(&t, "conflict")
        || !k2_tok_take(&t, "(")) {
        return 0;               /* another row, or no conflict target */
    }
    do {
        int c;

        if (t.type != K2_TOK_WORD) {
            return 0;
        }
        for (c = 0; c < ncols; c++) {
            if (k2_sql_same_name(cols[c].name, cols[c].len, cols[c].quoted,
                                 t.text, t.len, t.quoted)) {
                break;
            }
        }
        k2_tok_next(&t);
        if (c < ncols && cols[c].count > 0) {
            nkeys++;
            for (i = cols[c].first; i < cols[c].first + cols[c].count; i++) {
                if (i < nkey) {
                    key[i] = nkeys;
                }
            }
        }
    } while (k2_tok_take(&t, ","));
    return k2_tok_take(&t, ")") ? nkeys : 0;
}

int k2_sql_conflict_key(const char *sql, int *key, int nkey)
{
    int i, n = k2_sql_conflict_key_of(sql, key, nkey);

    if (n == 0) {
        /* a conflict target found malformed after some of its columns were
         * numbered (found by fuzz/fuzz_sql.c): every key[i] 0, as promised */
        for (i = 0; i < nkey; i++) {
            key[i] = 0;
        }
    }
    return n;
}
