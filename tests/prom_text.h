/*
 * prom_text.h -- a strict reader of Prometheus' text exposition format
 * (version 0.0.4), for the tests of Canteen's /metrics. It fails the
 * running cmocka test (or pt_check says why), naming the line, on anything
 * the format does not allow: a metric or label name outside Prometheus' regexes, a value that
 * does not parse as a float, a sample without a # TYPE line for its
 * metric before it, a second # TYPE or # HELP for one metric, a metric's
 * lines split into two groups, the same series twice, a missing final
 * newline.
 */
#ifndef CANTEEN_TEST_PROM_TEXT_H
#define CANTEEN_TEST_PROM_TEXT_H

#include <stddef.h>

typedef struct pt_sample {
    char *name;   /* "canteen_responses_total" */
    char *labels; /* `class="2xx"` as written between the braces, "" if none */
    char *type;   /* its metric's # TYPE: "counter", "gauge", ... */
    char *help;   /* its metric's # HELP text, "" if none */
    double value;
} pt_sample;

typedef struct pt_text {
    pt_sample *samples;
    size_t n;
} pt_text;

/* Parse and check `text`; fails the test on the first problem. Free with
 * pt_free. */
pt_text pt_parse(const char *text);

/* The same without failing: 0 and *out filled, or -1 with the first problem
 * (naming its line) in why and *out empty. */
int pt_check(const char *text, pt_text *out, char *why, size_t whylen);
void pt_free(pt_text *t);

/* The sample with this name and labels ("" for none), or NULL. */
const pt_sample *pt_find(const pt_text *t, const char *name, const char *labels);

/* Its value; fails the test when there is no such sample. */
double pt_value(const pt_text *t, const char *name, const char *labels);

#endif
