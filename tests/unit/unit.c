/* unit.c: the harness of unit.h and the runner's main(). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define MAX_SUITES 32

static struct {
    const char *name;
    const unit_test_t *tests;
    size_t n;
} suites[MAX_SUITES];
static size_t nsuites;

static const char *current_test;
static int current_failures;

void unit_register(const char *suite, const unit_test_t *tests, size_t n)
{
    if (nsuites == MAX_SUITES) {
        fprintf(stderr, "unit: more than %d suites\n", MAX_SUITES);
        exit(2);
    }
    suites[nsuites].name = suite;
    suites[nsuites].tests = tests;
    suites[nsuites].n = n;
    nsuites++;
}

void unit_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: %s: ", file, line, current_test);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    current_failures++;
}

void print_quoted(const char *s, size_t len)
{
    size_t i;

    if (!s) {
        fputs("NULL", stderr);
        return;
    }
    fputc('"', stderr);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            fprintf(stderr, "\\%c", c);
        }
        else if (c < 0x20 || c >= 0x7F) {
            fprintf(stderr, "\\x%02X", c);
        }
        else {
            fputc(c, stderr);
        }
    }
    fputc('"', stderr);
}

void check_int_(const char *file, int line, const char *expr, long actual,
                long expected)
{
    if (actual != expected) {
        unit_fail_at(file, line, "%s is %ld, expected %ld", expr, actual,
                     expected);
    }
}

void check_str_(const char *file, int line, const char *expr,
                const char *actual, const char *expected)
{
    if (actual == expected
        || (actual && expected && strcmp(actual, expected) == 0)) {
        return;
    }
    unit_fail_at(file, line, "%s differs", expr);
    fputs("    actual:   ", stderr);
    print_quoted(actual, actual ? strlen(actual) : 0);
    fputs("\n    expected: ", stderr);
    print_quoted(expected, expected ? strlen(expected) : 0);
    fputc('\n', stderr);
}

static void *allocs[256];
static size_t nallocs;

void *test_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p || nallocs == sizeof(allocs) / sizeof(allocs[0])) {
        fprintf(stderr, "test_alloc: out of memory or slots\n");
        exit(2);
    }
    allocs[nallocs++] = p;
    return p;
}

static void free_allocs(void)
{
    while (nallocs) {
        free(allocs[--nallocs]);
    }
}

char *heap_copy(const char *s, size_t len)
{
    char *p = test_alloc(len);

    memcpy(p, s, len);
    return p;
}

const char *heap_str(const char *s)
{
    return s ? heap_copy(s, strlen(s) + 1) : NULL;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    size_t s, i;
    int passed = 0, failed = 0;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [--list | NAME-SUBSTRING]\n", argv[0]);
        return 2;
    }
    for (s = 0; s < nsuites; s++) {
        for (i = 0; i < suites[s].n; i++) {
            const unit_test_t *t = &suites[s].tests[i];

            if (filter && strcmp(filter, "--list") == 0) {
                printf("%s %s\n", suites[s].name, t->name);
                continue;
            }
            if (filter && !strstr(t->name, filter)) {
                continue;
            }
            current_test = t->name;
            current_failures = 0;
            t->fn();
            free_allocs();
            if (current_failures) {
                printf("FAIL %s\n", t->name);
                failed++;
            }
            else {
                passed++;
            }
        }
    }
    if (filter && strcmp(filter, "--list") == 0) {
        return 0;
    }
    fflush(stdout);
    if (passed + failed == 0) {
        fprintf(stderr, "no test name contains \"%s\"\n", filter);
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed || passed + failed == 0 ? 1 : 0;
}
