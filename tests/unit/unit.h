/* unit.h: the small harness shared by the C unit tests (tests/unit/test_*.c).
 *
 * Every test_*.c file is linked into one binary, build/test_k2.  A file
 * lists its tests with UNIT_SUITE(name, T(test_a), T(test_b), ...); the
 * suite registers itself before main() (a constructor), so adding a file
 * needs no edit anywhere else.
 *
 *   build/test_k2            run every test
 *   build/test_k2 SUBSTRING  run the tests whose name contains SUBSTRING
 *   build/test_k2 --list     list the test names
 *
 * Inputs are copied into exact-size heap buffers (test_alloc, heap_copy) so
 * that an ASan build catches any overrun.
 */
#ifndef K2_UNIT_H
#define K2_UNIT_H

#include <stddef.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} unit_test_t;

#define T(f) { #f, f }

void unit_register(const char *suite, const unit_test_t *tests, size_t n);

#define UNIT_SUITE(suite, ...) \
    static const unit_test_t unit_tests_[] = { __VA_ARGS__ }; \
    __attribute__((constructor)) static void unit_register_(void) \
    { \
        unit_register(#suite, unit_tests_, \
                      sizeof(unit_tests_) / sizeof(unit_tests_[0])); \
    }

/* A failure of the current test, at file:line. */
void unit_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define fail_at unit_fail_at

/* Print len bytes of s to stderr as a C string literal (NULL as NULL). */
void print_quoted(const char *s, size_t len);

#define CHECK(expr) \
    do { \
        if (!(expr)) { \
            unit_fail_at(__FILE__, __LINE__, "CHECK(%s) failed", #expr); \
        } \
    } while (0)

#define CHECK_INT(actual, expected) \
    check_int_(__FILE__, __LINE__, #actual, (long)(actual), (long)(expected))

#define CHECK_STR(actual, expected) \
    check_str_(__FILE__, __LINE__, #actual, (actual), (expected))

void check_int_(const char *file, int line, const char *expr, long actual,
                long expected);
/* Strings equal, or both NULL. */
void check_str_(const char *file, int line, const char *expr,
                const char *actual, const char *expected);

/* Allocations that live until the end of the current test. */
void *test_alloc(size_t size);
/* An exact-size heap copy of len bytes (no terminating NUL). */
char *heap_copy(const char *s, size_t len);
/* An exact-size heap copy of a string (with its NUL), NULL stays NULL. */
const char *heap_str(const char *s);

#endif /* K2_UNIT_H */
