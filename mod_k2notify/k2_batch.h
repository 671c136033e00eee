/* k2_batch.h: group commit, a leader/follower queue over APR threads.
 *
 * A thread that has a statement to commit submits it.  If no transaction is
 * open, it becomes the leader at once: no timer, no added wait.  The leader
 * opens a transaction and runs the queued items one by one, its own first;
 * items submitted while it runs them join the same transaction, until the
 * queue is empty (or K2_BATCH_MAX items ran); then it commits, once, and
 * wakes them.  Items submitted while the commit runs wait for it to end;
 * the first of them becomes the next leader.  As in PostgreSQL's WAL flush
 * or MySQL's binlog group commit, a batch is whatever arrived before the
 * commit began, and a lone item is committed alone at once.
 *
 * The queue knows nothing of databases: the commit function, given the
 * leader's context (its connection), opens the transaction, takes the items
 * with k2_batch_next(), runs them, commits, and sets every item's result.
 * It never runs twice at once on one queue.
 */
#ifndef K2_BATCH_H
#define K2_BATCH_H

#include "apr_pools.h"
#include "apr_thread_cond.h"

#define K2_BATCH_ERR_SIZE 512
#define K2_BATCH_MAX 256                /* items in one transaction at most */
#define K2_BATCH_NOT_RUN 1              /* an item's status until the commit
                                         * function sets it: not a success */

typedef struct k2_batch_item_t k2_batch_item_t;
typedef struct k2_batch_waiter_t k2_batch_waiter_t;
struct k2_batch_item_t {
    void *data;                         /* the submitter's: what to commit */
    int status;                         /* set by the commit function: 0 ok;
                                         * K2_BATCH_NOT_RUN until then */
    int nrows;                          /* set by the commit function */
    char err[K2_BATCH_ERR_SIZE];        /* set by the commit function when
                                         * status != 0 (the submitter logs it:
                                         * the leader's pool may be gone) */
    int batch_size;                     /* items in the transaction that held
                                         * this one (set by k2_batch_submit) */
    /* private to k2_batch.c */
    k2_batch_item_t *next;
    k2_batch_waiter_t *waiter;          /* its condition variable */
    int state;
};

typedef struct k2_batch_t k2_batch_t;

/* Run one transaction: take its items with k2_batch_next() until it gives
 * NULL, and set each one's status, nrows and err.  leader is the context
 * the leader passed to k2_batch_submit; pool is the leader's. */
typedef void k2_batch_commit_fn(void *leader, k2_batch_t *batch,
                                apr_pool_t *pool);

/* A queue whose transactions fn runs; allocated in pool (a child's). */
apr_status_t k2_batch_create(k2_batch_t **batch, k2_batch_commit_fn *fn,
                             apr_pool_t *pool);

/* Make item ready to submit (or to commit without a queue): data is the
 * submitter's, status K2_BATCH_NOT_RUN with its err, so that an item no
 * commit function ran can never read as a success. */
void k2_batch_item_init(k2_batch_item_t *item, void *data);

/* How long a follower waits in the queue, before a transaction takes its
 * item, until it gives up (0, the default: as long as it takes).  An item a
 * transaction has taken is waited for to the end: the leader writes its
 * result. */
void k2_batch_patience(k2_batch_t *batch, apr_interval_time_t wait);

/* A clock for measuring waits, also across processes: CLOCK_MONOTONIC is
 * one for the whole system and never steps (the wall clock does: NTP, a
 * resumed VM, a fixed hwclock).  The queue measures its patience on it;
 * k2_batch_clock gives it another (a test's; NULL: k2_clock again). */
typedef apr_time_t k2_clock_fn(void);
apr_time_t k2_clock(void);
void k2_batch_clock(k2_batch_t *batch, k2_clock_fn *clock);

/* Called by k2_batch_submit each time an item joins the queue behind a
 * running transaction (not when its submitter leads at once), the queue's
 * mutex held: leader is the submitter's context, waiting the number of
 * items now queued and not yet taken.  For observation only (a debug log
 * line, which tests wait for instead of sleeping): it must not call into
 * the queue. */
typedef void k2_batch_queued_fn(void *leader, int waiting);
void k2_batch_on_queued(k2_batch_t *batch, k2_batch_queued_fn *fn);

/* Commit item with whatever else is queued, and return once the transaction
 * that held it has ended (item->status, nrows, err and batch_size are then
 * set).  leader is this thread's context, used if it leads; pool is this
 * thread's (a request's), which must live until the call returns.  Returns
 * APR_TIMEUP (status K2_BATCH_NOT_RUN, err saying so) when no transaction
 * took the item within the queue's patience: it was not run. */
apr_status_t k2_batch_submit(k2_batch_t *batch, k2_batch_item_t *item,
                             void *leader, apr_pool_t *pool);

/* For the commit function only: the next queued item of the transaction,
 * or NULL when none is queued or K2_BATCH_MAX items were taken. */
k2_batch_item_t *k2_batch_next(k2_batch_t *batch);

#endif /* K2_BATCH_H */
