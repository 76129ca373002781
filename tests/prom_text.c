/* prom_text.c -- see prom_text.h. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prom_text.h"

typedef struct family {
    char *name, *type, *help;
    bool has_samples;
    bool closed; /* another metric's lines came after this one's */
} family;

typedef struct parser {
    char *line; /* the line being read, for messages */
    size_t lineno;
    family *fams;
    size_t nfams;
    size_t current; /* index of the metric of the previous line; SIZE_MAX: none */
    pt_text out;
    jmp_buf fail;
    char why[512];
} parser;

/* Stop reading: say why, naming the line, and jump back to pt_check. */
static void reject(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void reject(parser *p, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->why, sizeof p->why, "line %zu \"%s\": ", p->lineno, p->line ? p->line : "");

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof p->why)
        vsnprintf(p->why + n, sizeof p->why - (size_t)n, fmt, ap);
    va_end(ap);
    longjmp(p->fail, 1);
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    assert_non_null(d);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of a metric name at s ([a-zA-Z_:][a-zA-Z0-9_:]*), 0 if none. */
static size_t metric_name_len(const char *s)
{
    size_t i = 0;

    if (!is_alpha_(s[0]) && s[0] != ':')
        return 0;
    while (is_alpha_(s[i]) || is_digit(s[i]) || s[i] == ':')
        i++;
    return i;
}

/* Length of a label name at s ([a-zA-Z_][a-zA-Z0-9_]*), 0 if none. */
static size_t label_name_len(const char *s)
{
    size_t i = 0;

    if (!is_alpha_(s[0]))
        return 0;
    while (is_alpha_(s[i]) || is_digit(s[i]))
        i++;
    return i;
}

static family *find_family(parser *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->nfams; i++)
        if (strlen(p->fams[i].name) == len && memcmp(p->fams[i].name, name, len) == 0)
            return &p->fams[i];
    return NULL;
}

static family *get_family(parser *p, const char *name, size_t len)
{
    family *f = find_family(p, name, len);

    if (f)
        return f;
    p->fams = realloc(p->fams, (p->nfams + 1) * sizeof(*p->fams));
    assert_non_null(p->fams);
    f = &p->fams[p->nfams++];
    memset(f, 0, sizeof(*f));
    f->name = dupn(name, len);
    return f;
}

/* The lines of one metric form one group: switching back to one is an error. */
static void enter_family(parser *p, family *f)
{
    size_t i = (size_t)(f - p->fams);

    if (p->current == i)
        return;
    if (f->closed)
        reject(p, "the lines of %s are split into two groups", f->name);
    if (p->current != SIZE_MAX)
        p->fams[p->current].closed = true;
    p->current = i;
}

/* "# HELP name text" or "# TYPE name type"; other comments are ignored. */
static void read_comment(parser *p, const char *s, size_t len)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    bool help = len > 7 && memcmp(s, "# HELP ", 7) == 0;
    bool type = len > 7 && memcmp(s, "# TYPE ", 7) == 0;
    const char *name = s + 7, *rest;
    size_t nlen, rlen;
    family *f;

    if (!help && !type)
        return;
    nlen = metric_name_len(name);
    if (nlen == 0 || name[nlen] != ' ')
        reject(p, "%s line without a valid metric name", help ? "HELP" : "TYPE");
    rest = name + nlen + 1;
    rlen = len - (size_t)(rest - s);
    f = get_family(p, name, nlen);
    enter_family(p, f);
    if (help) {
        if (f->help)
            reject(p, "a second HELP line for %s", f->name);
        for (size_t i = 0; i < rlen; i++)
            if (rest[i] == '\\' && (i + 1 == rlen || (rest[i + 1] != '\\' && rest[i + 1] != 'n')))
                reject(p, "HELP of %s: a backslash that escapes neither \\ nor n", f->name);
            else if (rest[i] == '\\')
                i++;
        f->help = dupn(rest, rlen);
        return;
    }
    if (f->type)
        reject(p, "a second TYPE line for %s", f->name);
    if (f->has_samples)
        reject(p, "TYPE of %s after its first sample", f->name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i]) == rlen && memcmp(rest, types[i], rlen) == 0)
            f->type = dupn(rest, rlen);
    if (f->type == NULL)
        reject(p, "TYPE of %s is not a known type", f->name);
}

/* The metric a sample belongs to: its own name, or a summary's or histogram's
 * name for the _sum, _count and _bucket series. */
static family *family_of(parser *p, const char *name, size_t len)
{
    static const char *const suffixes[] = {"_sum", "_count", "_bucket"};
    family *f = find_family(p, name, len);

    if (f && f->type)
        return f;
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && memcmp(name + len - sl, suffixes[i], sl) == 0) {
            f = find_family(p, name, len - sl);
            if (f && f->type &&
                (strcmp(f->type, "summary") == 0 || strcmp(f->type, "histogram") == 0))
                return f;
        }
    }
    reject(p, "sample %.*s has no TYPE line before it", (int)len, name);
}

/* `{name="value",...}` at s; returns its length, braces included. */
static size_t read_labels(parser *p, const char *s)
{
    size_t i = 1;

    while (s[i] != '}') {
        size_t n = label_name_len(s + i);
        if (n == 0)
            reject(p, "a label name outside [a-zA-Z_][a-zA-Z0-9_]*");
        if (n >= 2 && s[i] == '_' && s[i + 1] == '_')
            reject(p, "label names starting with __ are reserved");
        i += n;
        if (s[i] != '=' || s[i + 1] != '"')
            reject(p, "a label without =\"value\"");
        for (i += 2; s[i] != '"'; i++) {
            if (s[i] == 0 || s[i] == '\n')
                reject(p, "an unterminated label value");
            if (s[i] == '\\') {
                if (s[i + 1] != '\\' && s[i + 1] != '"' && s[i + 1] != 'n')
                    reject(p, "a label value with an invalid escape");
                i++;
            }
        }
        i++;
        if (s[i] == ',')
            i++;
        else if (s[i] != '}')
            reject(p, "labels not separated by commas");
    }
    return i + 1;
}

/* A float as Go's ParseFloat reads it, or NaN/+Inf/-Inf. */
static double read_value(parser *p, const char *s, size_t len)
{
    char buf[64], *end;
    double v;

    if (len == 0 || len >= sizeof buf)
        reject(p, "a missing or overlong value");
    if (len == 3 && memcmp(s, "NaN", 3) == 0)
        return NAN;
    if (len == 4 && (memcmp(s, "+Inf", 4) == 0 || memcmp(s, "-Inf", 4) == 0))
        return s[0] == '-' ? -INFINITY : INFINITY;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]) && !strchr(".eE+-", s[i]))
            reject(p, "value '%.*s' is not a float", (int)len, s);
    memcpy(buf, s, len);
    buf[len] = 0;
    v = strtod(buf, &end);
    if (end != buf + len)
        reject(p, "value '%s' is not a float", buf);
    return v;
}

/* A series already read with this name and labels (given as spans). */
static bool seen(const parser *p, const char *name, size_t nlen, const char *labels, size_t llen)
{
    for (size_t i = 0; i < p->out.n; i++) {
        const pt_sample *x = &p->out.samples[i];
        if (strlen(x->name) == nlen && memcmp(x->name, name, nlen) == 0 &&
            strlen(x->labels) == llen && memcmp(x->labels, labels, llen) == 0)
            return true;
    }
    return false;
}

/* "name{labels} value [timestamp]": checked in full, then kept. */
static void read_sample(parser *p, const char *s, size_t len)
{
    size_t nlen = metric_name_len(s), i, llen = 0, vstart, vend;
    const char *labels = "";
    pt_sample *out;
    family *f;
    double value;

    if (nlen == 0)
        reject(p, "a sample whose name is outside [a-zA-Z_:][a-zA-Z0-9_:]*");
    i = nlen;
    if (s[i] == '{') {
        llen = read_labels(p, s + i);
        labels = s + i + 1;
        i += llen;
        llen -= 2;
    }
    if (s[i] != ' ')
        reject(p, "no space between the series and its value");
    while (i < len && s[i] == ' ')
        i++;
    vstart = i;
    while (i < len && s[i] != ' ')
        i++;
    vend = i;
    /* an optional timestamp: an integer */
    while (i < len && s[i] == ' ')
        i++;
    if (i < len) {
        size_t t = i + (s[i] == '-');
        if (t == len)
            reject(p, "a timestamp that is not an integer");
        for (; t < len; t++)
            if (!is_digit(s[t]))
                reject(p, "a timestamp that is not an integer");
    }
    value = read_value(p, s + vstart, vend - vstart);
    f = family_of(p, s, nlen);
    enter_family(p, f);
    if (seen(p, s, nlen, labels, llen))
        reject(p, "the series %.*s{%.*s} appears twice", (int)nlen, s, (int)llen, labels);
    f->has_samples = true;
    p->out.samples = realloc(p->out.samples, (p->out.n + 1) * sizeof(pt_sample));
    assert_non_null(p->out.samples);
    out = &p->out.samples[p->out.n++];
    out->value = value;
    out->name = dupn(s, nlen);
    out->labels = dupn(labels, llen);
    out->type = dupn(f->type, strlen(f->type));
    out->help = f->help ? dupn(f->help, strlen(f->help)) : dupn("", 0);
}

static void read_all(parser *p, const char *text)
{
    const char *s = text;

    if (*text && text[strlen(text) - 1] != '\n')
        reject(p, "the text does not end with a line feed");
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = (size_t)(nl - s);

        free(p->line);
        p->line = dupn(s, len);
        p->lineno++;
        if (len > 0 && s[0] == '#')
            read_comment(p, s, len);
        else if (len > 0)
            read_sample(p, s, len);
        s = nl + 1;
    }
}

int pt_check(const char *text, pt_text *out, char *why, size_t whylen)
{
    parser p = {.current = SIZE_MAX};
    bool failed = setjmp(p.fail) != 0;

    /* p lives in memory (its address is taken), so a longjmp keeps it */
    if (!failed)
        read_all(&p, text);
    else
        snprintf(why, whylen, "%s", p.why);
    free(p.line);
    for (size_t i = 0; i < p.nfams; i++) {
        free(p.fams[i].name);
        free(p.fams[i].type);
        free(p.fams[i].help);
    }
    free(p.fams);
    if (failed)
        pt_free(&p.out);
    *out = p.out;
    return failed ? -1 : 0;
}

pt_text pt_parse(const char *text)
{
    pt_text t;
    char why[512];

    assert_non_null(text);
    if (pt_check(text, &t, why, sizeof why) < 0)
        fail_msg("not Prometheus text: %s", why);
    return t;
}

void pt_free(pt_text *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->samples[i].name);
        free(t->samples[i].labels);
        free(t->samples[i].type);
        free(t->samples[i].help);
    }
    free(t->samples);
    t->samples = NULL;
    t->n = 0;
}

const pt_sample *pt_find(const pt_text *t, const char *name, const char *labels)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->samples[i].name, name) == 0 && strcmp(t->samples[i].labels, labels) == 0)
            return &t->samples[i];
    return NULL;
}

double pt_value(const pt_text *t, const char *name, const char *labels)
{
    const pt_sample *s = pt_find(t, name, labels);

    if (s == NULL)
        fail_msg("no sample %s{%s}", name, labels);
    return s->value;
}
