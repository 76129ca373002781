/* send_counter.c -- see send_counter.h. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "send_counter.h"

static atomic_long unix_sends;

long pg_unix_sends(void)
{
    return atomic_load(&unix_sends);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, const void *, size_t, int);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    if (real == NULL)
        real = (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX)
        atomic_fetch_add(&unix_sends, 1);
    return real(fd, buf, len, flags);
}
