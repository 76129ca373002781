/*
 * canteen/uv.h -- the app's libuv loop, for extensions that drive their own
 * handles on it (a database client, a message queue, a file watcher). The
 * one public header that includes <uv.h>; include it only where libuv is
 * wanted (link libuv too: pkg-config libuv).
 *
 * Rules for handles an extension puts on the app's loop:
 * - Use them from the loop thread only: from libuv callbacks, from
 *   handlers and tasks of async routes, or before cn_app_run / after it
 *   returned, on the thread that runs it.
 * - uv_unref() the ones that only wait (idle connections, periodic timers):
 *   cn_app_run returns when nothing but unreferenced handles is left after
 *   a graceful shutdown; a referenced one keeps it running.
 * - Close every handle before cn_app_free, which runs the loop once more so
 *   that the close callbacks run; free a handle's memory in its close
 *   callback, never earlier.
 * - Wake parked tasks with cn_future_resolve (canteen.h), never by calling
 *   into a coroutine.
 */
#ifndef CANTEEN_UV_H
#define CANTEEN_UV_H

#include <uv.h>

#include "../canteen.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The app's event loop, owned by the app: valid from cn_app_new until
 * cn_app_free; never close it or run it yourself while cn_app_run runs.
 * NULL for app NULL.
 */
CN_EXTERN uv_loop_t *cn_app_loop(cn_app *app);

#ifdef __cplusplus
}
#endif

#endif /* CANTEEN_UV_H */
