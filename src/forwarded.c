/*
 * forwarded.c -- the client's address behind trusted proxies (uvicorn's
 * --forwarded-allow-ips and ProxyHeadersMiddleware, with RFC 7239's
 * Forwarded as well as X-Forwarded-For).
 *
 * Only a trusted peer's headers are read: anyone else could write any
 * address there. The hops are walked from the right, the proxy nearest to
 * us first, skipping the proxies we trust; the first one we do not trust
 * is the client. Every address that comes out is an IP literal parsed by
 * inet_pton, so nothing a client sends reaches a log line unparsed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "app.h"
#include "common.h"
#include "forwarded.h"
#include "req.h"

typedef struct range {
    cn__addr net;
    unsigned bits; /* prefix length: 32 or 128 for one address */
} range;

struct cn__trust {
    bool everyone;
    unsigned n;
    range r[];
};

void cn__addr_from_sockaddr(cn__addr *a, const struct sockaddr *sa)
{
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        a->family = 4;
        a->port = ntohs(in->sin_port);
        memcpy(a->ip, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        a->port = ntohs(in6->sin6_port);
        if (memcmp(&in6->sin6_addr, mapped, sizeof mapped) == 0) {
            a->family = 4;
            memcpy(a->ip, (const uint8_t *)&in6->sin6_addr + 12, 4);
        } else {
            a->family = 6;
            memcpy(a->ip, &in6->sin6_addr, 16);
        }
    }
}

void cn__addr_format(const cn__addr *a, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = 0;
    if (a->family == 4)
        inet_ntop(AF_INET, a->ip, buf, (socklen_t)size);
    else if (a->family == 6)
        inet_ntop(AF_INET6, a->ip, buf, (socklen_t)size);
}

/* An IP literal of n bytes (no brackets, no port) into *a. */
static bool parse_ip(const char *s, size_t n, cn__addr *a)
{
    char tmp[64];

    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, tmp, a->ip) == 1) {
        a->family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, tmp, a->ip) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a->ip, mapped, sizeof mapped) == 0) {
            memmove(a->ip, a->ip + 12, 4);
            memset(a->ip + 4, 0, 12);
            a->family = 4;
        } else {
            a->family = 6;
        }
        return true;
    }
    return false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

int cn__trust_parse(const char *spec, cn__trust **out, const char **bad)
{
    cn__trust *t;
    unsigned cap = 1;
    const char *p;

    *out = NULL;
    if (bad)
        *bad = NULL;
    if (spec == NULL)
        return 0;
    for (p = spec; *p; p++)
        cap += *p == ',';
    t = calloc(1, sizeof(*t) + cap * sizeof(range));
    if (t == NULL)
        return CN_ENOMEM;
    for (p = spec; *p;) {
        const char *end = strchr(p, ','), *item = p, *slash;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        range r;

        p += n + (end ? 1 : 0);
        trim(&item, &n);
        if (n == 0)
            continue;
        if (n == 1 && item[0] == '*') {
            t->everyone = true;
            continue;
        }
        slash = memchr(item, '/', n);
        if (!parse_ip(item, slash ? (size_t)(slash - item) : n, &r.net))
            goto invalid;
        r.bits = r.net.family == 4 ? 32 : 128;
        if (slash) {
            const char *d = slash + 1;
            unsigned bits = 0;
            if (d == item + n)
                goto invalid;
            for (; d < item + n; d++) {
                if (*d < '0' || *d > '9' || bits > 128)
                    goto invalid;
                bits = bits * 10 + (unsigned)(*d - '0');
            }
            if (bits > r.bits)
                goto invalid;
            r.bits = bits;
        }
        t->r[t->n++] = r;
        continue;
    invalid:
        if (bad)
            *bad = item;
        free(t);
        return CN_EINVAL;
    }
    if (!t->everyone && t->n == 0) {
        free(t);
        return 0;
    }
    *out = t;
    return 0;
}

void cn__trust_free(cn__trust *t)
{
    free(t);
}

static bool in_range(const range *r, const cn__addr *a)
{
    unsigned full = r->bits / 8, rest = r->bits % 8;

    if (r->net.family != a->family)
        return false;
    if (memcmp(r->net.ip, a->ip, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((r->net.ip[full] & mask) != (a->ip[full] & mask))
            return false;
    }
    return true;
}

bool cn__trust_has(const cn__trust *t, const cn__addr *a)
{
    if (t == NULL || a->family == 0)
        return false;
    if (t->everyone)
        return true;
    for (unsigned i = 0; i < t->n; i++)
        if (in_range(&t->r[i], a))
            return true;
    return false;
}

/* The hops named by the proxies, farthest first; the last MAX_HOPS are kept. */
#define MAX_HOPS 32

typedef struct hops {
    cn__addr a[MAX_HOPS];
    bool ok[MAX_HOPS]; /* an IP literal (else "unknown", obfuscated, garbage) */
    unsigned n;        /* kept */
} hops;

static void hop_add(hops *h, bool ok, const cn__addr *a)
{
    if (h->n == MAX_HOPS) {
        memmove(h->a, h->a + 1, (MAX_HOPS - 1) * sizeof(h->a[0]));
        memmove(h->ok, h->ok + 1, (MAX_HOPS - 1) * sizeof(h->ok[0]));
        h->n--;
    }
    h->ok[h->n] = ok;
    if (ok)
        h->a[h->n] = *a;
    h->n++;
}

/* A node: ip, ip:port, [ipv6], [ipv6]:port (the port is kept if numeric). */
static bool parse_node(const char *s, size_t n, cn__addr *a)
{
    const char *port = NULL;
    size_t plen = 0;

    trim(&s, &n);
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return false;
        if ((size_t)(close - s) + 1 < n) {
            if (close[1] != ':')
                return false;
            port = close + 2;
            plen = n - (size_t)(port - s);
        }
        if (!parse_ip(s + 1, (size_t)(close - s - 1), a) || a->family != 6)
            return false;
    } else {
        const char *colon = memchr(s, ':', n);
        /* one colon: IPv4 with a port; more: a bare IPv6 address */
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)) == NULL) {
            port = colon + 1;
            plen = n - (size_t)(port - s);
            n = (size_t)(colon - s);
        }
        if (!parse_ip(s, n, a))
            return false;
    }
    if (port && plen > 0 && plen <= 5) {
        unsigned v = 0;
        size_t i;
        for (i = 0; i < plen && port[i] >= '0' && port[i] <= '9'; i++)
            v = v * 10 + (unsigned)(port[i] - '0');
        if (i == plen && v <= 65535)
            a->port = (uint16_t)v;
    }
    return true;
}

/* X-Forwarded-For: a, b, c */
static void read_xff(hops *h, const char *v, size_t n)
{
    while (n > 0) {
        const char *comma = memchr(v, ',', n);
        size_t len = comma ? (size_t)(comma - v) : n;
        cn__addr a;
        bool ok = parse_node(v, len, &a);

        hop_add(h, ok, &a);
        v += len;
        n -= len;
        if (comma) {
            v++;
            n--;
        }
    }
}

/*
 * Forwarded: for=a;proto=http, for="[2001:db8::1]:4711";by=x
 * Elements are separated by commas, pairs by semicolons; a value is a
 * token or a quoted string. One hop per element that has a for=.
 */
static void read_forwarded(hops *h, const char *v, size_t n)
{
    size_t i = 0;

    while (i < n) {
        bool have_for = false, ok = false;
        cn__addr a;

        memset(&a, 0, sizeof a);
        /* the pairs of one element */
        while (i < n && v[i] != ',') {
            size_t name = i, name_len, val, val_len;
            char vbuf[96];

            while (i < n && is_space(v[i]))
                i++;
            name = i;
            while (i < n && v[i] != '=' && v[i] != ';' && v[i] != ',')
                i++;
            name_len = i - name;
            while (name_len > 0 && is_space(v[name + name_len - 1]))
                name_len--;
            val = i;
            val_len = 0;
            if (i < n && v[i] == '=') {
                i++;
                if (i < n && v[i] == '"') {
                    size_t o = 0;
                    for (i++; i < n && v[i] != '"'; i++) {
                        if (v[i] == '\\' && i + 1 < n)
                            i++;
                        if (o < sizeof vbuf)
                            vbuf[o++] = v[i];
                    }
                    if (i < n)
                        i++; /* the closing quote */
                    val_len = o;
                    val = SIZE_MAX; /* in vbuf */
                } else {
                    val = i;
                    while (i < n && v[i] != ';' && v[i] != ',')
                        i++;
                    val_len = i - val;
                }
            }
            if (cn__ieq(v + name, name_len, "for")) {
                const char *val_p = val == SIZE_MAX ? vbuf : v + val;
                have_for = true;
                ok = parse_node(val_p, val_len, &a);
            }
            if (i < n && v[i] == ';')
                i++;
        }
        if (have_for)
            hop_add(h, ok, &a);
        if (i < n && v[i] == ',')
            i++;
    }
}

void cn__client_resolve(const cn__trust *t, const cn_req *req, const cn__addr *peer, cn__addr *out)
{
    hops h;
    bool forwarded = false;

    *out = *peer;
    if (!cn__trust_has(t, peer))
        return;
    h.n = 0;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const cn__hdr *hd = &req->headers[i];
        if (cn__ieq(hd->name, hd->nlen, "forwarded")) {
            if (!forwarded)
                h.n = 0; /* Forwarded, when present, is the one read */
            forwarded = true;
            read_forwarded(&h, hd->value, hd->vlen);
        } else if (!forwarded && cn__ieq(hd->name, hd->nlen, "x-forwarded-for")) {
            read_xff(&h, hd->value, hd->vlen);
        }
    }
    /* nearest first: skip the proxies we trust */
    for (unsigned i = h.n; i-- > 0;) {
        if (!h.ok[i])
            return; /* not an address: the hop before it is as far as we can see */
        *out = h.a[i];
        if (!cn__trust_has(t, &h.a[i]))
            return;
    }
}

/* ---- the request's view ---- */

static void resolve(cn_req *req)
{
    if (req->client_done)
        return;
    req->client_done = true;
    if (req->peer.family == 0)
        return;
    cn__client_resolve(cn__app_trust(req->app), req, &req->peer, &req->client);
}

const char *cn_req_client_host(cn_req *req)
{
    char text[64];

    if (req == NULL)
        return NULL;
    resolve(req);
    if (req->client.family == 0)
        return NULL;
    if (req->client_host == NULL) {
        cn__addr_format(&req->client, text, sizeof text);
        req->client_host = cn__arena_strndup(&req->arena, text, strlen(text));
    }
    return req->client_host;
}

int cn_req_client_port(cn_req *req)
{
    if (req == NULL)
        return 0;
    resolve(req);
    return req->client.family ? req->client.port : 0;
}
