/*
 * batteries.c -- small helpers the shipped middleware, static files and
 * cookies share: HTTP dates, comma-separated header lists, Vary.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "batteries.h"
#include "common.h"
#include "req.h"

bool cn__parse_http_date(const char *s, time_t *out)
{
    /* IMF-fixdate, then the two obsolete forms a recipient must accept
     * (RFC 9110 5.6.7); the names are English whatever the locale says
     * only in the C locale, which a server keeps */
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};

    for (size_t i = 0; s && i < CN__ARRAY_SIZE(forms); i++) {
        struct tm tm;
        const char *end;
        memset(&tm, 0, sizeof tm);
        end = strptime(s, forms[i], &tm);
        if (end == NULL || *end != 0)
            continue;
        *out = timegm(&tm);
        return *out != (time_t)-1;
    }
    return false;
}

bool cn__list_has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);

    while (list && *list) {
        size_t k;
        while (*list == ' ' || *list == '\t' || *list == ',')
            list++;
        k = strcspn(list, ", \t");
        if (k == n && strncasecmp(list, tok, n) == 0)
            return true;
        list += k;
    }
    return false;
}

int cn__res_add_vary(cn_res *res, const char *value)
{
    const char *v;
    char *both;

    if (res->head_sent)
        return CN_ERESPONDED;
    v = cn_res_get_header(res, "vary");
    if (v == NULL)
        return cn__res_header_trusted(res, "Vary", 4, value, strlen(value));
    if (cn__list_has_token(v, value) || cn__list_has_token(v, "*"))
        return 0;
    both = cn_req_sprintf(cn__res_req(res), "%s, %s", v, value);
    if (both == NULL)
        return CN_ENOMEM;
    cn_res_remove_header(res, "vary");
    return cn__res_header_trusted(res, "Vary", 4, both, strlen(both));
}

int cn__res_redirect(cn_res *res, int status, const char *location)
{
    int rc = cn_res_header(res, "Location", location);

    if (rc == 0)
        rc = cn_res_bytes(res, status, "", 0, NULL);
    if (rc == 0)
        res->content_type = NULL; /* nothing to type */
    return rc;
}
