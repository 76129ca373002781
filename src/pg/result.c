/*
 * result.c -- cn_pg_result: a PGresult (or an error without one), its
 * typed getters and the JSON rows helper.
 *
 * A result made in a request lives in the request's arena and is cleared
 * by a deferred clean-up when the request ends (cn_pg_result_free may do
 * it earlier); one made outside a request is the caller's to free.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

/* Type OIDs (src/include/catalog/pg_type.dat; stable across versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

struct cn_pg_result {
    PGresult *res;
    const char *sqlstate, *message, *detail;
    char state_buf[6];
    char *msg_buf; /* a message without a PGresult (malloc'd outside a request) */
    bool in_req;
};

static void clear(void *arg)
{
    cn_pg_result *r = arg;

    PQclear(r->res);
    r->res = NULL;
}

cn_pg_result *pg__result_new(PGresult *res, const char *sqlstate, const char *message)
{
    cn_req *req = cn_req_current();
    cn_pg_result *r;

    r = req ? cn_req_alloc(req, sizeof(*r)) : malloc(sizeof(*r));
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    if (req) {
        if (cn_req_defer(req, clear, r) < 0)
            return NULL;
        r->in_req = true;
    }
    r->res = res;
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_EMPTY_QUERY) {
        r->sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        r->message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        r->detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        if (r->sqlstate == NULL)
            r->sqlstate = "XX000";
        if (r->message == NULL)
            r->message = PQresultErrorMessage(res);
    } else if (res == NULL) {
        snprintf(r->state_buf, sizeof r->state_buf, "%s", sqlstate ? sqlstate : "08006");
        r->sqlstate = r->state_buf;
        r->msg_buf = req ? cn_req_strdup(req, message ? message : "connection lost")
                         : strdup(message ? message : "connection lost");
        r->message = r->msg_buf ? r->msg_buf : "connection lost";
    }
    return r;
}

void cn_pg_result_free(cn_pg_result *r)
{
    if (r == NULL)
        return;
    clear(r);
    r->sqlstate = r->message = r->detail = NULL;
    if (!r->in_req) {
        free(r->msg_buf);
        free(r);
    }
}

static bool has_rows(const cn_pg_result *r)
{
    return r && r->res && PQresultStatus(r->res) == PGRES_TUPLES_OK;
}

int cn_pg_result_rows(const cn_pg_result *r)
{
    return has_rows(r) ? PQntuples(r->res) : 0;
}

int cn_pg_result_cols(const cn_pg_result *r)
{
    return has_rows(r) ? PQnfields(r->res) : 0;
}

int64_t cn_pg_result_affected(const cn_pg_result *r)
{
    const char *n = r && r->res ? PQcmdTuples(r->res) : "";

    return *n ? strtoll(n, NULL, 10) : 0;
}

const char *cn_pg_result_colname(const cn_pg_result *r, int col)
{
    return col >= 0 && col < cn_pg_result_cols(r) ? PQfname(r->res, col) : NULL;
}

int cn_pg_result_col(const cn_pg_result *r, const char *name)
{
    int n = cn_pg_result_cols(r);

    for (int i = 0; name && i < n; i++)
        if (strcmp(PQfname(r->res, i), name) == 0)
            return i;
    return CN_ENOENT;
}

static bool in_range(const cn_pg_result *r, int row, int col)
{
    return row >= 0 && col >= 0 && row < cn_pg_result_rows(r) && col < cn_pg_result_cols(r);
}

int cn_pg_result_isnull(const cn_pg_result *r, int row, int col)
{
    return !in_range(r, row, col) || PQgetisnull(r->res, row, col);
}

const char *cn_pg_result_text(const cn_pg_result *r, int row, int col)
{
    return cn_pg_result_isnull(r, row, col) ? NULL : PQgetvalue(r->res, row, col);
}

int cn_pg_result_int64(const cn_pg_result *r, int row, int col, int64_t *out)
{
    const char *s = cn_pg_result_text(r, row, col);
    char *end;
    long long v;

    if (s == NULL)
        return CN_ENOENT;
    {
        /* the common case without strtoll (a measurable part of a request
         * that reads twenty rows): up to 18 digits, an optional minus */
        const char *d = s + (*s == '-');
        int64_t acc = 0;
        int i = 0;
        for (; i < 18 && d[i] >= '0' && d[i] <= '9'; i++)
            acc = acc * 10 + (d[i] - '0');
        if (i > 0 && d[i] == '\0') {
            *out = *s == '-' ? -acc : acc;
            return 0;
        }
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end)
        return CN_EINVAL;
    if (errno == ERANGE)
        return CN_ERANGE;
    *out = v;
    return 0;
}

int cn_pg_result_double(const cn_pg_result *r, int row, int col, double *out)
{
    const char *s = cn_pg_result_text(r, row, col);
    char *end;
    double v;

    if (s == NULL)
        return CN_ENOENT;
    errno = 0;
    v = strtod(s, &end); /* reads NaN, Infinity and -Infinity too */
    if (end == s || *end)
        return CN_EINVAL;
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
        return CN_ERANGE;
    *out = v;
    return 0;
}

int cn_pg_result_bool(const cn_pg_result *r, int row, int col, int *out)
{
    const char *s = cn_pg_result_text(r, row, col);

    if (s == NULL)
        return CN_ENOENT;
    if (strcmp(s, "t") == 0 || strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = 1;
    else if (strcmp(s, "f") == 0 || strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = 0;
    else
        return CN_EINVAL;
    return 0;
}

static cJSON *value_json(const cn_pg_result *r, int row, int col)
{
    const char *s = PQgetvalue(r->res, row, col);
    double d;
    int b;

    if (PQgetisnull(r->res, row, col))
        return cJSON_CreateNull();
    switch (PQftype(r->res, col)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        if (cn_pg_result_double(r, row, col, &d) == 0 && isfinite(d))
            return cJSON_CreateNumber(d);
        return cJSON_CreateString(s); /* NaN, Infinity: JSON has no such numbers */
    case OID_BOOL:
        if (cn_pg_result_bool(r, row, col, &b) == 0)
            return cJSON_CreateBool(b);
        return cJSON_CreateString(s);
    case OID_JSON:
    case OID_JSONB: {
        cJSON *j = cJSON_Parse(s);
        return j ? j : cJSON_CreateString(s);
    }
    default:
        return cJSON_CreateString(s);
    }
}

cJSON *cn_pg_result_json(const cn_pg_result *r)
{
    int rows = cn_pg_result_rows(r), cols = cn_pg_result_cols(r);
    cJSON *arr = cJSON_CreateArray();

    for (int i = 0; arr && i < rows; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        for (int j = 0; j < cols; j++) {
            cJSON *v = value_json(r, i, j);
            if (v == NULL || !cJSON_AddItemToObject(o, PQfname(r->res, j), v)) {
                cJSON_Delete(v);
                cJSON_Delete(arr);
                return NULL;
            }
        }
    }
    return arr;
}

const char *cn_pg_result_sqlstate(const cn_pg_result *r)
{
    return r ? r->sqlstate : NULL;
}

const char *cn_pg_result_message(const cn_pg_result *r)
{
    return r ? r->message : NULL;
}

const char *cn_pg_result_detail(const cn_pg_result *r)
{
    return r ? r->detail : NULL;
}
