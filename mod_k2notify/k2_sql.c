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
