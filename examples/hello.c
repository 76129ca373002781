/* hello.c -- the smallest Canteen service. */
#include <canteen.h>

static int hello(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "Hello, World!");
}

int main(void)
{
    cn_config cfg = {.handle_signals = 1};
    cn_app *app = cn_app_new(&cfg);
    cn_app_route(app, "GET /", hello, NULL);
    int rc = cn_app_run(app, "127.0.0.1", 8000);
    cn_app_free(app);
    return rc < 0;
}
