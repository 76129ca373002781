/*
 * consumer -- the smallest program built against an installed Canteen.
 *
 * It shows that the installed header, library and pkg-config / CMake package
 * work together: it creates an app, registers one route, listens on
 * 127.0.0.1 port 0 (a free port), prints the port and exits without serving,
 * so it can run as a test. A real service would call cn_app_run() instead.
 */
#include <stdio.h>

#include <canteen.h>

static int hello(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "Hello from a Canteen consumer\n");
}

int main(void)
{
    cn_app *app = cn_app_new(NULL);
    if (app == NULL) {
        fprintf(stderr, "consumer: cn_app_new failed\n");
        return 1;
    }

    int rc = cn_app_route(app, "GET /", hello, NULL);
    if (rc < 0) {
        fprintf(stderr, "consumer: cn_app_route failed (%d)\n", rc);
        cn_app_free(app);
        return 1;
    }

    rc = cn_app_listen(app, "127.0.0.1", 0);
    if (rc < 0) {
        fprintf(stderr, "consumer: cn_app_listen failed (%d)\n", rc);
        cn_app_free(app);
        return 1;
    }

    int port = cn_app_port(app);
    if (port <= 0) {
        fprintf(stderr, "consumer: cn_app_port failed (%d)\n", port);
        cn_app_free(app);
        return 1;
    }

    /* cJSON comes with canteen.h (a public dependency): this links it too. */
    printf("consumer: listening on 127.0.0.1:%d (cJSON %s)\n", port, cJSON_Version());
    cn_app_free(app);
    return 0;
}
