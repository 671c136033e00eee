/* fuzz_amount.c: libFuzzer target of k2_amount_valid (k2_notification.c).
 *
 * The input, as a NUL-terminated heap copy of exactly its size, is checked
 * by k2_amount_valid and by the documented grammar written as a POSIX
 * regular expression: 1 to 15 digits, optionally '.' and 1 or 2 digits, and
 * not zero (docs/replies.md, "Requests and responses").  Both must agree.
 */
#include <regex.h>

#include "fuzz_common.h"
#include "k2_notification.h"

static regex_t grammar;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (regcomp(&grammar, "^[0-9]{1,15}([.][0-9]{1,2})?$",
                REG_EXTENDED | REG_NOSUB) != 0) {
        abort();
    }
    return 0;
}

static int documented(const char *s)
{
    return regexec(&grammar, s, 0, NULL, 0) == 0
           && strpbrk(s, "123456789") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    int valid = k2_amount_valid(s);

    FUZZ_ASSERT(valid == 0 || valid == 1);
    FUZZ_ASSERT(valid == documented(s));
    free(s);
    return 0;
}
