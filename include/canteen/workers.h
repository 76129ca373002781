/*
 * canteen/workers.h -- running Canteen as an operator expects: every core
 * through supervised worker processes, sockets passed by systemd, the
 * client's address behind proxies, and the log's level. Included by
 * <canteen.h>; docs/guide/16-operating.md is the guide to it.
 *
 * Workers. With cn_config.workers = N, cn_app_run does not serve itself:
 * the calling process becomes a supervisor that forks N workers, each a
 * copy of the app as it was built (routes, middleware, hooks) running its
 * own loop, thread pool and curl multi, all accepting from the listeners
 * cn_app_listen made before (one socket, inherited: a worker that exits
 * leaves its queued connections to the others). Each worker runs the
 * startup hooks itself, and its shutdown hooks when it stops; nothing after
 * cn_app_run in the caller's code runs in a worker (a worker exits when its
 * app stops). cn_app_run returns in the supervisor once every worker has
 * exited.
 *
 * The supervisor, like gunicorn's arbiter and nginx's master:
 *
 *   SIGTERM, SIGINT   graceful stop: every worker drains (as one process
 *                     does, within shutdown_timeout_ms) and exits, then
 *                     cn_app_run returns 0; a second one stops waiting
 *   SIGHUP            rolling restart: one worker at a time, a new one is
 *                     started and ready (startup hooks done, accepting)
 *                     before the old one is told to drain
 *   SIGTTIN, SIGTTOU  one worker more, one fewer (never below one)
 *
 * A worker that dies is replaced at once if it had been up a while, after
 * a growing delay (100 ms, doubling, up to 10 s) if it keeps dying soon
 * after it started. One that fails at startup 5 times in a row (its startup
 * hook fails, or it crashes before it is ready) stops everything:
 * cn_app_run logs why and returns CN_EWORKERS. A worker whose loop sends no
 * heartbeat for worker_timeout_ms (a handler blocking it) is killed and
 * replaced. Workers ignore SIGINT, SIGHUP, SIGTTIN and SIGTTOU (a terminal's
 * Ctrl-C reaches the supervisor, which stops them in order); SIGTERM to a
 * worker drains it, and the supervisor replaces it.
 *
 * GET /metrics (cn_res_metrics, cn_app_metrics_render) on any worker shows
 * the whole server: every figure added up over the workers (counters of
 * workers that exited included, so they never go back), and canteen_worker_*
 * figures with a `worker` label per worker.
 *
 * Workers are POSIX fork(2): the app must be built (and listening) before
 * cn_app_run, and nothing that starts threads should run before it
 * (Canteen's own pool threads start in each worker).
 */
#ifndef CANTEEN_WORKERS_H
#define CANTEEN_WORKERS_H

#include <canteen.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most workers cn_config.workers (and SIGTTIN) may ask for. */
#define CN_WORKERS_MAX 128

/*
 * The number of the worker process this app runs in (0 to N-1; the
 * `worker` label of the metrics), or -1 when the app is not a worker (one
 * process, or the supervisor). A replacement (after a crash, or in a
 * rolling restart) has the number of the worker it replaces.
 */
CN_EXTERN int cn_app_worker_id(const cn_app *app);

/*
 * Serve on a socket that is already bound and listening (one a supervisor
 * or systemd passed down), as if cn_app_listen had made it. The app owns
 * `fd` from then on, also on error, and closes it when freed. Only TCP
 * (IPv4, IPv6) stream sockets. Errors: CN_EINVAL (not a listening TCP
 * socket), CN_ESTATE (stopping), CN_ENOMEM, libuv codes.
 */
CN_EXTERN int cn_app_listen_fd(cn_app *app, int fd);

/*
 * systemd socket activation: when this process was started with the
 * LISTEN_PID / LISTEN_FDS protocol (systemd, systemd-socket-activate),
 * serve on the sockets passed (file descriptors 3, 4, ...) with
 * cn_app_listen_fd, and remove those variables from the environment so
 * that no child takes them for its own. Returns the number of sockets
 * taken: 0 when the process was not socket-activated (then call
 * cn_app_listen). Errors: those of cn_app_listen_fd (a passed socket that
 * is not a listening TCP socket: CN_EINVAL).
 */
CN_EXTERN int cn_app_listen_systemd(cn_app *app);

/*
 * The client's IP address, as text ("127.0.0.1", "2001:db8::1"), in the
 * request's arena; NULL only when out of memory or there is no connection
 * (a lifespan hook's request). It is the connection's peer, unless that
 * peer is one of cn_config.forwarded_allow_ips: then it is what the proxy
 * says, from Forwarded (RFC 7239, for=) or else X-Forwarded-For, read from
 * the nearest proxy back and skipping the trusted ones (uvicorn's rule).
 * A value there that is not an IP address ends the walk.
 */
CN_EXTERN const char *cn_req_client_host(cn_req *req);

/*
 * The client's port: the peer's, or the one the trusted proxy gave in
 * Forwarded; 0 when the proxy named none (X-Forwarded-For never does) or
 * there is no connection.
 */
CN_EXTERN int cn_req_client_port(cn_req *req);

/*
 * Log only lines up to `level` (CN_LOG_ERROR, CN_LOG_WARN, CN_LOG_INFO:
 * the default, everything). Process-wide, like cn_log_set_handler; the
 * access log's lines are CN_LOG_INFO. Set it before starting apps.
 */
CN_EXTERN void cn_log_set_level(int level);

#ifdef __cplusplus
}
#endif

#endif /* CANTEEN_WORKERS_H */
