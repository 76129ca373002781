/*
 * listenfd.c -- sockets made by someone else: systemd's socket activation
 * (sd_listen_fds(3): LISTEN_PID names this process, LISTEN_FDS counts the
 * descriptors from 3 on), adopted with cn_app_listen_fd.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canteen.h"
#include "common.h"

#define SD_LISTEN_FDS_START 3

/* A whole decimal number, or -1. */
static long parse_count(const char *s)
{
    char *end;
    long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    v = strtol(s, &end, 10);
    return *end == 0 ? v : -1;
}

int cn_app_listen_systemd(cn_app *app)
{
    long pid = parse_count(getenv("LISTEN_PID")), n = parse_count(getenv("LISTEN_FDS"));
    int rc = 0, taken = 0;

    if (app == NULL)
        return CN_EINVAL;
    /* for another process (a parent that did not unset them): not ours */
    if (pid <= 0 || n <= 0 || pid != (long)getpid())
        return 0;
    /* taken once, so that no child process takes them again */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (n > 1024)
        return CN_EINVAL;
    for (long i = 0; i < n; i++) {
        int r = cn_app_listen_fd(app, SD_LISTEN_FDS_START + (int)i);
        if (r < 0) {
            cn__log(CN__LOG_ERROR, "socket activation: descriptor %ld: %s", SD_LISTEN_FDS_START + i,
                    cn_strerror(r));
            if (rc == 0)
                rc = r;
            continue;
        }
        taken++;
    }
    return rc < 0 ? rc : taken;
}
