/*
 * forwarded.h -- who the client is: the peer of the connection, or, when
 * that peer is a trusted proxy (cn_config.forwarded_allow_ips), the address
 * it names in Forwarded (RFC 7239) or X-Forwarded-For.
 */
#ifndef CN_FORWARDED_H
#define CN_FORWARDED_H

#include <stdbool.h>
#include <stdint.h>

#include "canteen.h"

/* An IP address and port, compactly (what a request keeps of its peer). */
typedef struct cn__addr {
    uint8_t family; /* 0 (unknown), 4 or 6 */
    uint16_t port;
    uint8_t ip[16]; /* network order; IPv4 in the first 4 bytes */
} cn__addr;

/* A sockaddr (AF_INET, AF_INET6; an IPv4-mapped IPv6 address becomes IPv4). */
struct sockaddr;
void cn__addr_from_sockaddr(cn__addr *a, const struct sockaddr *sa);

/* The address as text ("127.0.0.1", "::1") into buf (at least 46 bytes). */
void cn__addr_format(const cn__addr *a, char *buf, size_t size);

/* The set of trusted proxies: addresses and CIDR ranges, or everyone. */
typedef struct cn__trust cn__trust;

/*
 * Parse uvicorn's --forwarded-allow-ips list: comma-separated IPv4/IPv6
 * addresses or CIDR ranges ("127.0.0.1, 10.0.0.0/8, ::1"), or "*" for
 * every peer. NULL or "" trusts nobody (*out = NULL). 0, CN_EINVAL (then
 * *bad points at the entry that does not parse, within spec), CN_ENOMEM.
 */
int cn__trust_parse(const char *spec, cn__trust **out, const char **bad);
void cn__trust_free(cn__trust *t);
bool cn__trust_has(const cn__trust *t, const cn__addr *a);

/*
 * The client of a request whose peer is `peer`: when the peer is trusted
 * and the request carries Forwarded (its for= values) or, failing that,
 * X-Forwarded-For, the hops are read from the right (the nearest proxy
 * first), trusted ones skipped, and the first untrusted one is the client
 * (uvicorn's rule); when every hop is trusted, the farthest. A hop that is
 * not an IP literal stops the walk there: the previous hop (or the peer)
 * is the client. The result is always an IP address.
 */
void cn__client_resolve(const cn__trust *t, const cn_req *req, const cn__addr *peer, cn__addr *out);

#endif
