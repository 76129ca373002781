/* hello.c -- the smallest Canteen service. */
#include <stdio.h>

#include <canteen.h>

static int hello(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "Hello, World!");
}

int main(void)
{
    cn_config cfg;
    cn_config_init(&cfg);
    cfg.handle_signals = 1;
    cn_app *app = cn_app_new(&cfg);
    cn_app_route(app, "GET /", hello, NULL);
    int rc = cn_app_listen(app, "127.0.0.1", 8000);
    if (rc == CN_EADDRINUSE)
        fprintf(stderr, "hello: 127.0.0.1:8000 is already in use (another server is running "
                        "there?): stop it, or change the port in hello.c\n");
    else if (rc == 0)
        rc = cn_app_run(app);
    if (rc < 0 && rc != CN_EADDRINUSE)
        fprintf(stderr, "hello: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
