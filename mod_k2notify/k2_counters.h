/* k2_counters.h: the outcome counters of the server-status section.
 *
 * A row of counters per location, in memory that every httpd child shares
 * (the glue maps it: mod_k2notify_status.c), counted with lock-free C11
 * atomics: no lock on the path of a notification, whatever the MPM.  And
 * which row counts which location across reloads of the configuration
 * (k2_slots_assign).  No httpd or APR header: plain C11.
 */
#ifndef K2_COUNTERS_H
#define K2_COUNTERS_H

#include <stddef.h>
#include <stdatomic.h>

/* Shared between processes, the atomics must be lock-free (a lock-based
 * fallback would lock per process, not across them). */
#if ATOMIC_LLONG_LOCK_FREE != 2
#error "64-bit atomics are not lock-free on this platform"
#endif

#define K2_COUNTERS_MAX 15              /* counters in a row */

/* One row: 128 bytes, two cache lines.  All zero to start. */
typedef struct {
    _Atomic unsigned long long count[K2_COUNTERS_MAX];
    _Atomic long long last;             /* the latest time noted; 0 none */
} k2_counters_t;

/* Add 1 to counter which (0 <= which < K2_COUNTERS_MAX) of row. */
void k2_counters_add(k2_counters_t *row, int which);

/* Note the time t (> 0): the row's last time becomes t if t is later. */
void k2_counters_note_time(k2_counters_t *row, long long t);

unsigned long long k2_counters_get(const k2_counters_t *row, int which);
long long k2_counters_last(const k2_counters_t *row);

/* Zero n rows: only while no process counts in them. */
void k2_counters_clear(k2_counters_t *rows, size_t n);

/* Copy of a string kept as long as the table of slots (for k2_slots_assign). */
typedef const char *k2_slots_keep_fn(void *baton, const char *key);

/* Give each of the n keys (one per location; distinct) a slot of table, an
 * array of capacity keys where table[i] names the location that row i
 * counts, NULL for a row never given since the last reset.
 *
 * graceful != 0 (a graceful restart: children of the previous configuration
 * are still counting): a key already in the table keeps its slot, a new key
 * takes a free slot, and a key the table holds but keys does not keeps its
 * slot too (a late notification of the old configuration still lands
 * there; the key finds its counts again if it comes back).
 * graceful == 0 (a start or full restart: nobody counts): the table is
 * emptied first and the keys take slots 0, 1, ... in order (the caller
 * zeroes the counters).
 *
 * slot[i] is then the slot of keys[i], or -1 when no slot was free.  A key
 * stored into the table is keep(baton, key).  Returns the number of keys
 * left without a slot. */
int k2_slots_assign(const char **table, int capacity, const char *const *keys,
                    int n, int graceful, int *slot, k2_slots_keep_fn *keep,
                    void *baton);

#endif /* K2_COUNTERS_H */
