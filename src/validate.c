/*
 * validate.c -- declared parameters and bodies, checked the way FastAPI
 * and pydantic v2 check them (lax mode, Python inputs: query strings,
 * headers and cookies are strings; a JSON body is what json.loads makes of
 * it), with pydantic's error types, messages, locations and contexts.
 *
 * At registration a route's declarations are prepared once: its path
 * parameters (`{id:int}` is a declaration by itself) merged with the
 * declared ones, patterns compiled, defaults parsed. Per request, every
 * parameter and the body are checked, every error collected, and the
 * converted values kept in the request's arena for the getters and for
 * cn_req_json.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"
#include "jsoncheck.h"
#include "pool.h"
#include "req.h"
#include "router.h"
#include "url.h"
#include "validate.h"

typedef struct pattern {
    const cn_field *field;
    regex_t re;
} pattern;

/* What validate.c keeps for a route. */
typedef struct cn__decl {
    const cn_field **params; /* in FastAPI's order: path, query, header, cookie */
    unsigned nparams;
    cn_field *implicit; /* path parameters no declaration names */
    pattern *patterns;
    unsigned npatterns;
    const cn_field *body;
} decl;

/* One parameter's validated value (req->valid[i] answers decl->params[i]). */
typedef struct cn__value {
    bool present;
    const char *s; /* str, enum; the text for the others */
    int64_t i;
    double d;
    bool b;
} value;

/* ---- parsing as pydantic parses strings ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Trim ASCII whitespace into buf (NUL-terminated); false if it does not fit. */
static bool trimmed(const char *s, char *buf, size_t size)
{
    size_t n;

    while (is_space(*s))
        s++;
    n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        n--;
    if (n >= size)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    return true;
}

/* Underscores between digits are dropped (1_000); false where Python refuses them. */
static bool strip_underscores(char *s)
{
    size_t n = strlen(s), o = 0;

    if (strchr(s, '_') == NULL)
        return true;
    if (s[0] == '_' || s[n - 1] == '_' || strstr(s, "__"))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            s[o++] = s[i];
    s[o] = 0;
    return true;
}

/* pydantic's str_as_int: whitespace, a sign, leading zeros, ".000", underscores. */
static int parse_int(const char *in, int64_t *out, const char **type)
{
    char buf[128], *s = buf, *dot;
    bool neg = false;
    int64_t v = 0;

    *type = "int_parsing";
    if (!trimmed(in, buf, sizeof buf))
        return -1;
    if (*s == '+') {
        if (s[1] == '-')
            return -1;
        s++;
    } else if (*s == '-') {
        if (s[1] == '-' || s[1] == '+')
            return -1;
        neg = true;
        s++;
    }
    dot = strchr(s, '.');
    if (dot) {
        if (dot[1] == 0 || strspn(dot + 1, "0") != strlen(dot + 1))
            return -1;
        *dot = 0;
    }
    if (!strip_underscores(s) || *s == 0 || strspn(s, "0123456789") != strlen(s))
        return -1;
    for (; *s; s++) {
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10) {
            /* Python's ints have no limit; these must fit 64 bits */
            *type = "int_parsing_size";
            return -1;
        }
        v = v * 10 + d;
    }
    *out = neg ? -v : v;
    return 0;
}

/* Rust's f64 parsing, as pydantic's str_as_float uses it: decimal, inf, nan. */
static int parse_float(const char *in, double *out)
{
    char buf[128], *end;
    const char *s;

    if (!trimmed(in, buf, sizeof buf) || buf[0] == 0)
        return -1;
    s = buf[0] == '+' || buf[0] == '-' ? buf + 1 : buf;
    if (strncasecmp(s, "inf", 3) == 0 || strncasecmp(s, "nan", 3) == 0) {
        if (strcasecmp(s, "inf") && strcasecmp(s, "infinity") && strcasecmp(s, "nan"))
            return -1;
    } else if (strspn(s, "0123456789._eE+-") != strlen(s)) {
        return -1; /* no hex floats, no other words */
    }
    if (!strip_underscores(buf))
        return -1;
    errno = 0;
    *out = strtod(buf, &end);
    return *end == 0 && end != buf ? 0 : -1;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const no[] = {"0", "f", "n", "no", "off", "false"};
    static const char *const yes[] = {"1", "t", "y", "yes", "on", "true"};

    for (size_t i = 0; i < CN__ARRAY_SIZE(no); i++) {
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    }
    return -1;
}

/* Characters (code points) in a UTF-8 string. */
static size_t char_count(const char *s, size_t n)
{
    size_t c = 0;

    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* ---- errors, as pydantic words them ---- */

/* Where a value is: a chain on the C stack, made into `loc` only for an error. */
typedef struct where {
    const struct where *up;
    const char *key; /* NULL: an array index */
    size_t index;
} where;

/* What an error quotes as its input: a parameter's text or a body's node. */
typedef struct input {
    const char *text;
    const cJSON *json;
} input;

#define TEXT(t) ((input){.text = (t)})
#define NODE(j) ((input){.json = (j)})

typedef struct errors {
    cn_req *req;
    cJSON *list; /* made with the first error */
    bool oom;
} errors;

static cJSON *number(double v)
{
    return cJSON_CreateNumber(v);
}

/* A value made for the answer: NULL is out of memory (a 500, never a
 * body or an error list with a piece missing). */
static cJSON *made(errors *e, cJSON *j)
{
    if (j == NULL)
        e->oom = true;
    return j;
}

/* o[k] = v, or v freed and out of memory noted (o NULL, or no room for the key). */
static void put(errors *e, cJSON *o, const char *k, cJSON *v)
{
    if (v == NULL || o == NULL || !cJSON_AddItemToObject(o, k, v)) {
        cJSON_Delete(v);
        e->oom = true;
    }
}

/* a[] += v, or v freed and out of memory noted. */
static void push(errors *e, cJSON *a, cJSON *v)
{
    if (v == NULL || a == NULL || !cJSON_AddItemToArray(a, v)) {
        cJSON_Delete(v);
        e->oom = true;
    }
}

/* A number as Python prints an int, or a float. */
static void fmt_num(char *buf, size_t size, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.17g", v);
}

static void add_loc(errors *e, cJSON *loc, const where *w)
{
    if (w == NULL)
        return;
    add_loc(e, loc, w->up);
    push(e, loc, w->key ? cJSON_CreateString(w->key) : number((double)w->index));
}

/* Add an error: type, where, msg, the input it quotes, ctx (taken; NULL: none). */
static void add_error(errors *e, const char *type, const where *w, const char *msg, input in,
                      cJSON *ctx)
{
    cJSON *o = cJSON_CreateObject(), *loc = cJSON_CreateArray();

    if (e->list == NULL)
        e->list = cJSON_CreateArray();
    if (o == NULL || loc == NULL || e->list == NULL) {
        e->oom = true;
        cJSON_Delete(o);
        cJSON_Delete(loc);
        cJSON_Delete(ctx);
        return;
    }
    add_loc(e, loc, w);
    put(e, o, "type", cJSON_CreateString(type));
    put(e, o, "loc", loc);
    put(e, o, "msg", cJSON_CreateString(msg));
    put(e, o, "input",
        in.text   ? cJSON_CreateString(in.text)
        : in.json ? cJSON_Duplicate(in.json, 1)
                  : cJSON_CreateNull());
    if (ctx)
        put(e, o, "ctx", ctx);
    push(e, e->list, o);
}

/* {k: v} for an error's ctx; NULL (v freed, out of memory noted) if it cannot be made. */
static cJSON *ctx1(errors *e, const char *k, cJSON *v)
{
    cJSON *c = cJSON_CreateObject();

    put(e, c, k, v);
    if (e->oom) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* The enum's allowed values, as pydantic lists them: 'a', 'b' or 'c'. */
static char *expected_repr(cn_req *req, const char *const *values)
{
    size_t n = 0, len = 1, k = 0;
    char *out;

    while (values && values[n])
        len += strlen(values[n++]) + 6;
    out = cn_req_alloc(req, len);
    if (out == NULL)
        return NULL;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
        k += (size_t)snprintf(out + k, len - k, "%s'%s'", sep, values[i]);
    }
    return out;
}

/* A number against its bounds, in pydantic's order: le, lt, ge, gt. */
static bool bounds_ok(errors *e, const cn_field *f, double v, input in, const where *w)
{
    static const struct {
        const char *type, *key, *words;
        size_t off;
        int sense; /* v must be: -1 <=, -2 <, 1 >=, 2 > */
    } checks[] = {
        {"less_than_equal", "le", "less than or equal to", offsetof(cn_field, le), -1},
        {"less_than", "lt", "less than", offsetof(cn_field, lt), -2},
        {"greater_than_equal", "ge", "greater than or equal to", offsetof(cn_field, ge), 1},
        {"greater_than", "gt", "greater than", offsetof(cn_field, gt), 2},
    };

    for (size_t i = 0; i < CN__ARRAY_SIZE(checks); i++) {
        const double *b = *(const double *const *)((const char *)f + checks[i].off);
        bool ok;
        char msg[96], num[40];
        if (b == NULL)
            continue;
        switch (checks[i].sense) {
        case -1:
            ok = v <= *b;
            break;
        case -2:
            ok = v < *b;
            break;
        case 1:
            ok = v >= *b;
            break;
        default:
            ok = v > *b;
            break;
        }
        if (ok)
            continue;
        fmt_num(num, sizeof num, *b);
        snprintf(msg, sizeof msg, "Input should be %s %s", checks[i].words, num);
        add_error(e, checks[i].type, w, msg, in, ctx1(e, checks[i].key, number(*b)));
        return false;
    }
    return true;
}

static const decl *decl_of(const cn_req *req)
{
    return req->match.route ? req->match.route->decl : NULL;
}

static const regex_t *pattern_of(const decl *d, const cn_field *f)
{
    for (unsigned i = 0; d && i < d->npatterns; i++)
        if (d->patterns[i].field == f)
            return &d->patterns[i].re;
    return NULL;
}

/* A string's constraints, in pydantic's order: min_length, max_length, pattern. */
static bool string_ok(errors *e, const decl *d, const cn_field *f, const char *s, input in,
                      const where *w)
{
    size_t n = f->min_length || f->max_length ? char_count(s, strlen(s)) : 0;
    const regex_t *re;
    char msg[160];

    if (f->min_length && n < f->min_length) {
        snprintf(msg, sizeof msg, "String should have at least %zu character%s", f->min_length,
                 f->min_length == 1 ? "" : "s");
        add_error(e, "string_too_short", w, msg, in,
                  ctx1(e, "min_length", number((double)f->min_length)));
        return false;
    }
    if (f->max_length && n > f->max_length) {
        snprintf(msg, sizeof msg, "String should have at most %zu character%s", f->max_length,
                 f->max_length == 1 ? "" : "s");
        add_error(e, "string_too_long", w, msg, in,
                  ctx1(e, "max_length", number((double)f->max_length)));
        return false;
    }
    if (f->pattern && (re = pattern_of(d, f)) != NULL && regexec(re, s, 0, NULL, 0) != 0) {
        char *m = cn_req_sprintf(e->req, "String should match pattern '%s'", f->pattern);
        add_error(e, "string_pattern_mismatch", w, m ? m : "String should match pattern", in,
                  ctx1(e, "pattern", cJSON_CreateString(f->pattern)));
        return false;
    }
    return true;
}

static bool enum_ok(errors *e, const cn_field *f, const char *s, input in, const where *w)
{
    char *exp, *msg;

    for (size_t i = 0; f->values && f->values[i]; i++)
        if (s && strcmp(f->values[i], s) == 0)
            return true;
    exp = expected_repr(e->req, f->values);
    msg = exp ? cn_req_sprintf(e->req, "Input should be %s", exp) : NULL;
    add_error(e, "enum", w, msg ? msg : "Input should be one of the values", in,
              ctx1(e, "expected", cJSON_CreateString(exp ? exp : "")));
    return false;
}

static const char *const int_parsing_msg =
    "Input should be a valid integer, unable to parse string as an integer";
static const char *const int_size_msg =
    "Unable to parse input string as an integer, exceeded maximum size";

/* ---- parameters: strings in, typed values out ---- */

/* Check one parameter's text; fill *v. The input errors quote is the text. */
static bool check_param_text(errors *e, const decl *d, const cn_field *f, const char *text,
                             const where *w, value *v)
{
    const char *type;

    v->present = true;
    v->s = text;
    switch (f->type) {
    case CN_INT:
        if (parse_int(text, &v->i, &type) < 0) {
            add_error(e, type, w, strcmp(type, "int_parsing") == 0 ? int_parsing_msg : int_size_msg,
                      TEXT(text), NULL);
            return false;
        }
        v->d = (double)v->i;
        return bounds_ok(e, f, v->d, TEXT(text), w);
    case CN_FLOAT:
        if (parse_float(text, &v->d) < 0) {
            add_error(e, "float_parsing", w,
                      "Input should be a valid number, unable to parse string as a number",
                      TEXT(text), NULL);
            return false;
        }
        return bounds_ok(e, f, v->d, TEXT(text), w);
    case CN_BOOL:
        if (parse_bool(text, &v->b) < 0) {
            add_error(e, "bool_parsing", w,
                      "Input should be a valid boolean, unable to interpret input", TEXT(text),
                      NULL);
            return false;
        }
        v->i = v->b;
        return true;
    case CN_ENUM:
        return enum_ok(e, f, text, TEXT(text), w);
    default:
        return string_ok(e, d, f, text, TEXT(text), w);
    }
}

const char *cn__in_name(cn_in in)
{
    switch (in) {
    case CN_PATH:
        return "path";
    case CN_HEADER:
        return "header";
    case CN_COOKIE:
        return "cookie";
    default:
        return "query";
    }
}

static const char *param_text(cn_req *req, const cn_field *f)
{
    switch (f->in) {
    case CN_PATH:
        return cn_req_param(req, f->name);
    case CN_HEADER:
        return cn_req_header(req, f->name);
    case CN_COOKIE:
        return cn_req_cookie(req, f->name); /* cookies.c */
    default:
        return cn_req_query(req, f->name);
    }
}

static void check_params(errors *e, const decl *d, value *vals)
{
    for (unsigned i = 0; i < d->nparams; i++) {
        const cn_field *f = d->params[i];
        const char *text = param_text(e->req, f);
        where root = {.key = cn__in_name(f->in)}, w = {.up = &root, .key = f->name};
        if (text == NULL && (f->required || f->in == CN_PATH)) {
            add_error(e, "missing", &w, "Field required", (input){0}, NULL);
            continue;
        }
        if (text == NULL && f->dflt == NULL)
            continue; /* optional, no default: absent */
        /* a default is checked like a value (it was at registration) */
        check_param_text(e, d, f, text ? text : f->dflt, &w, &vals[i]);
    }
}

/* ---- the body: JSON in, a validated tree out ---- */

static cJSON *check_value(errors *e, const decl *d, const cn_field *f, const cJSON *in,
                          const where *w);

/* A default as a JSON value of f's type (NULL when it has none). */
static cJSON *default_value(const cn_field *f)
{
    int64_t i;
    double x;
    bool b;
    const char *type;

    if (f->dflt == NULL)
        return NULL;
    switch (f->type) {
    case CN_INT:
        return parse_int(f->dflt, &i, &type) == 0 ? number((double)i) : NULL;
    case CN_FLOAT:
        return parse_float(f->dflt, &x) == 0 ? number(x) : NULL;
    case CN_BOOL:
        return parse_bool(f->dflt, &b) == 0 ? cJSON_CreateBool(b) : NULL;
    case CN_OBJECT:
    case CN_ARRAY:
        return cJSON_Parse(f->dflt);
    default:
        return cJSON_CreateString(f->dflt);
    }
}

static cJSON *check_object(errors *e, const decl *d, const cn_field *f, const cJSON *in,
                           const where *w)
{
    cJSON *out;
    const cJSON *it;
    bool bad = false;

    if (!cJSON_IsObject(in)) {
        add_error(e, "model_attributes_type", w,
                  "Input should be a valid dictionary or object to extract fields from", NODE(in),
                  NULL);
        return NULL;
    }
    out = made(e, cJSON_CreateObject());
    if (out == NULL)
        return NULL;
    for (const cn_field *k = f->fields; k && k->name; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, k->name);
        where kw = {.up = w, .key = k->name};
        cJSON *nv;
        if (v == NULL) {
            if (k->required) {
                add_error(e, "missing", &kw, "Field required", NODE(in), NULL);
                bad = true;
                continue;
            }
            /* the default was checked at registration: NULL is memory */
            nv = made(e, k->dflt ? default_value(k) : cJSON_CreateNull());
        } else {
            nv = check_value(e, d, k, v, &kw);
        }
        bad |= nv == NULL;
        if (nv)
            put(e, out, k->name, nv);
    }
    cJSON_ArrayForEach(it, in)
    {
        bool declared = false;
        for (const cn_field *k = f->fields; k && k->name && !declared; k++)
            declared = strcmp(k->name, it->string) == 0;
        if (declared || f->extra == CN_EXTRA_IGNORE)
            continue;
        if (f->extra == CN_EXTRA_FORBID) {
            where xw = {.up = w, .key = it->string};
            add_error(e, "extra_forbidden", &xw, "Extra inputs are not permitted", NODE(it), NULL);
            bad = true;
        } else {
            put(e, out, it->string, cJSON_Duplicate(it, 1));
        }
    }
    if (bad || e->oom) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

static cJSON *check_array(errors *e, const decl *d, const cn_field *f, const cJSON *in,
                          const where *w)
{
    cJSON *out;
    const cJSON *it;
    size_t n = 0;
    bool bad = false;
    char msg[128];

    if (!cJSON_IsArray(in)) {
        add_error(e, "list_type", w, "Input should be a valid list", NODE(in), NULL);
        return NULL;
    }
    out = made(e, cJSON_CreateArray());
    if (out == NULL)
        return NULL;
    cJSON_ArrayForEach(it, in)
    {
        where iw = {.up = w, .index = n};
        cJSON *nv =
            f->items ? check_value(e, d, f->items, it, &iw) : made(e, cJSON_Duplicate(it, 1));
        bad |= nv == NULL;
        if (nv)
            push(e, out, nv);
        n++;
    }
    if (bad || e->oom) {
        cJSON_Delete(out);
        return NULL;
    }
    if ((f->min_length && n < f->min_length) || (f->max_length && n > f->max_length)) {
        bool shrt = f->min_length && n < f->min_length;
        size_t lim = shrt ? f->min_length : f->max_length;
        cJSON *ctx = cJSON_CreateObject();
        snprintf(msg, sizeof msg, "List should have at %s %zu item%s after validation, not %zu",
                 shrt ? "least" : "most", lim, lim == 1 ? "" : "s", n);
        put(e, ctx, "field_type", cJSON_CreateString("List"));
        put(e, ctx, shrt ? "min_length" : "max_length", number((double)lim));
        put(e, ctx, "actual_length", number((double)n));
        if (e->oom) {
            cJSON_Delete(ctx);
            ctx = NULL;
        }
        add_error(e, shrt ? "too_short" : "too_long", w, msg, NODE(in), ctx);
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* pydantic's lax int from a Python value (what json.loads made). */
static cJSON *check_int(errors *e, const cn_field *f, const cJSON *in, const where *w)
{
    double v;
    int64_t i;
    const char *type;

    if (cJSON_IsBool(in)) {
        v = cJSON_IsTrue(in);
    } else if (cJSON_IsString(in)) {
        if (parse_int(in->valuestring, &i, &type) < 0) {
            add_error(e, type, w, strcmp(type, "int_parsing") == 0 ? int_parsing_msg : int_size_msg,
                      NODE(in), NULL);
            return NULL;
        }
        v = (double)i;
    } else if (cJSON_IsNumber(in)) {
        v = in->valuedouble;
        if (!isfinite(v)) {
            add_error(e, "finite_number", w, "Input should be a finite number", NODE(in), NULL);
            return NULL;
        }
        if (v != floor(v)) {
            add_error(e, "int_from_float", w,
                      "Input should be a valid integer, got a number with a fractional part",
                      NODE(in), NULL);
            return NULL;
        }
    } else {
        add_error(e, "int_type", w, "Input should be a valid integer", NODE(in), NULL);
        return NULL;
    }
    return bounds_ok(e, f, v, NODE(in), w) ? made(e, number(v)) : NULL;
}

static cJSON *check_float(errors *e, const cn_field *f, const cJSON *in, const where *w)
{
    double v;

    if (cJSON_IsNumber(in)) {
        v = in->valuedouble;
    } else if (cJSON_IsBool(in)) {
        v = cJSON_IsTrue(in);
    } else if (cJSON_IsString(in)) {
        if (parse_float(in->valuestring, &v) < 0) {
            add_error(e, "float_parsing", w,
                      "Input should be a valid number, unable to parse string as a number",
                      NODE(in), NULL);
            return NULL;
        }
    } else {
        add_error(e, "float_type", w, "Input should be a valid number", NODE(in), NULL);
        return NULL;
    }
    return bounds_ok(e, f, v, NODE(in), w) ? made(e, number(v)) : NULL;
}

static cJSON *check_bool(errors *e, const cJSON *in, const where *w)
{
    bool b;

    if (cJSON_IsBool(in))
        return made(e, cJSON_CreateBool(cJSON_IsTrue(in)));
    if (cJSON_IsString(in) && parse_bool(in->valuestring, &b) == 0)
        return made(e, cJSON_CreateBool(b));
    if (cJSON_IsNumber(in) && (in->valuedouble == 0 || in->valuedouble == 1))
        return made(e, cJSON_CreateBool(in->valuedouble == 1));
    if (cJSON_IsString(in) || (cJSON_IsNumber(in) && in->valuedouble == floor(in->valuedouble)))
        add_error(e, "bool_parsing", w,
                  "Input should be a valid boolean, unable to interpret input", NODE(in), NULL);
    else
        add_error(e, "bool_type", w, "Input should be a valid boolean", NODE(in), NULL);
    return NULL;
}

static cJSON *check_value(errors *e, const decl *d, const cn_field *f, const cJSON *in,
                          const where *w)
{
    if (cJSON_IsNull(in) && f->nullable)
        return made(e, cJSON_CreateNull());
    switch (f->type) {
    case CN_OBJECT:
        return check_object(e, d, f, in, w);
    case CN_ARRAY:
        return check_array(e, d, f, in, w);
    case CN_INT:
        return check_int(e, f, in, w);
    case CN_FLOAT:
        return check_float(e, f, in, w);
    case CN_BOOL:
        return check_bool(e, in, w);
    case CN_ENUM:
        return enum_ok(e, f, cJSON_IsString(in) ? in->valuestring : NULL, NODE(in), w)
                   ? made(e, cJSON_Duplicate(in, 1))
                   : NULL;
    default:
        if (!cJSON_IsString(in)) {
            add_error(e, "string_type", w, "Input should be a valid string", NODE(in), NULL);
            return NULL;
        }
        return string_ok(e, d, f, in->valuestring, NODE(in), w) ? made(e, cJSON_Duplicate(in, 1))
                                                                : NULL;
    }
}

/* FastAPI reads a body as JSON when it says so, or says nothing. */
static bool json_content_type(const cn_req *req)
{
    const char *ct = cn_req_header(req, "content-type");
    const char *semi, *slash;
    size_t n;

    if (ct == NULL)
        return true;
    semi = strchr(ct, ';');
    n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    slash = memchr(ct, '/', n);
    if (slash == NULL || (size_t)(slash - ct) != 11 || strncasecmp(ct, "application", 11) != 0)
        return false;
    return (n - 12 == 4 && strncasecmp(slash + 1, "json", 4) == 0) ||
           (n - 12 > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* Use out as the body the handler sees (cn_req_json). */
static void set_body(cn_req *req, cJSON *out)
{
    if (out) {
        cJSON_Delete(req->json);
        req->json = out;
    }
}

/*
 * The body: 0 (checked), 400 (what FastAPI answers 400: not UTF-8, or too
 * deep for Python's recursion), or errors added.
 */
static int check_body(errors *e, const decl *d)
{
    cn_req *req = e->req;
    const cn_field *f = d->body;
    where root = {.key = "body"};
    size_t pos;
    const char *msg;
    int rc;

    if (req->body_len == 0) {
        if (f->required)
            add_error(e, "missing", &root, "Field required", (input){0}, NULL);
        return 0;
    }
    if (!json_content_type(req)) {
        /* not JSON: the bytes themselves are what the model gets */
        cJSON *raw = made(e, cJSON_CreateStringReference(req->body));
        if (raw)
            set_body(req, check_value(e, d, f, raw, &root));
        cJSON_Delete(raw);
        return 0;
    }
    if (!cn__utf8_valid(req->body, req->body_len))
        return 400; /* Python cannot even decode it (FastAPI: 400) */
    rc = cn__json_check(req->body, req->body_len, &pos, &msg);
    if (rc == 2)
        return 400; /* nested past CN_JSON_MAX_DEPTH: Python's RecursionError, a 400 */
    if (rc) {
        /* Python's position and message; for what Python takes and Canteen
         * refuses (NaN, \u0000, a lone surrogate, 1e999), the same shape */
        where at = {.up = &root, .index = pos};
        add_error(e, "json_invalid", &at, "JSON decode error", NODE(&(cJSON){.type = cJSON_Object}),
                  ctx1(e, "error", cJSON_CreateString(msg)));
        return 0;
    }
    if (req->json == NULL && req->json_err == 0)
        req->json_err = cn__json_parse_checked(req->body, req->body_len, &req->json);
    if (req->json_err == CN_ENOMEM) {
        e->oom = true; /* the text was checked: cJSON ran out of memory, a 500 */
        return 0;
    }
    if (req->json == NULL) {
        where at = {.up = &root, .index = 0};
        add_error(e, "json_invalid", &at, "JSON decode error", NODE(&(cJSON){.type = cJSON_Object}),
                  ctx1(e, "error", cJSON_CreateString(cn_strerror(req->json_err))));
        return 0;
    }
    set_body(req, check_value(e, d, f, req->json, &root));
    return 0;
}

typedef struct body_job {
    errors *e;
    const decl *d;
    int rc;
} body_job;

static int body_work(void *arg)
{
    body_job *j = arg;

    j->rc = check_body(j->e, j->d);
    return 0;
}

/* check_body, on the pool for a big body: the parse and the model's walk
 * over it are the CPU a client's body makes the server spend. */
static int check_body_off_loop(errors *e, const decl *d)
{
    body_job j = {.e = e, .d = d};
    int rc;

    if (e->req->body_len >= CN__JSON_POOL_BYTES) {
        rc = cn__to_thread_cpu(body_work, &j);
        if (rc == 0)
            return j.rc;
        if (rc != CN_ENOTCORO)
            return rc;
    }
    return check_body(e, d);
}

int cn__validate(cn_req *req)
{
    const decl *d = decl_of(req);
    errors e = {.req = req};
    cJSON *body;
    value *vals;
    int rc;

    if (d == NULL)
        return 0;
    if (d->nparams) {
        vals = cn_req_alloc(req, d->nparams * sizeof(*vals));
        if (vals == NULL)
            return CN_ENOMEM;
        memset(vals, 0, d->nparams * sizeof(*vals));
        req->valid = vals;
        check_params(&e, d, vals);
    }
    rc = d->body ? check_body_off_loop(&e, d) : 0;
    if (rc == 400) {
        cJSON_Delete(e.list);
        return cn_res_raise(&req->res, 400, "There was an error parsing the body");
    }
    if (rc < 0) {
        cJSON_Delete(e.list); /* cancelled while the pool had it */
        return rc;
    }
    if (e.oom) {
        cJSON_Delete(e.list);
        return CN_ENOMEM;
    }
    if (e.list == NULL)
        return 0;
    body = cJSON_CreateObject();
    if (body == NULL) {
        cJSON_Delete(e.list);
        return CN_ENOMEM;
    }
    if (!cJSON_AddItemToObject(body, "detail", e.list)) {
        cJSON_Delete(e.list);
        cJSON_Delete(body);
        return CN_ENOMEM;
    }
    rc = cn_res_json(&req->res, 422, body);
    return rc < 0 ? rc : CN_EHTTP;
}

/* ---- the getters ---- */

static const value *find_value(const cn_req *req, const char *name)
{
    const decl *d = decl_of(req);

    if (d == NULL || req->valid == NULL || name == NULL)
        return NULL;
    for (unsigned i = 0; i < d->nparams; i++)
        if (strcmp(d->params[i]->name, name) == 0)
            return req->valid[i].present ? &req->valid[i] : NULL;
    return NULL;
}

const char *cn_req_str(const cn_req *req, const char *name)
{
    const value *v = req ? find_value(req, name) : NULL;
    return v ? v->s : NULL;
}

int64_t cn_req_int(const cn_req *req, const char *name)
{
    const value *v = req ? find_value(req, name) : NULL;
    return v ? v->i : 0;
}

double cn_req_float(const cn_req *req, const char *name)
{
    const value *v = req ? find_value(req, name) : NULL;
    return v ? v->d : 0.0;
}

int cn_req_bool(const cn_req *req, const char *name)
{
    const value *v = req ? find_value(req, name) : NULL;
    return v ? v->b : 0;
}

int cn_req_has(const cn_req *req, const char *name)
{
    return req && find_value(req, name) != NULL;
}

unsigned cn__decl_params(const struct cn__route *rt, const cn_field *const **out)
{
    const decl *d = rt->decl;

    *out = d ? d->params : NULL;
    return d ? d->nparams : 0;
}

/* ---- preparing a route's declarations ---- */

static int compile_patterns(decl *d, const cn_field *f, int depth)
{
    if (f == NULL || depth > 32)
        return depth > 32 ? CN_EINVAL : 0;
    if (f->type < CN_STR || f->type > CN_ARRAY)
        return CN_EINVAL;
    if (f->type == CN_ENUM && (f->values == NULL || f->values[0] == NULL))
        return CN_EINVAL;
    if (f->pattern) {
        pattern *p = realloc(d->patterns, (d->npatterns + 1) * sizeof(*p));
        if (p == NULL)
            return CN_ENOMEM;
        d->patterns = p;
        if (regcomp(&p[d->npatterns].re, f->pattern, REG_EXTENDED | REG_NOSUB) != 0)
            return CN_EINVAL;
        p[d->npatterns++].field = f;
    }
    if (f->dflt) {
        cJSON *v = default_value(f);
        bool ok = v != NULL;
        cJSON_Delete(v);
        if (!ok)
            return CN_EINVAL;
    }
    if (f->type == CN_OBJECT)
        for (const cn_field *k = f->fields; k && k->name; k++) {
            int rc = compile_patterns(d, k, depth + 1);
            if (rc < 0)
                return rc;
        }
    if (f->type == CN_ARRAY)
        return compile_patterns(d, f->items, depth + 1);
    return 0;
}

void cn__decl_free(struct cn__route *rt)
{
    decl *d = rt->decl;

    if (d == NULL)
        return;
    for (unsigned i = 0; i < d->npatterns; i++)
        regfree(&d->patterns[i].re);
    free(d->patterns);
    free(d->params);
    free(d->implicit);
    free(d);
    rt->decl = NULL;
}

int cn__decl_prepare(struct cn__route *rt)
{
    const cn_field *declared = rt->opts.params;
    unsigned ndecl = 0, n = 0;
    decl *d;
    int rc = 0;

    for (const cn_field *f = declared; f && f->name; f++)
        ndecl++;
    for (const cn_field *f = rt->query; f && f->name; f++)
        ndecl++;
    if (ndecl == 0 && rt->opts.body == NULL && rt->nparams == 0)
        return 0;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return CN_ENOMEM;
    rt->decl = d;
    d->params = calloc(ndecl + rt->nparams + 1, sizeof(*d->params));
    d->implicit = calloc(rt->nparams + 1, sizeof(*d->implicit));
    if (d->params == NULL || d->implicit == NULL) {
        cn__decl_free(rt);
        return CN_ENOMEM;
    }
    /* path parameters first, in the path's order */
    for (unsigned i = 0; i < rt->nparams; i++) {
        const cn_field *f = NULL;
        for (const cn_field *k = declared; k && k->name; k++)
            if (k->in == CN_PATH && strcmp(k->name, rt->param_names[i]) == 0)
                f = k;
        if (f && rt->param_types[i] == CN__PARAM_INT && f->type != CN_INT)
            rc = CN_EBADPATTERN;
        if (f == NULL) {
            cn_field *imp = &d->implicit[i];
            imp->name = rt->param_names[i];
            imp->in = CN_PATH;
            imp->required = 1;
            imp->type = rt->param_types[i] == CN__PARAM_INT ? CN_INT : CN_STR;
            f = imp;
        }
        d->params[n++] = f;
    }
    /* declared path parameters the path does not have */
    for (const cn_field *k = declared; k && k->name; k++) {
        bool found = false;
        for (unsigned i = 0; i < rt->nparams && k->in == CN_PATH; i++)
            found |= strcmp(k->name, rt->param_names[i]) == 0;
        if (k->in == CN_PATH && !found)
            rc = CN_EBADPATTERN;
    }
    for (cn_in in = CN_QUERY; in <= CN_COOKIE; in++) {
        if (in == CN_PATH)
            continue;
        /* the spec's "?name:type=default" shorthand first, unless declared */
        for (const cn_field *k = rt->query; in == CN_QUERY && k && k->name; k++) {
            bool declared_too = false;
            for (const cn_field *x = declared; x && x->name; x++)
                declared_too |= x->in == CN_QUERY && strcmp(x->name, k->name) == 0;
            if (!declared_too)
                d->params[n++] = k;
        }
        for (const cn_field *k = declared; k && k->name; k++)
            if (k->in == in)
                d->params[n++] = k;
    }
    d->nparams = n;
    d->body = rt->opts.body;
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        if (d->params[i]->type == CN_OBJECT || d->params[i]->type == CN_ARRAY)
            rc = CN_EINVAL; /* parameters are scalars */
        else
            rc = compile_patterns(d, d->params[i], 0);
    }
    if (rc == 0 && d->body)
        rc = compile_patterns(d, d->body, 0);
    if (rc < 0)
        cn__decl_free(rt);
    return rc;
}
