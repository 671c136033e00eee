/* mod_k2notify_status.c: the "K2 notifications" section of server-status.
 *
 * With mod_status loaded, each section (<Location>, <Directory>) that says
 * "SetHandler k2notify" gets a row of outcome counters (k2_counters.c) in a
 * shared memory segment that every child of every MPM maps; the handler
 * counts with one atomic add (k2n_status_count), and mod_status's
 * status_hook prints the rows: an HTML table, or "K2Notify...: N" lines for
 * ?auto.
 *
 * The segment and the table of which location each row counts live in the
 * process pool, which lasts as long as the parent: a graceful restart finds
 * them again, while the module itself is unloaded and loaded again at each
 * restart (so nothing of it may be referenced from there).  Like mod_status's
 * own counters, they are kept across a graceful restart and start again
 * from zero at a start or a full restart.
 */
#include <string.h>

#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_shm.h"
#include "apr_lib.h"

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "ap_mpm.h"
#include "unixd.h"
#include "mod_status.h"

#include "mod_k2notify.h"
#include "k2_counters.h"

_Static_assert(K2N_OUTCOME_COUNT <= K2_COUNTERS_MAX,
               "a row of k2_counters_t has no room for every outcome");

/* The process pool's key of the store. */
#define K2N_STATUS_STORE "mod_k2notify-status"

/* Rows of a new segment: twice the locations, and at least this many, so
 * that locations added at a graceful restart find room. */
#define K2N_STATUS_MIN_ROWS 64

/* What survives the reloads of the configuration: in the process pool. */
typedef struct {
    apr_shm_t *shm;                     /* anonymous: inherited by children */
    k2_counters_t *rows;                /* capacity rows, in shm */
    int capacity;
    const char **keys;                  /* location counted by each row */
} k2n_status_store_t;

/* A row of the section, for this configuration (in pconf). */
typedef struct {
    const char *location;               /* the section, as written */
    const char *server;                 /* "*" (main server) or host:port */
    const char *key;                    /* server and location: the row's
                                         * identity across reloads */
    k2n_dir_conf *conf;                 /* the section's own configuration */
    int slot;                           /* -1: no room left at a graceful */
} k2n_status_row_t;

/* Set by post_config in the parent, inherited by the children. */
static apr_array_header_t *k2n_status_rows = NULL;
static k2_counters_t *k2n_status_counters = NULL;     /* NULL: not counting */
static int k2n_status_capacity = 0;

const char *k2n_status_note_handler(cmd_parms *cmd, void *dconf,
                                    const char *args)
{
    k2n_dir_conf *conf = dconf;
    const char *name = ap_getword_conf(cmd->temp_pool, &args);

    conf->handler = strcmp(name, K2N_HANDLER) == 0 && !*args;
    /* core's SetHandler is run next, and says what is wrong, if anything. */
    return DECLINE_CMD;
}

void k2n_status_count(request_rec *r, k2n_outcome_e outcome)
{
    const k2n_dir_conf *conf;
    k2_counters_t *row;

    if (!k2n_status_counters) {
        return;
    }
    conf = ap_get_module_config(r->per_dir_config, &k2notify_module);
    if (conf->status_slot < 0 || conf->status_slot >= k2n_status_capacity
        || (unsigned)outcome >= K2N_OUTCOME_COUNT) {
        return;
    }
    row = &k2n_status_counters[conf->status_slot];
    k2_counters_add(row, (int)outcome);
    if (outcome == K2N_ACCEPTED) {
        k2_counters_note_time(row, apr_time_now());
    }
}

/* "host:port" of a virtual host (its first address's port, or '*'). */
static const char *k2n_status_server(apr_pool_t *p, const server_rec *s)
{
    apr_port_t port = s->port;

    if (!port && s->addrs) {
        port = s->addrs->host_port;
    }
    return port ? apr_psprintf(p, "%s:%u", s->server_hostname
                               ? s->server_hostname : "?", (unsigned)port)
                : apr_pstrcat(p, s->server_hostname ? s->server_hostname : "?",
                              ":*", NULL);
}

/* Add a row for each section of sections that says SetHandler k2notify and
 * is not in seen (a virtual host's sections include the main server's). */
static void k2n_status_add_rows(apr_pool_t *p, apr_array_header_t *rows,
                                apr_hash_t *keys, apr_hash_t *seen,
                                const apr_array_header_t *sections,
                                const char *kind, const char *server)
{
    ap_conf_vector_t **sec = (ap_conf_vector_t **)sections->elts;
    int i;

    for (i = 0; i < sections->nelts; i++) {
        k2n_dir_conf *conf = ap_get_module_config(sec[i], &k2notify_module);
        const core_dir_config *core = ap_get_core_module_config(sec[i]);
        k2n_status_row_t *row;
        const char *key;
        int n;

        if (apr_hash_get(seen, &sec[i], sizeof(sec[i]))) {
            continue;
        }
        apr_hash_set(seen, &sec[i], sizeof(sec[i]), sec[i]);
        if (!conf || conf->handler != 1 || !core || !core->d) {
            continue;
        }
        row = apr_array_push(rows);
        row->location = apr_pstrcat(p, kind, core->r ? "~ " : "", core->d,
                                    NULL);
        row->server = server;
        row->conf = conf;
        row->slot = -1;
        /* Two sections with the same path in one server: one row each. */
        key = apr_pstrcat(p, server, "\n", row->location, NULL);
        for (n = 2; apr_hash_get(keys, key, APR_HASH_KEY_STRING); n++) {
            key = apr_psprintf(p, "%s\n%s\n#%d", server, row->location, n);
        }
        apr_hash_set(keys, key, APR_HASH_KEY_STRING, key);
        row->key = key;
    }
}

/* The rows of the configuration: the main server's sections (they apply to
 * every virtual host: server "*"), then each virtual host's own, in the
 * order of the configuration. */
static apr_array_header_t *k2n_status_collect(apr_pool_t *p, apr_pool_t *ptemp,
                                              server_rec *main_server)
{
    apr_array_header_t *rows = apr_array_make(p, 4, sizeof(k2n_status_row_t));
    apr_hash_t *seen = apr_hash_make(ptemp);
    apr_hash_t *keys = apr_hash_make(ptemp);
    server_rec *s;

    for (s = main_server; s; s = s->next) {
        core_server_config *sconf = ap_get_core_module_config(s->module_config);
        const char *server = s == main_server ? "*" : k2n_status_server(p, s);

        k2n_status_add_rows(p, rows, keys, seen, sconf->sec_dir, "Directory ",
                            server);
        k2n_status_add_rows(p, rows, keys, seen, sconf->sec_url, "", server);
    }
    return rows;
}

static const char *k2n_status_keep_key(void *baton, const char *key)
{
    return apr_pstrdup(baton, key);
}

/* A new store of capacity rows in the process pool (the old one, if any,
 * is let go: nobody counts at a start or a full restart). */
static k2n_status_store_t *k2n_status_new_store(server_rec *s,
                                                k2n_status_store_t *old,
                                                int capacity)
{
    apr_pool_t *pp = s->process->pool;
    k2n_status_store_t *store = old ? old : apr_pcalloc(pp, sizeof(*store));
    apr_size_t size = (apr_size_t)capacity * sizeof(k2_counters_t);
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    if (store->shm) {
        apr_shm_destroy(store->shm);    /* unmapped here only */
        store->shm = NULL;
        store->rows = NULL;
        store->capacity = 0;
    }
    rv = apr_shm_create(&shm, size, NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "server-status: cannot "
                     "create %" APR_SIZE_T_FMT " bytes of anonymous shared "
                     "memory for the K2 notification counters: they are not "
                     "counted", size);
        return store;
    }
    store->shm = shm;
    store->rows = apr_shm_baseaddr_get(shm);
    store->capacity = capacity;
    store->keys = apr_pcalloc(pp, sizeof(const char *) * (apr_size_t)capacity);
    k2_counters_clear(store->rows, (apr_size_t)capacity);
    apr_pool_userdata_set(store, K2N_STATUS_STORE, apr_pool_cleanup_null, pp);
    return store;
}

static int k2n_status_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    k2n_status_store_t *store = NULL;
    k2n_status_row_t *rows;
    const char **keys;
    int *slots, graceful, capacity, n, i, counted;
    void *data = NULL;

    (void)plog;
    k2n_status_rows = NULL;
    k2n_status_counters = NULL;
    k2n_status_capacity = 0;
    /* httpd reads its configuration twice at startup: count in the second. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    apr_pool_userdata_get(&data, K2N_STATUS_STORE, pp);
    store = data;
    /* A graceful restart keeps the counters: children of the previous
     * configuration are still counting in them.  Otherwise every child is
     * gone, and the counters start again from zero. */
    graceful = ap_unixd_mpm_get_retained_data()->was_graceful;
    if (store && store->shm && !graceful) {
        k2_counters_clear(store->rows, (apr_size_t)store->capacity);
        memset(store->keys, 0, sizeof(const char *) * (apr_size_t)store->capacity);
    }
    if (!ap_find_linked_module("mod_status.c")) {
        return OK;                      /* nothing to show them: no counters */
    }
    k2n_status_rows = k2n_status_collect(pconf, ptemp, s);
    n = k2n_status_rows->nelts;
    if (n == 0) {
        return OK;
    }
    if (!store || !store->shm) {
        graceful = 0;                   /* nobody counted before */
    }
    capacity = n * 2 > K2N_STATUS_MIN_ROWS ? n * 2 : K2N_STATUS_MIN_ROWS;
    if (!graceful && (!store || !store->shm || store->capacity < capacity)) {
        store = k2n_status_new_store(s, store, capacity);
        if (!store->shm) {
            return OK;
        }
    }

    rows = (k2n_status_row_t *)k2n_status_rows->elts;
    keys = apr_palloc(ptemp, sizeof(const char *) * (apr_size_t)n);
    slots = apr_palloc(ptemp, sizeof(int) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        keys[i] = rows[i].key;
    }
    k2_slots_assign(store->keys, store->capacity, keys, n, graceful, slots,
                    k2n_status_keep_key, pp);
    counted = 0;
    for (i = 0; i < n; i++) {
        rows[i].slot = slots[i];
        rows[i].conf->status_slot = slots[i];
        if (slots[i] >= 0) {
            counted++;
            continue;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "server-status: no room "
                     "left to count the K2 notifications of %s (server %s): "
                     "all %d rows are in use since the last start; they are "
                     "counted after a full restart (apachectl restart)",
                     rows[i].location, rows[i].server, store->capacity);
    }
    k2n_status_counters = store->rows;
    k2n_status_capacity = store->capacity;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "server-status: counting the "
                 "K2 notifications of %d location%s (%s; %d rows of shared "
                 "memory)", counted, counted == 1 ? "" : "s",
                 graceful ? "kept across the graceful restart"
                          : "from zero", store->capacity);
    return OK;
}

/* "account_not_found" -> "AccountNotFound" */
static const char *k2n_status_key_name(apr_pool_t *p, const char *name)
{
    char *out = apr_palloc(p, strlen(name) + 1), *o = out;
    int up = 1;

    for (; *name; name++) {
        if (*name == '_') {
            up = 1;
            continue;
        }
        *o++ = up ? (char)apr_toupper(*name) : *name;
        up = 0;
    }
    *o = '\0';
    return out;
}

static void k2n_status_auto(request_rec *r, const k2n_status_row_t *rows, int n)
{
    unsigned long long total[K2N_OUTCOME_COUNT];
    const char *names[K2N_OUTCOME_COUNT];
    long long last = 0;
    int i, o, index;

    memset(total, 0, sizeof(total));
    for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
        names[o] = k2n_status_key_name(r->pool, k2n_outcome_names[o]);
    }
    for (i = 0; i < n; i++) {
        const k2_counters_t *c;

        if (rows[i].slot < 0) {
            continue;
        }
        c = &k2n_status_counters[rows[i].slot];
        for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
            total[o] += k2_counters_get(c, o);
        }
        if (k2_counters_last(c) > last) {
            last = k2_counters_last(c);
        }
    }
    /* Totals over the locations, then each location. */
    for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
        ap_rprintf(r, "K2Notify%s: %" APR_UINT64_T_FMT "\n", names[o],
                   (apr_uint64_t)total[o]);
    }
    ap_rprintf(r, "K2NotifyLastAccepted: %" APR_TIME_T_FMT "\n",
               apr_time_sec((apr_time_t)last));
    index = 0;
    for (i = 0; i < n; i++) {
        const k2_counters_t *c;

        if (rows[i].slot < 0) {
            continue;
        }
        c = &k2n_status_counters[rows[i].slot];
        ap_rprintf(r, "K2Notify[%d]Location: %s\n", index, rows[i].location);
        ap_rprintf(r, "K2Notify[%d]Server: %s\n", index, rows[i].server);
        for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
            ap_rprintf(r, "K2Notify[%d]%s: %" APR_UINT64_T_FMT "\n", index,
                       names[o], (apr_uint64_t)k2_counters_get(c, o));
        }
        ap_rprintf(r, "K2Notify[%d]LastAccepted: %" APR_TIME_T_FMT "\n", index,
                   apr_time_sec((apr_time_t)k2_counters_last(c)));
        index++;
    }
}

/* mod_status's format for its own times (local time). */
#define K2N_STATUS_TIME_FORMAT "%A, %d-%b-%Y %H:%M:%S %Z"

static const char *k2n_status_time(request_rec *r, long long t)
{
    return t ? ap_ht_time(r->pool, (apr_time_t)t, K2N_STATUS_TIME_FORMAT, 0)
             : "never";
}

static void k2n_status_html(request_rec *r, const k2n_status_row_t *rows, int n)
{
    unsigned long long total[K2N_OUTCOME_COUNT];
    long long last = 0;
    int i, o, counted = 0;

    memset(total, 0, sizeof(total));
    ap_rputs("<hr />\n<h2>K2 notifications</h2>\n"
             "<p>Outcomes of the notifications each location with "
             "<code>SetHandler k2notify</code> has answered since Apache "
             "was started or restarted (a graceful restart keeps them).</p>\n"
             "<table border=\"0\">\n<tr><th>Location</th><th>Server</th>", r);
    for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
        ap_rvputs(r, "<th>", k2n_outcome_names[o], "</th>", NULL);
    }
    ap_rputs("<th>last accepted</th></tr>\n", r);
    for (i = 0; i < n; i++) {
        const k2_counters_t *c;

        ap_rvputs(r, "<tr><td>", ap_escape_html(r->pool, rows[i].location),
                  "</td><td>", ap_escape_html(r->pool, rows[i].server),
                  "</td>", NULL);
        if (rows[i].slot < 0) {
            ap_rprintf(r, "<td colspan=\"%d\">not counted: no room left at the "
                       "graceful restart that added it (a full restart "
                       "counts it)</td></tr>\n", K2N_OUTCOME_COUNT + 1);
            continue;
        }
        c = &k2n_status_counters[rows[i].slot];
        counted++;
        for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
            total[o] += k2_counters_get(c, o);
            ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>",
                       (apr_uint64_t)k2_counters_get(c, o));
        }
        if (k2_counters_last(c) > last) {
            last = k2_counters_last(c);
        }
        ap_rvputs(r, "<td>", k2n_status_time(r, k2_counters_last(c)),
                  "</td></tr>\n", NULL);
    }
    if (counted > 1) {
        ap_rputs("<tr><th>Total</th><th></th>", r);
        for (o = 0; o < K2N_OUTCOME_COUNT; o++) {
            ap_rprintf(r, "<th>%" APR_UINT64_T_FMT "</th>",
                       (apr_uint64_t)total[o]);
        }
        ap_rvputs(r, "<th>", k2n_status_time(r, last), "</th></tr>\n", NULL);
    }
    ap_rputs("</table>\n", r);
}

static int k2n_status_hook(request_rec *r, int flags)
{
    if (!k2n_status_counters || !k2n_status_rows
        || k2n_status_rows->nelts == 0) {
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        k2n_status_auto(r, (const k2n_status_row_t *)k2n_status_rows->elts,
                        k2n_status_rows->nelts);
    }
    else {
        k2n_status_html(r, (const k2n_status_row_t *)k2n_status_rows->elts,
                        k2n_status_rows->nelts);
    }
    return OK;
}

void k2n_status_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_config(k2n_status_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, k2n_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
