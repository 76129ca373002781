/*
 * ascii.c -- byte-level text helpers every layer shares: case-insensitive
 * names, RFC 9110 tokens, decimal numbers, HTTP dates. Table-driven or
 * plain arithmetic: they run several times per request, and none may
 * depend on the locale or read the time zone file.
 */
#include <string.h>

#include "common.h"

/* ASCII lower case of each byte; bytes >= 0x80 map to themselves. */
static const unsigned char lower[256] = {
    0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,  16,  17,  18,
    19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,
    38,  39,  40,  41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  52,  53,  54,  55,  56,
    57,  58,  59,  60,  61,  62,  63,  64,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 91,  92,  93,  94,
    95,  96,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132,
    133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151,
    152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170,
    171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189,
    190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208,
    209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227,
    228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246,
    247, 248, 249, 250, 251, 252, 253, 254, 255,
};

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~", digits and letters. */
static const unsigned char tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

bool cn__ieq(const char *a, size_t alen, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

    for (size_t i = 0; i < alen; i++)
        if (y[i] == 0 || lower[x[i]] != lower[y[i]])
            return false;
    return y[alen] == 0;
}

bool cn__is_token(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!tchar[p[i]])
            return false;
    return true;
}

size_t cn__utoa(char out[CN__UTOA_MAX], uint64_t v)
{
    char tmp[CN__UTOA_MAX];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return n;
}

/* Civil date of a day count since 1970-01-01 (proleptic Gregorian; the
 * era arithmetic of Howard Hinnant's "chrono-compatible low-level date
 * algorithms"). */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;

    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void cn__utc(time_t t, cn__tm *tm)
{
    int64_t s = (int64_t)t, days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
    unsigned secs = (unsigned)(s - days * 86400);

    civil(days, &tm->year, &tm->mon, &tm->mday);
    tm->wday = (unsigned)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    tm->hour = secs / 3600;
    tm->min = secs / 60 % 60;
    tm->sec = secs % 60;
}

static char *two(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

void cn__imf_date(time_t t, char buf[32])
{
    static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    cn__tm tm;
    char *p = buf;

    cn__utc(t, &tm);
    if (tm.year < 0 || tm.year > 9999) /* not expressible in IMF-fixdate: clamp */
        tm.year = tm.year < 0 ? 0 : 9999;
    memcpy(p, wd[tm.wday], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = two(p, tm.mday);
    *p++ = ' ';
    memcpy(p, mon[tm.mon - 1], 3);
    p += 3;
    *p++ = ' ';
    p = two(p, (unsigned)(tm.year / 100));
    p = two(p, (unsigned)(tm.year % 100));
    *p++ = ' ';
    p = two(p, tm.hour);
    *p++ = ':';
    p = two(p, tm.min);
    *p++ = ':';
    p = two(p, tm.sec);
    memcpy(p, " GMT", 5);
}
