/* mod_k2notify_config.c: the directives and their per-directory merge.
 *
 * Every mistake a sysadmin can make here fails `apachectl configtest` with
 * a message that names the directive.
 */
#include "apr_strings.h"
#include "apr_lib.h"
#include "apr_file_io.h"
#include "apr_file_info.h"

#include "http_core.h"

#include "mod_k2notify.h"
#include "k2_sql.h"
#include "k2_json.h"

APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *k2n_dbd_acquire = NULL;
APR_OPTIONAL_FN_TYPE(ap_dbd_open) *k2n_dbd_open = NULL;
APR_OPTIONAL_FN_TYPE(ap_dbd_close) *k2n_dbd_close = NULL;
static APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *k2n_dbd_prepare = NULL;

static const char *const k2n_default_currencies[] = { "KES", NULL };

/* A warning about the configuration, for k2n_config_log_warnings(). */
typedef struct {
    server_rec *s;
    const char *text;
} k2n_warning_t;

/* Allocated in the configuration pool: forgotten before each reading. */
static apr_array_header_t *k2n_warnings = NULL;
static apr_array_header_t *k2n_statements = NULL;   /* k2n_stmt_t * */

void *k2n_create_dir_conf(apr_pool_t *p, char *dir)
{
    k2n_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)dir;
    conf->account = NULL;
    conf->record = NULL;
    conf->duplicate = NULL;
    conf->currencies = NULL;
    conf->billers = NULL;
    conf->require_user = -1;
    conf->max_body = -1;
    conf->key = NULL;
    conf->handler = -1;
    conf->status_slot = -1;
    conf->format = -1;
    conf->topics = NULL;
    conf->topics_where = NULL;
    conf->duplicate_format = -1;
    return conf;
}

void *k2n_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const k2n_dir_conf *base = basev;
    const k2n_dir_conf *add = addv;
    k2n_dir_conf *conf = apr_palloc(p, sizeof(*conf));

    conf->account = add->account ? add->account : base->account;
    conf->record = add->record ? add->record : base->record;
    conf->duplicate = add->duplicate ? add->duplicate : base->duplicate;
    conf->currencies = add->currencies ? add->currencies : base->currencies;
    conf->billers = add->billers ? add->billers : base->billers;
    conf->require_user = add->require_user != -1 ? add->require_user
                                                 : base->require_user;
    conf->max_body = add->max_body != -1 ? add->max_body : base->max_body;
    conf->key = add->key ? add->key : base->key;
    conf->handler = add->handler != -1 ? add->handler : base->handler;
    conf->status_slot = add->status_slot >= 0 ? add->status_slot
                                              : base->status_slot;
    conf->format = add->format != -1 ? add->format : base->format;
    conf->topics = add->topics ? add->topics : base->topics;
    conf->topics_where = add->topics ? add->topics_where : base->topics_where;
    /* A section that sets K2NotifyFormat inherits the duplicate query of
     * the sections above it as written for their format (its default FIELD
     * is legal in both: k2n_conf_problem refuses it in the other). */
    conf->duplicate_format = add->duplicate ? add->format
                           : base->duplicate && add->format != -1
                             && base->duplicate_format == -1
                           ? (int)k2n_conf_format(base) : base->duplicate_format;
    return conf;
}

void *k2n_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    k2n_srv_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
    conf->group_commit = -1;
    conf->lock_timeout = -1;
    conf->batch = NULL;
    conf->db_lock = NULL;
    conf->dbd_driver = NULL;
    conf->dbd_params = NULL;
    conf->dbd_params_where = NULL;
    conf->dbd_init_sql = NULL;
    return conf;
}

void *k2n_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    const k2n_srv_conf *base = basev;
    const k2n_srv_conf *add = addv;
    k2n_srv_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->group_commit = add->group_commit != -1 ? add->group_commit
                                                 : base->group_commit;
    conf->lock_timeout = add->lock_timeout != -1 ? add->lock_timeout
                                                 : base->lock_timeout;
    conf->batch = NULL;                 /* each server its own, per child */
    conf->db_lock = NULL;               /* set at post_config */
    /* as mod_dbd's merge_dbd_config: a virtual host's own, else the main
     * server's; its DBDInitSQL statements, then the main server's */
    conf->dbd_driver = add->dbd_driver ? add->dbd_driver : base->dbd_driver;
    conf->dbd_params = add->dbd_params ? add->dbd_params : base->dbd_params;
    conf->dbd_params_where = add->dbd_params ? add->dbd_params_where
                                             : base->dbd_params_where;
    conf->dbd_init_sql = !add->dbd_init_sql ? base->dbd_init_sql
                       : !base->dbd_init_sql ? add->dbd_init_sql
                       : apr_array_append(p, add->dbd_init_sql,
                                          base->dbd_init_sql);
    return conf;
}

const char *const *k2n_conf_currencies(const k2n_dir_conf *conf)
{
    return conf->currencies ? (const char *const *)conf->currencies->elts
                            : k2n_default_currencies;
}

const char *const *k2n_conf_billers(const k2n_dir_conf *conf)
{
    return conf->billers ? (const char *const *)conf->billers->elts : NULL;
}

k2n_format_e k2n_conf_format(const k2n_dir_conf *conf)
{
    return conf->format == K2N_FORMAT_K2CONNECT ? K2N_FORMAT_K2CONNECT
                                                : K2N_FORMAT_FORM;
}

/* Whether the FIELDs of st fit the format; NULL or why not. */
static const char *k2n_stmt_problem(apr_pool_t *p, const k2n_stmt_t *st,
                                    k2n_format_e format, const char *section)
{
    int i;

    for (i = 0; st && i < st->nfields; i++) {
        const k2n_field_t *f = &st->fields[i];

        if (format == K2N_FORMAT_K2CONNECT && f->kind == K2N_FIELD_FORM) {
            return apr_psprintf(p, "%s (%s): '%s' is a form field, but %s has "
                                K2N_DIR_FORMAT " k2connect: name JSON pointers "
                                "into the webhook's body (such as /id or "
                                "/event/resource/reference), raw_body or "
                                "remote_user", st->directive, st->where,
                                f->name, section);
        }
        if (format == K2N_FORMAT_K2CONNECT && f->kind == K2N_FIELD_DEFAULT
            && st->query == K2N_Q_ACCOUNT) {
            return apr_psprintf(p, "%s (%s): in %s (" K2N_DIR_FORMAT
                                " k2connect) it needs its FIELD, a JSON "
                                "pointer: a K2 Connect event has no account "
                                "number of K2's form (an STK push's may be in "
                                "/data/attributes/metadata)", st->directive,
                                st->where, section);
        }
        if (format == K2N_FORMAT_FORM && (f->kind == K2N_FIELD_POINTER
                                          || f->kind == K2N_FIELD_RAW_BODY)) {
            return apr_psprintf(p, "%s (%s): '%s' is a FIELD of K2 Connect "
                                "webhooks, but %s receives K2's form ("
                                K2N_DIR_FORMAT " form, the default): set "
                                K2N_DIR_FORMAT " k2connect there, or name form "
                                "fields", st->directive, st->where, f->name,
                                section);
        }
    }
    return NULL;
}

/* 1 if a FIELD of st belongs to one format (a form field, a JSON pointer,
 * raw_body): its format is then checked by k2n_stmt_problem. */
static int k2n_stmt_has_format(const k2n_stmt_t *st)
{
    int i;

    for (i = 0; i < st->nfields; i++) {
        if (st->fields[i].kind == K2N_FIELD_FORM
            || st->fields[i].kind == K2N_FIELD_POINTER
            || st->fields[i].kind == K2N_FIELD_RAW_BODY) {
            return 1;
        }
    }
    return 0;
}

const char *k2n_conf_problem(apr_pool_t *p, const k2n_dir_conf *conf,
                             const char *section, int serving)
{
    k2n_format_e format = k2n_conf_format(conf);
    const k2n_stmt_t *stmts[3];
    const char *why;
    int i;

    stmts[0] = conf->account;
    stmts[1] = conf->record;
    stmts[2] = conf->duplicate;
    for (i = 0; i < 3; i++) {
        if ((why = k2n_stmt_problem(p, stmts[i], format, section)) != NULL) {
            return why;
        }
    }
    if (conf->duplicate && conf->duplicate_format != -1
        && conf->duplicate_format != (int)format
        && !k2n_stmt_has_format(conf->duplicate)) {
        return apr_psprintf(p, K2N_DIR_DUPLICATE_QUERY " (%s) is written for "
                            K2N_DIR_FORMAT " %s, in a section around %s, which "
                            "has " K2N_DIR_FORMAT " %s: there its FIELD would "
                            "be %s, and its SQL reads the other format's "
                            "records; set " K2N_DIR_DUPLICATE_QUERY " again in "
                            "%s (or " K2N_DIR_FORMAT " beside the statement)",
                            conf->duplicate->where,
                            conf->duplicate_format == K2N_FORMAT_K2CONNECT
                            ? "k2connect" : "form", section,
                            format == K2N_FORMAT_K2CONNECT ? "k2connect" : "form",
                            format == K2N_FORMAT_K2CONNECT ? "the event id"
                            : "k2_transaction_id", section);
    }
    if (format == K2N_FORMAT_FORM && conf->topics) {
        return apr_psprintf(p, K2N_DIR_TOPICS " (%s): %s receives K2's form ("
                            K2N_DIR_FORMAT " form, the default), which has no "
                            "topics: set " K2N_DIR_FORMAT " k2connect",
                            conf->topics_where, section);
    }
    if (format == K2N_FORMAT_K2CONNECT && (serving || conf->handler == 1)) {
        if (!conf->key) {
            return apr_psprintf(p, "%s has " K2N_DIR_FORMAT " k2connect but no "
                                K2N_DIR_SIGNATURE_KEY ": K2 Connect webhooks "
                                "are authenticated by their signature (the "
                                "X-KopoKopo-Signature header, made with the "
                                "API key), so the key is required", section);
        }
        if (!conf->record) {
            return apr_psprintf(p, "%s has " K2N_DIR_FORMAT " k2connect but no "
                                K2N_DIR_RECORD_QUERY, section);
        }
    }
    return NULL;
}

/* Does the section apply to path (a URL for a <Location>, a file path for
 * a <Directory>), as httpd's walks match it?  Plain paths only: a prefix,
 * at a '/' boundary. */
static int k2n_covers(const core_dir_config *sec, const char *path)
{
    apr_size_t n;

    if (!sec->d || !path || sec->r || sec->d_is_fnmatch) {
        return 0;
    }
    n = strlen(sec->d);
    return strncmp(sec->d, path, n) == 0
           && (n == 0 || sec->d[n - 1] == '/' || path[n] == '\0'
               || path[n] == '/');
}

/* Merge onto conf every section of list that covers path, in the list's
 * order (httpd's: <Location> sections in the order written, the main
 * server's before a virtual host's; <Directory> sections sorted by depth). */
static k2n_dir_conf *k2n_merge_covering(apr_pool_t *p, k2n_dir_conf *conf,
                                        const apr_array_header_t *list,
                                        const char *path)
{
    ap_conf_vector_t **sec = (ap_conf_vector_t **)list->elts;
    int j;

    for (j = 0; path && j < list->nelts; j++) {
        const core_dir_config *core = ap_get_core_module_config(sec[j]);
        k2n_dir_conf *add = ap_get_module_config(sec[j], &k2notify_module);

        if (add && core && k2n_covers(core, path)) {
            conf = k2n_merge_dir_conf(p, conf, add);
        }
    }
    return conf;
}

/* path below dir (at a '/' boundary), as a URL ("/..."), or NULL. */
static const char *k2n_below(apr_pool_t *p, const char *dir, const char *path)
{
    apr_size_t n = dir ? strlen(dir) : 0;

    while (n > 0 && dir[n - 1] == '/') {
        n--;
    }
    if (!dir || strncmp(dir, path, n) != 0
        || (path[n] != '/' && path[n] != '\0')) {
        return NULL;
    }
    return path[n] ? path + n : apr_pstrcat(p, "/", NULL);
}

const char *k2n_server_name(apr_pool_t *p, const server_rec *s)
{
    return s->is_virtual
           ? apr_psprintf(p, "the virtual host %s (line %u of %s)",
                          s->server_hostname ? s->server_hostname : "",
                          s->defn_line_number, s->defn_name ? s->defn_name : "?")
           : "the main server";
}

/* Check each section of server s as a request for its own path would see
 * it: the server's defaults, then every section that covers that path,
 * merged in httpd's order (<Directory> sections of the file it maps to
 * under DocumentRoot, then <Location> sections), whichever comes first in
 * the file; for a <Location> whose locations alone make it a k2notify one,
 * without the <Directory> sections, as its requests skip the directory
 * walk (k2n_map_to_storage).  A virtual host sees the main server's sections too: each
 * problem is logged once.  Returns the number of problems logged. */
static int k2n_check_sections(apr_pool_t *p, server_rec *s, int directories,
                              apr_hash_t *seen)
{
    core_server_config *sconf = ap_get_core_module_config(s->module_config);
    const apr_array_header_t *list = directories ? sconf->sec_dir
                                                 : sconf->sec_url;
    ap_conf_vector_t **sec = (ap_conf_vector_t **)list->elts;
    int i, problems = 0;

    for (i = 0; i < list->nelts; i++) {
        const core_dir_config *core = ap_get_core_module_config(sec[i]);
        k2n_dir_conf *conf = ap_get_module_config(s->lookup_defaults,
                                                  &k2notify_module), *located;
        const char *section, *why, *url, *file, *key;

        if (!core || !core->d
            || !ap_get_module_config(sec[i], &k2notify_module)) {
            continue;
        }
        if (core->r) {                  /* a regex: itself only */
            conf = k2n_merge_dir_conf(p, conf, ap_get_module_config(
                                          sec[i], &k2notify_module));
        }
        else {
            url = directories ? k2n_below(p, sconf->ap_document_root, core->d)
                              : core->d;
            file = directories ? core->d
                               : sconf->ap_document_root
                                 ? apr_pstrcat(p, sconf->ap_document_root,
                                               core->d, NULL) : NULL;
            located = k2n_merge_covering(p, conf, sconf->sec_url, url);
            if (!directories && located->handler == 1) {
                conf = located;         /* no directory walk: k2n_map_to_storage */
            }
            else {
                conf = k2n_merge_covering(p, conf, sconf->sec_dir, file);
                conf = k2n_merge_covering(p, conf, sconf->sec_url, url);
            }
        }
        section = apr_psprintf(p, "<%s%s %s>", directories ? "Directory"
                               : "Location", core->r ? "Match" : "", core->d);
        why = k2n_conf_problem(p, conf, section, 0);
        if (!why) {
            why = k2n_dbd_conf_problem(p, s, conf, section);    /* its driver's */
        }
        if (!why) {
            continue;
        }
        key = apr_psprintf(p, "%pp %s", (void *)sec[i], why);
        if (apr_hash_get(seen, key, APR_HASH_KEY_STRING)) {
            continue;                   /* as in the main server */
        }
        apr_hash_set(seen, key, APR_HASH_KEY_STRING, key);
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, "%s%s%s",
                     why, s->is_virtual ? ", in " : "",
                     s->is_virtual ? k2n_server_name(p, s) : "");
        problems++;
    }
    return problems;
}

/* The check_config hook: what no single directive can tell (the format of
 * a location, maybe set in an enclosing one) fails configtest here. */
int k2n_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s)
{
    apr_hash_t *seen = apr_hash_make(ptemp);
    int problems = 0;

    (void)pconf; (void)plog;
    for (; s; s = s->next) {
        problems += k2n_check_sections(ptemp, s, 0, seen);
        problems += k2n_check_sections(ptemp, s, 1, seen);
    }
    return problems ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/* "line N of FILE" of the directive being read. */
static const char *k2n_where(cmd_parms *cmd)
{
    return cmd->directive ? apr_psprintf(cmd->pool, "line %d of %s",
                                         cmd->directive->line_num,
                                         cmd->directive->filename)
                          : "the command line";
}

/* One FIELD of a query directive: a form field, a JSON pointer (a webhook's;
 * which format the location has is checked once the whole configuration is
 * read: k2n_check_config), raw_body or remote_user.  NULL, or why not. */
static const char *k2n_parse_field(cmd_parms *cmd, const char *f,
                                   k2n_field_t *field)
{
    const char *why;

    field->name = f;
    field->form_field = -1;
    if (strcmp(f, "remote_user") == 0) {
        field->kind = K2N_FIELD_REMOTE_USER;
        return NULL;
    }
    if (strcmp(f, "raw_body") == 0) {
        field->kind = K2N_FIELD_RAW_BODY;
        return NULL;
    }
    if (f[0] == '/') {
        if ((why = k2_json_pointer_check(f)) != NULL) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not a JSON pointer "
                                "(RFC 6901): %s", cmd->cmd->name, f, why);
        }
        field->kind = K2N_FIELD_POINTER;
        return NULL;
    }
    field->kind = K2N_FIELD_FORM;
    field->form_field = k2_field_lookup(f, strlen(f), 0);
    if (field->form_field < 0) {
        char *known = apr_pstrdup(cmd->temp_pool, k2_field_name(0));
        int k;

        for (k = 1; k < K2_F_COUNT; k++) {
            known = apr_pstrcat(cmd->temp_pool, known, " ", k2_field_name(k),
                                NULL);
        }
        return apr_psprintf(cmd->pool, "%s: unknown field '%s' (known fields: "
                            "%s; in a " K2N_DIR_FORMAT " k2connect location: "
                            "JSON pointers such as /id, and raw_body)",
                            cmd->cmd->name, f, known);
    }
    return NULL;
}

/* K2NotifyAccountQuery "SQL" [FIELD ...] (default ac_no),
 * K2NotifyRecordQuery "SQL" FIELD ... and
 * K2NotifyDuplicateQuery "SQL" [FIELD ...] (default k2_transaction_id). */
static const char *k2n_set_query(cmd_parms *cmd, void *dconf, int argc,
                                 char *const argv[])
{
    static unsigned int label_counter = 0;
    k2n_dir_conf *conf = dconf;
    const char *name = cmd->cmd->name;
    int kind = (int)(apr_uintptr_t)cmd->info;
    k2n_stmt_t *st;
    k2_sql_info_t sql;
    k2n_field_t *fields;
    int nfields, nplaceholders, i;

    if (argc < 1 || !*argv[0]) {
        return apr_psprintf(cmd->pool, "%s: needs the SQL statement as its "
                            "first argument", name);
    }
    if (kind == K2N_Q_RECORD && argc < 2) {
        return apr_psprintf(cmd->pool, "%s: name the FIELD bound to each %%s "
                            "placeholder after the SQL statement", name);
    }
    if (!k2n_dbd_prepare) {
        k2n_dbd_prepare = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
        k2n_dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
        k2n_dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
        k2n_dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
        if (!k2n_dbd_prepare || !k2n_dbd_acquire || !k2n_dbd_open
            || !k2n_dbd_close) {
            return apr_psprintf(cmd->pool, "%s: mod_dbd is not loaded: add "
                                "'LoadModule dbd_module .../mod_dbd.so' before "
                                "this directive", name);
        }
    }

    /* apr_dbd_prepare() reads '%' + a letter as a placeholder (and "%%" as
     * a literal '%') wherever it stands, quotes and comments included. */
    k2_sql_scan(argv[0], &sql);
    if (sql.bad) {
        return apr_psprintf(cmd->pool, "%s: only %%s placeholders are supported, "
                            "found '%.2s' in \"%s\" (write a literal percent "
                            "sign as %%%%)", name, sql.bad, argv[0]);
    }
    if (sql.misplaced) {
        return apr_psprintf(cmd->pool, "%s: the placeholder %%s is inside %s in "
                            "\"%s\": mod_dbd would not bind it there, and the "
                            "statement would use the text '?' or '$1' instead "
                            "of the value; write %%s without quotes (every value "
                            "is bound as a string)", name,
                            k2_sql_context_name(sql.where), argv[0]);
    }
    if (kind == K2N_Q_RECORD && sql.returning) {
        return apr_psprintf(cmd->pool, "%s: the record statement must not return "
                            "rows (found '%.9s' in \"%s\"): the module counts "
                            "the rows it affects, 1 for a payment recorded now and "
                            "0 for a resend; remove the RETURNING clause", name,
                            sql.returning, argv[0]);
    }
    nplaceholders = sql.placeholders;

    nfields = argc - 1;
    if (nfields == 0) {                 /* the directive's default FIELD */
        nfields = 1;
        fields = apr_pcalloc(cmd->pool, sizeof(*fields));
        fields[0].kind = K2N_FIELD_DEFAULT;
        fields[0].form_field = kind == K2N_Q_ACCOUNT ? K2_F_AC_NO
                                                     : K2_F_K2_TRANSACTION_ID;
        fields[0].name = k2_field_name(fields[0].form_field);
    }
    else {
        int form = 0, json = 0;

        fields = apr_pcalloc(cmd->pool, sizeof(*fields) * (apr_size_t)nfields);
        for (i = 0; i < nfields; i++) {
            const char *why = k2n_parse_field(cmd, argv[i + 1], &fields[i]);

            if (why) {
                return why;
            }
            form |= fields[i].kind == K2N_FIELD_FORM;
            json |= fields[i].kind == K2N_FIELD_POINTER
                    || fields[i].kind == K2N_FIELD_RAW_BODY;
        }
        if (form && json) {
            return apr_psprintf(cmd->pool, "%s: the FIELDs mix form fields and "
                                "JSON pointers (or raw_body): a location receives "
                                "either K2's form (" K2N_DIR_FORMAT " form) or "
                                "K2 Connect webhooks (" K2N_DIR_FORMAT
                                " k2connect)", name);
        }
    }
    if (nplaceholders != nfields) {
        return apr_psprintf(cmd->pool, "%s: the SQL has %d %%s placeholder%s "
                            "but %d field%s %s bound to %s", name,
                            nplaceholders, nplaceholders == 1 ? "" : "s",
                            nfields, nfields == 1 ? "" : "s",
                            nfields == 1 ? "is" : "are",
                            nplaceholders == 1 ? "it" : "them");
    }

    st = apr_pcalloc(cmd->pool, sizeof(*st));
    st->directive = name;
    st->query = (k2n_query_e)kind;
    st->where = k2n_where(cmd);
    st->sql = argv[0];
    st->label = apr_psprintf(cmd->pool, "k2notify_%u", ++label_counter);
    st->nfields = nfields;
    st->fields = fields;
    if (kind == K2N_Q_RECORD) {
        int *key = apr_pcalloc(cmd->pool, sizeof(int) * (apr_size_t)nfields);

        st->nkeys = k2_sql_conflict_key(st->sql, key, nfields);
        st->key = key;
    }
    k2n_dbd_prepare(cmd->server, st->sql, st->label);
    if (!k2n_statements) {
        k2n_statements = apr_array_make(cmd->pool, 8, sizeof(k2n_stmt_t *));
    }
    APR_ARRAY_PUSH(k2n_statements, const k2n_stmt_t *) = st;

    if (kind == K2N_Q_ACCOUNT) {
        conf->account = st;
    }
    else if (kind == K2N_Q_RECORD) {
        conf->record = st;
    }
    else {
        conf->duplicate = st;
    }
    return NULL;
}

/* K2NotifyCurrencies and K2NotifyBillerNumbers: lists kept NULL-terminated. */
static const char *k2n_add_to_list(cmd_parms *cmd, void *dconf, const char *arg)
{
    k2n_dir_conf *conf = dconf;
    int which = (int)(apr_uintptr_t)cmd->info;
    apr_array_header_t **list = which == 1 ? &conf->billers
                              : which == 2 ? &conf->topics : &conf->currencies;
    const char *s;

    if (which == 2) {
        conf->topics_where = k2n_where(cmd);
    }

    for (s = arg; *s; s++) {
        if (apr_iscntrl(*s) || apr_isspace(*s)) {
            break;
        }
    }
    if (!*arg || *s) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid value",
                            cmd->cmd->name, arg);
    }
    if (!*list) {
        *list = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    else {
        apr_array_pop(*list);           /* the terminating NULL */
    }
    APR_ARRAY_PUSH(*list, const char *) = arg;
    APR_ARRAY_PUSH(*list, const char *) = NULL;
    return NULL;
}

static const char *k2n_set_require_user(cmd_parms *cmd, void *dconf, int flag)
{
    (void)cmd;
    ((k2n_dir_conf *)dconf)->require_user = flag;
    return NULL;
}

static const char *k2n_set_max_body(cmd_parms *cmd, void *dconf, const char *arg)
{
    k2n_dir_conf *conf = dconf;
    char *end = NULL;
    apr_off_t n;

    if (apr_strtoff(&n, arg, &end, 10) != APR_SUCCESS || *end || n < 1
        || n > 1024 * 1024) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a size in bytes from "
                            "1 to 1048576", cmd->cmd->name, arg);
    }
    conf->max_body = n;
    return NULL;
}

static const char *k2n_set_format(cmd_parms *cmd, void *dconf, const char *arg)
{
    k2n_dir_conf *conf = dconf;

    if (strcmp(arg, "form") == 0) {
        conf->format = K2N_FORMAT_FORM;
    }
    else if (strcmp(arg, "k2connect") == 0) {
        conf->format = K2N_FORMAT_K2CONNECT;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a format: form or "
                            "k2connect", cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *k2n_set_group_commit(cmd_parms *cmd, void *dconf, int flag)
{
    k2n_srv_conf *conf = ap_get_module_config(cmd->server->module_config,
                                              &k2notify_module);

    (void)dconf;
    conf->group_commit = flag;
    return NULL;
}

/* K2NotifyLockTimeout: seconds (or with a unit: 500ms). */
static const char *k2n_set_lock_timeout(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    k2n_srv_conf *conf = ap_get_module_config(cmd->server->module_config,
                                              &k2notify_module);
    apr_interval_time_t t;

    (void)dconf;
    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS
        || t < apr_time_from_msec(100) || t > apr_time_from_sec(300)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a time from 100ms to "
                            "300 (seconds; or with a unit: 500ms, 2s)",
                            cmd->cmd->name, arg);
    }
    conf->lock_timeout = t;
    return NULL;
}

/* DBDriver, DBDParams and DBDInitSQL: noted, then left to mod_dbd
 * (DECLINE_CMD hands a directive to the next module that has it). */
static const char *k2n_note_dbd(cmd_parms *cmd, void *dconf, const char *arg)
{
    k2n_srv_conf *conf = ap_get_module_config(cmd->server->module_config,
                                              &k2notify_module);
    int which = (int)(apr_uintptr_t)cmd->info;

    (void)dconf;
    if (which == 0) {
        conf->dbd_driver = arg;
    }
    else if (which == 1) {
        conf->dbd_params = arg;
        conf->dbd_params_where = k2n_where(cmd);
    }
    else {
        if (!conf->dbd_init_sql) {
            conf->dbd_init_sql = apr_array_make(cmd->pool, 2,
                                                sizeof(const char *));
        }
        APR_ARRAY_PUSH(conf->dbd_init_sql, const char *) = arg;
    }
    return DECLINE_CMD;
}

int k2n_dbd_directives_seen(void)
{
    module *m;

    /* httpd offers a directive to the modules last loaded first */
    for (m = ap_top_module; m; m = m->next) {
        if (m == &k2notify_module) {
            return 1;
        }
        if (strcmp(m->name, "mod_dbd.c") == 0) {
            return 0;
        }
    }
    return 0;
}

void k2n_config_forget(void)
{
    k2n_warnings = NULL;
    k2n_statements = NULL;
}

const apr_array_header_t *k2n_config_statements(void)
{
    static const apr_array_header_t none = { NULL, 0, 0, 0, NULL };

    return k2n_statements ? k2n_statements : &none;
}

void k2n_config_log_warnings(void)
{
    int i;

    for (i = 0; k2n_warnings && i < k2n_warnings->nelts; i++) {
        const k2n_warning_t *w = &APR_ARRAY_IDX(k2n_warnings, i, k2n_warning_t);

        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, w->s, "%s", w->text);
    }
}

/* K2NotifySignatureKeyFile PATH: the key is read here, at startup, while
 * httpd still runs as root, so the file can be readable by root only. */
static const char *k2n_set_signature_key(cmd_parms *cmd, void *dconf,
                                         const char *arg)
{
    k2n_dir_conf *conf = dconf;
    const char *name = cmd->cmd->name;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_file_t *f = NULL;
    apr_finfo_t finfo;
    apr_status_t rv;
    unsigned char *bytes;
    apr_size_t len = 0;
    k2n_key_t *key;
    char err[256];

    if (!path) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid path", name, arg);
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_FPROT_OS_DEFAULT, cmd->temp_pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&finfo, APR_FINFO_TYPE | APR_FINFO_SIZE
                               | APR_FINFO_PROT, f);
        if (rv == APR_INCOMPLETE) {
            rv = APR_SUCCESS;
        }
    }
    if (rv != APR_SUCCESS) {
        if (f) {
            apr_file_close(f);
        }
        return apr_psprintf(cmd->pool, "%s: cannot read the key file %s: %s",
                            name, path, apr_strerror(rv, err, sizeof(err)));
    }
    if (finfo.filetype != APR_REG) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "%s: the key file %s is not a regular "
                            "file", name, path);
    }
    if (finfo.size > K2N_MAX_KEY_FILE) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "%s: the key file %s is larger than %d "
                            "bytes: it should hold the API key only", name,
                            path, K2N_MAX_KEY_FILE);
    }
    bytes = apr_palloc(cmd->pool, (apr_size_t)finfo.size + 1);
    if (finfo.size > 0) {
        /* APR_EOF: the file shrank since it was measured; keep what was read. */
        rv = apr_file_read_full(f, bytes, (apr_size_t)finfo.size, &len);
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(cmd->pool, "%s: cannot read the key file %s: %s",
                            name, path, apr_strerror(rv, err, sizeof(err)));
    }
    while (len > 0 && (bytes[len - 1] == '\n' || bytes[len - 1] == '\r')) {
        len--;
    }
    if (len == 0) {
        return apr_psprintf(cmd->pool, "%s: the key file %s is empty", name,
                            path);
    }
    bytes[len] = '\0';

    if (finfo.protection & APR_FPROT_WREAD) {
        k2n_warning_t *w;

        if (!k2n_warnings) {
            k2n_warnings = apr_array_make(cmd->pool, 1, sizeof(k2n_warning_t));
        }
        w = apr_array_push(k2n_warnings);
        w->s = cmd->server;
        w->text = apr_psprintf(cmd->pool, "%s: the key file %s is readable by "
                               "every user of this machine: chmod 0600 it "
                               "(httpd reads it as root at startup)", name,
                               path);
    }

    key = apr_palloc(cmd->pool, sizeof(*key));
    key->bytes = bytes;
    key->len = len;
    key->path = path;
    conf->key = key;
    return NULL;
}

const command_rec k2n_cmds[] = {
    AP_INIT_TAKE_ARGV(K2N_DIR_ACCOUNT_QUERY, k2n_set_query, (void *)K2N_Q_ACCOUNT, ACCESS_CONF,
                      "\"SQL\" [FIELD ...]: the query that finds the account; "
                      "one or more rows means it exists (FIELD defaults to ac_no)"),
    AP_INIT_TAKE_ARGV(K2N_DIR_RECORD_QUERY, k2n_set_query, (void *)K2N_Q_RECORD, ACCESS_CONF,
                      "\"SQL\" FIELD ...: the statement that records a payment; "
                      "1 row affected = accepted, 0 rows = duplicate"),
    AP_INIT_TAKE_ARGV(K2N_DIR_DUPLICATE_QUERY, k2n_set_query, (void *)K2N_Q_DUPLICATE,
                      ACCESS_CONF,
                      "\"SQL\" [FIELD ...]: returns the stored ac_no and amount "
                      "of a transaction already recorded (FIELD defaults to "
                      "k2_transaction_id); a resend that differs gets 03"),
    AP_INIT_ITERATE(K2N_DIR_CURRENCIES, k2n_add_to_list, NULL, ACCESS_CONF,
                    "currencies accepted (default KES)"),
    AP_INIT_ITERATE(K2N_DIR_BILLER_NUMBERS, k2n_add_to_list, (void *)1, ACCESS_CONF,
                    "biller (paybill) numbers accepted (default: any)"),
    AP_INIT_FLAG(K2N_DIR_REQUIRE_USER, k2n_set_require_user, NULL, ACCESS_CONF,
                 "On (default): refuse with 500 a notification that no "
                 "authentication module authenticated"),
    AP_INIT_TAKE1(K2N_DIR_MAX_BODY, k2n_set_max_body, NULL, ACCESS_CONF,
                  "largest request body accepted, in bytes (default 8192)"),
    AP_INIT_TAKE1(K2N_DIR_SIGNATURE_KEY, k2n_set_signature_key, NULL, ACCESS_CONF,
                  "file holding K2's API key: every notification must then "
                  "carry a valid signature"),
    AP_INIT_TAKE1(K2N_DIR_FORMAT, k2n_set_format, NULL, ACCESS_CONF,
                  "form (default: K2's HTTP POST notification API) or k2connect "
                  "(K2 Connect webhooks: signed JSON)"),
    AP_INIT_ITERATE(K2N_DIR_TOPICS, k2n_add_to_list, (void *)2, ACCESS_CONF,
                    "K2 Connect topics recorded (default: every topic); a "
                    "signed event of another topic is answered 200, ignored"),
    AP_INIT_FLAG(K2N_DIR_GROUP_COMMIT, k2n_set_group_commit, NULL, RSRC_CONF,
                 "On (default with SQLite and a threaded MPM): notifications "
                 "that queue while a commit runs share the next one"),
    AP_INIT_TAKE1(K2N_DIR_LOCK_TIMEOUT, k2n_set_lock_timeout, NULL, RSRC_CONF,
                  "how long a SQLite write waits for the k2notify-db lock "
                  "before it goes on without it (default 10 seconds)"),
    /* mod_dbd's directives, noted too (k2n_note_dbd) */
    AP_INIT_TAKE1("DBDriver", k2n_note_dbd, (void *)0, RSRC_CONF, "SQL Driver"),
    AP_INIT_TAKE1("DBDParams", k2n_note_dbd, (void *)1, RSRC_CONF,
                  "SQL Driver Params"),
    AP_INIT_TAKE1("DBDInitSQL", k2n_note_dbd, (void *)2, RSRC_CONF,
                  "SQL statement to be executed after connection is created"),
    /* core's directive, read too (mod_k2notify_status.c) */
    AP_INIT_RAW_ARGS("SetHandler", k2n_status_note_handler, NULL, OR_FILEINFO,
                     "a handler name that overrides any other configured handler"),
    { NULL, { NULL }, NULL, 0, NO_ARGS, NULL }
};
