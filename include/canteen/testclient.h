/*
 * canteen/testclient.h -- an in-process test client (FastAPI's TestClient).
 * Included by canteen.h.
 *
 * It drives requests through the real stack -- the HTTP parser, the
 * router, middleware, dependencies, declared-parameter checks, coroutines,
 * the thread pool, the response writer -- without a listening socket: the
 * client talks to the app over a socketpair, and runs the app's loop on the
 * calling thread while it waits. It runs the app's startup hooks when it is
 * made and its shutdown hooks when it is freed. Use it from your own tests:
 *
 *     cn_app *app = make_my_app();        // routes, middleware, lifespan...
 *     cn_test_client *tc;
 *     assert_int_equal(cn_test_client_new(app, &tc), 0);
 *     cn_test_response r;
 *     assert_int_equal(cn_test_get(tc, "/items/1", &r), 0);
 *     assert_int_equal(r.status, 200);
 *     assert_string_equal(r.body, "{\"id\":1,\"name\":\"item1\"}");
 *     cn_test_response_free(&r);
 *     cn_test_client_free(tc);            // shutdown hooks
 *     cn_app_free(app);
 *
 * One client per app, used from one thread; the app must not be run
 * otherwise (no cn_app_run) while the client exists. Requests go one at a
 * time over one keep-alive connection, reopened when the app closes it.
 *
 * The app runs only while a call of the client waits. A request returns
 * once its response is in, as over a socket: dependency cleanups and
 * background tasks may still be running. cn_test_settle runs the app until
 * they are done (FastAPI's TestClient returns after the background tasks);
 * cn_test_run_until until a condition of the test's holds.
 */
#ifndef CANTEEN_TESTCLIENT_H
#define CANTEEN_TESTCLIENT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_test_client cn_test_client;

/* A response, owned by the caller until cn_test_response_free. */
typedef struct cn_test_response {
    int status;
    size_t nheaders;
    cn_str *header_names, *header_values; /* as sent, NUL-terminated */
    char *body;                           /* de-chunked, NUL-terminated */
    size_t body_len;
    void *reserved[4];
} cn_test_response;

/*
 * Make a client for `app`, which must not have run yet (listening is not
 * needed), and run the app's startup hooks. On success *out owns the
 * client. Errors: the error of a startup hook that failed (the app is then
 * stopped: free it), CN_EINVAL, CN_ESTATE (the app ran already),
 * CN_ENOMEM.
 */
CN_EXTERN int cn_test_client_new(cn_app *app, cn_test_client **out);

/*
 * Send one request and wait for its response: `method` ("GET"), `target`
 * ("/items?limit=5"), `headers` (NULL-terminated "Name: value" strings, or
 * NULL; Host: testserver and Content-Length are added unless given), and
 * `body` (len bytes, may be NULL with len 0). *out gets the response (free
 * it with cn_test_response_free), also for 4xx and 5xx. Waits at most
 * `timeout_ms` (0: 30000) of the app's work.
 * Errors: CN_EINVAL (a NULL argument, body NULL with len > 0, a method
 * that is no token, a target that is empty or has a space or control
 * byte), CN_ETIMEDOUT (no complete response in time), CN_EPIPE (the app
 * closed the connection without a response), CN_EBADHEADER (a header
 * string without ": ", or with CR or LF), CN_ESTATE (a cn_test_stream is
 * open), CN_ENOMEM. After an error *out holds nothing (freeing it is
 * harmless). An error once the request is being sent closes the
 * connection (the app sees its client leave; the next request opens
 * another).
 */
CN_EXTERN int cn_test_request(cn_test_client *tc, const char *method, const char *target,
                              const char *const *headers, const void *body, size_t len,
                              int timeout_ms, cn_test_response *out);

/* GET target, no headers, the default timeout. */
CN_EXTERN int cn_test_get(cn_test_client *tc, const char *target, cn_test_response *out);

/*
 * As cn_test_request, but return once the head of the response is in
 * (httpx's client.stream): *out gets the status and headers and an empty
 * body (""); read the body as it arrives with cn_test_read. `timeout_ms`
 * bounds the wait for the head. Until the body has been read to its end
 * or cn_test_stream_close drops it, the client sends no other request.
 * Errors: those of cn_test_request, and CN_ESTATE (a stream is open).
 */
CN_EXTERN int cn_test_stream(cn_test_client *tc, const char *method, const char *target,
                             const char *const *headers, const void *body, size_t len,
                             int timeout_ms, cn_test_response *out);

/*
 * The next bytes of the open stream's body, de-chunked, into buf (at most
 * `size` of those that have arrived; the caller's buffer, not kept).
 * Runs the app while it waits, at most `timeout_ms` (0: 30000). Returns
 * the count (> 0), 0 at the end of the body (the stream is then closed),
 * or an error: CN_EINVAL (tc or buf NULL, size 0), CN_ESTATE (no stream
 * open), CN_ETIMEDOUT (nothing new in time: the stream stays open, read
 * again or close it), CN_EPIPE (the app closed the connection before the
 * end: the stream is closed), CN_ENOMEM.
 */
CN_EXTERN int cn_test_read(cn_test_client *tc, void *buf, size_t size, int timeout_ms);

/*
 * Close the open stream. If its body was not read to the end, the
 * connection is closed: the app sees its client leave (a handler still
 * writing gets CN_ECANCELED). No stream open, or tc NULL: nothing.
 */
CN_EXTERN void cn_test_stream_close(cn_test_client *tc);

/*
 * Run the app on this thread until it is at rest: no request in flight and
 * nothing one started still going -- dependency cleanups, background
 * tasks, spawned tasks, jobs on the thread pool. Call it before checking
 * what those did. Waits at most `timeout_ms` (0: 30000). Errors: CN_EINVAL,
 * CN_ETIMEDOUT (still busy: a task waiting for something that does not
 * come, or an open stream the app cannot finish writing).
 */
CN_EXTERN int cn_test_settle(cn_test_client *tc, int timeout_ms);

/*
 * Run the app on this thread until done(arg) returns non-zero: checked at
 * once, then after each turn of the app's loop (so a change made on
 * another thread is seen at the loop's next event at the latest). For a
 * state the test waits for while the app works (a background task that
 * has begun, a log line). Waits at most `timeout_ms` (0: 30000). Errors:
 * CN_EINVAL (tc or done NULL), CN_ETIMEDOUT.
 */
CN_EXTERN int cn_test_run_until(cn_test_client *tc, int (*done)(void *arg), void *arg,
                                int timeout_ms);

/* A response header (case-insensitive), or NULL. */
CN_EXTERN const char *cn_test_header(const cn_test_response *r, const char *name);

/* How many response headers are named `name` (case-insensitive): Set-Cookie, say. */
CN_EXTERN size_t cn_test_header_count(const cn_test_response *r, const char *name);

/* Free what a response holds. NULL allowed. */
CN_EXTERN void cn_test_response_free(cn_test_response *r);

/*
 * Close the connection, run the app's graceful stop and its shutdown
 * hooks, and free the client; the app is then stopped (cn_app_free it).
 * Returns 0, or the error cn_app_run would have returned. NULL allowed.
 */
CN_EXTERN int cn_test_client_free(cn_test_client *tc);

#ifdef __cplusplus
}
#endif

#endif
