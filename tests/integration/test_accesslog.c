/*
 * test_accesslog.c -- the access log's formats byte for byte (uvicorn's,
 * the combined format, a template), escaping that keeps a request from
 * forging a line, the client's address (cn_req_client_host/port) and the
 * trusted proxies' Forwarded / X-Forwarded-For, cn_log_set_level.
 */
#include "harness.h"

#include "app.h" /* cn__app_free_checked */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The port our side of c is bound to: the log's client port. */
static int local_port(h_conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    assert_int_equal(getsockname(c->fd, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Send one request on a fresh connection, read its answer; our port. */
static int request(h_server *s, const char *raw, int status)
{
    h_conn *c = h_open(s);
    h_response r;
    int port = local_port(c);

    h_sends(c, raw);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, status);
    h_response_free(&r);
    h_close(c);
    return port;
}

/* The one captured line that starts with `prefix`, which must equal `want`. */
static void assert_line(const char *needle, const char *want)
{
    char line[4096];

    h_log_find(needle, line, sizeof line);
    if (strcmp(line, want) != 0)
        fail_msg("access log line\n  got:  '%s'\n  want: '%s'", line, want);
}

static int rid(cn_req *req, cn_res *res)
{
    cn_req_set_id(req, "req-7f3a");
    return cn_res_text(res, 200, "ok");
}

static int client(cn_req *req, cn_res *res)
{
    const char *host = cn_req_client_host(req);
    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req, "{\"host\":\"%s\",\"port\":%d}", host ? host : "",
                                          cn_req_client_port(req)));
}

static int routes(cn_app *app, void *arg)
{
    (void)arg;
    if (cn_app_route(app, "GET /rid", rid, NULL) < 0)
        return -1;
    return cn_app_route(app, "GET /client", client, NULL);
}

static h_server *start(void **state, const char *format, const char *trusted)
{
    cn_config cfg = h_fast_config();
    h_server *s;

    cfg.access_log = 1;
    cfg.access_log_format = format;
    cfg.forwarded_allow_ips = trusted;
    s = h_start(&cfg, NULL, routes, NULL);
    *state = s;
    h_log_reset();
    return s;
}

/* uvicorn's line, byte for byte; a path with quotes and a newline in it
 * comes out percent-encoded (as uvicorn's urllib.parse.quote does), so it
 * cannot end the line or fake one */
static void test_uvicorn_format(void **state)
{
    h_server *s = start(state, NULL, NULL);
    char want[512];
    int port;

    port = request(s, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    snprintf(want, sizeof want, "INFO:     127.0.0.1:%d - \"GET /json HTTP/1.1\" 200 OK", port);
    assert_line("\"GET /json", want);

    port = request(s,
                   "GET /a\"b%0AINFO:%20%20%20%20%201.2.3.4:1%20-%20%22GET%20/x%22?q=1 HTTP/1.1\r\n"
                   "Host: t\r\n\r\n",
                   404);
    snprintf(want, sizeof want,
             "INFO:     127.0.0.1:%d - \"GET "
             "/a%%22b%%0AINFO%%3A%%20%%20%%20%%20%%201.2.3.4%%3A1%%20-%%20%%22GET%%20/x%%22?q=1 "
             "HTTP/1.1\" 404 Not Found",
             port);
    assert_line("\"GET /a%22b", want);

    port = request(s, "GET /health HTTP/1.0\r\n\r\n", 200);
    snprintf(want, sizeof want, "INFO:     127.0.0.1:%d - \"GET /health HTTP/1.0\" 200 OK", port);
    assert_line("/health HTTP/1.0", want);

    /* a request with an ID: it starts the line, as every line about it */
    port = request(s, "GET /rid HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    snprintf(want, sizeof want, "[req-7f3a] INFO:     127.0.0.1:%d - \"GET /rid HTTP/1.1\" 200 OK",
             port);
    assert_line("\"GET /rid", want);

    /* one line per request, none with a line break in it */
    assert_int_equal(h_log_count(CN_LOG_INFO, "INFO:     127.0.0.1:", NULL), 4);
    assert_int_equal(h_log_count(-1, "\n", NULL), 0);
}

/* The combined log format: untrusted bytes as \xHH (nginx's escaping) */
static void test_combined_format(void **state)
{
    h_server *s = start(state, "combined", NULL);
    char line[4096], want[512];
    const char *end;

    request(s,
            "GET /users/42?x=\"1\" HTTP/1.1\r\nHost: t\r\nReferer: http://r.example/\r\n"
            "User-Agent: ev\"il\\ \xc3\xa9\r\n\r\n",
            200);
    h_log_find("GET /users/42", line, sizeof line);
    /* 127.0.0.1 - - [02/Dec/2026:14:23:51 +0000] "GET ..." ... */
    assert_true(strncmp(line, "127.0.0.1 - - [", 15) == 0);
    end = strchr(line, ']');
    assert_non_null(end);
    assert_int_equal(end - line, 15 + 26);
    assert_true(line[15 + 2] == '/' && line[15 + 6] == '/' && line[15 + 11] == ':');
    snprintf(want, sizeof want,
             "] \"GET /users/42?x=\\x221\\x22 HTTP/1.1\" 200 25 \"http://r.example/\" "
             "\"ev\\x22il\\x5C \\xC3\\xA9\"");
    if (strcmp(end, want) != 0)
        fail_msg("combined line\n  got:  '%s'\n  want: '...%s'", line, want);

    /* no Referer, no User-Agent: "-" */
    request(s, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    h_log_find("GET /health", line, sizeof line);
    end = strchr(line, ']');
    assert_non_null(end);
    assert_string_equal(end, "] \"GET /health HTTP/1.1\" 200 15 \"-\" \"-\"");
}

/* A template: the request ID, the duration, any header, literal text */
static void test_template(void **state)
{
    h_server *s = start(state,
                        "$remote_addr [$request_id] $status ${request_time}s x=$http_x_test "
                        "w=$worker $request_method $uri$is_args$args $$",
                        NULL);
    char line[4096];
    unsigned sec, ms;
    int n = 0;

    request(s, "GET /rid?a=b HTTP/1.1\r\nHost: t\r\nX-Test: \"q\"\r\n\r\n", 200);
    h_log_find("[req-7f3a]", line, sizeof line);
    assert_true(sscanf(line, "127.0.0.1 [req-7f3a] 200 %u.%3us x=%n", &sec, &ms, &n) == 2);
    assert_true(n > 0);
    assert_string_equal(line + n, "\\x22q\\x22 w=- GET /rid?a=b $");
    assert_true(sec < 5);

    request(s, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    h_log_find("GET /health", line, sizeof line);
    assert_true(strncmp(line, "127.0.0.1 [-] 200 ", 18) == 0);
    assert_non_null(strstr(line, " x=- w=- GET /health $"));
}

/* A format or an address list that does not parse: cn_app_run refuses */
static void test_bad_config(void **state)
{
    static const struct {
        const char *format, *trusted;
    } bad[] = {{"$remote_addr $nope", NULL},
               {"${status", NULL},
               {NULL, "10.0.0.0/33"},
               {NULL, "127.0.0.1, localhost"},
               {NULL, "::1/129"}};
    (void)state;

    h_log_capture_start();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_config cfg;
        cn_app *app;

        cn_config_init(&cfg);
        cfg.access_log_format = bad[i].format;
        cfg.forwarded_allow_ips = bad[i].trusted;
        app = cn_app_new(&cfg);
        assert_non_null(app);
        assert_int_equal(cn_app_listen(app, "127.0.0.1", 0), 0);
        assert_int_equal(cn_app_run(app), CN_EINVAL);
        assert_int_equal(cn__app_free_checked(app), 0);
    }
    assert_int_equal(h_log_count(CN_LOG_ERROR, "access_log_format", NULL), 2);
    assert_int_equal(h_log_count(CN_LOG_ERROR, "forwarded_allow_ips", NULL), 3);
}

/* GET /client on a fresh connection with `headers`: the JSON answer */
static void client_of(h_server *s, const char *headers, const char *host, int port)
{
    h_conn *c = h_open(s);
    int mine = local_port(c);
    cJSON *o;

    h_sendf(c, "GET /client HTTP/1.1\r\nHost: t\r\n%s\r\n", headers);
    o = h_read_json(c, 200);
    assert_string_equal(cJSON_GetObjectItem(o, "host")->valuestring, host);
    assert_int_equal(cJSON_GetObjectItem(o, "port")->valueint, port < 0 ? mine : port);
    cJSON_Delete(o);
    h_close(c);
}

/* Nobody trusted (the default): the headers are the client's word only */
static void test_client_untrusted(void **state)
{
    h_server *s = start(state, NULL, NULL);

    client_of(s, "", "127.0.0.1", -1);
    client_of(s, "X-Forwarded-For: 203.0.113.7\r\n", "127.0.0.1", -1);
    client_of(s, "Forwarded: for=203.0.113.7\r\n", "127.0.0.1", -1);
}

/* A trusted peer: the hops are read from the nearest back, trusted ones
 * skipped (uvicorn's rule); Forwarded wins over X-Forwarded-For */
static void test_client_trusted(void **state)
{
    h_server *s = start(state, NULL, "127.0.0.1, 10.0.0.0/8, 2001:db8:ffff::/48");
    char line[4096];

    client_of(s, "", "127.0.0.1", -1);
    client_of(s, "X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7", 0);
    client_of(s, "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.1.2.3\r\n", "203.0.113.7", 0);
    client_of(s, "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 10.0.0.1\r\n", "198.51.100.1",
              0);
    client_of(s, "X-Forwarded-For: 10.0.0.2, 10.0.0.1\r\n", "10.0.0.2", 0);
    client_of(s, "Forwarded: for=\"[2001:db8::1]:4711\";proto=https\r\n", "2001:db8::1", 4711);
    client_of(s,
              "Forwarded: for=192.0.2.60;proto=http, for=\"[2001:db8:ffff::9]\"\r\n"
              "X-Forwarded-For: 203.0.113.7\r\n",
              "192.0.2.60", 0);
    client_of(s, "Forwarded: For=\"192.0.2.43:47011\"\r\n", "192.0.2.43", 47011);
    /* not an address: the walk stops, the nearest hop before it is the client */
    client_of(s, "Forwarded: for=unknown\r\n", "127.0.0.1", -1);
    client_of(s, "X-Forwarded-For: 203.0.113.7, \"><script>, 10.0.0.1\r\n", "10.0.0.1", 0);
    client_of(s, "X-Forwarded-For: ::ffff:198.51.100.2\r\n", "198.51.100.2", 0);
    /* the access log names the client the proxy gave */
    h_log_reset();
    request(s, "GET /health HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n", 200);
    h_log_find("GET /health", line, sizeof line);
    assert_string_equal(line, "INFO:     203.0.113.9:0 - \"GET /health HTTP/1.1\" 200 OK");
}

static void test_client_trust_everyone(void **state)
{
    h_server *s = start(state, NULL, "*");

    client_of(s, "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n", "198.51.100.1", 0);
}

/* Above CN_LOG_INFO's level, no access line is made */
static void test_log_level(void **state)
{
    h_server *s = start(state, NULL, NULL);

    cn_log_set_level(CN_LOG_WARN);
    request(s, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    cn_log_set_level(CN_LOG_INFO);
    assert_int_equal(h_log_count(-1, "GET /json", NULL), 0);
    request(s, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    assert_int_equal(h_log_count(-1, "GET /json", NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_uvicorn_format, h_teardown),
        cmocka_unit_test_teardown(test_combined_format, h_teardown),
        cmocka_unit_test_teardown(test_template, h_teardown),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test_teardown(test_client_untrusted, h_teardown),
        cmocka_unit_test_teardown(test_client_trusted, h_teardown),
        cmocka_unit_test_teardown(test_client_trust_everyone, h_teardown),
        cmocka_unit_test_teardown(test_log_level, h_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
