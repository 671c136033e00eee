/* k2_counters.c: outcome counters in shared memory, and their slots. */
#include <string.h>

#include "k2_counters.h"

_Static_assert(sizeof(k2_counters_t) == 128, "a row is two cache lines");

/* Relaxed order: each counter is read on its own, by server-status; no
 * other memory is published through it. */
void k2_counters_add(k2_counters_t *row, int which)
{
    atomic_fetch_add_explicit(&row->count[which], 1, memory_order_relaxed);
}

void k2_counters_note_time(k2_counters_t *row, long long t)
{
    long long seen = atomic_load_explicit(&row->last, memory_order_relaxed);

    /* Two children may note at once: the later time must win. */
    while (seen < t
           && !atomic_compare_exchange_weak_explicit(&row->last, &seen, t,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed)) {
        /* seen now holds the current value: try again if still earlier */
    }
}

unsigned long long k2_counters_get(const k2_counters_t *row, int which)
{
    return atomic_load_explicit(&row->count[which], memory_order_relaxed);
}

long long k2_counters_last(const k2_counters_t *row)
{
    return atomic_load_explicit(&row->last, memory_order_relaxed);
}

void k2_counters_clear(k2_counters_t *rows, size_t n)
{
    memset(rows, 0, n * sizeof(*rows));
}

static int k2_slots_find(const char **table, int capacity, const char *key)
{
    int i;

    for (i = 0; i < capacity; i++) {
        if (table[i] && strcmp(table[i], key) == 0) {
            return i;
        }
    }
    return -1;
}

int k2_slots_assign(const char **table, int capacity, const char *const *keys,
                    int n, int graceful, int *slot, k2_slots_keep_fn *keep,
                    void *baton)
{
    int i, next_free = 0, missing = 0;

    if (!graceful) {
        for (i = 0; i < capacity; i++) {
            table[i] = NULL;
        }
    }
    /* Known keys first, so that a new key never takes a slot that a key
     * given later in the list already owns. */
    for (i = 0; i < n; i++) {
        slot[i] = k2_slots_find(table, capacity, keys[i]);
    }
    for (i = 0; i < n; i++) {
        if (slot[i] >= 0) {
            continue;
        }
        while (next_free < capacity && table[next_free]) {
            next_free++;
        }
        if (next_free == capacity) {
            missing++;
            continue;
        }
        table[next_free] = keep(baton, keys[i]);
        slot[i] = next_free;
    }
    return missing;
}
