/* routes.c -- the demo's routes: the async guide's service. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <canteen.h>

#include "demo.h"

/* GET /health */
static int health(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_json_str(res, 200, "{\"status\":\"ok\"}");
}

/* GET /plaintext (benchmarks) */
static int plaintext(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "Hello, World!");
}

/* GET /json (benchmarks) */
static int json(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    (void)req;
    cJSON_AddStringToObject(o, "message", "Hello, World!");
    return cn_res_json(res, 200, o);
}

/* GET /users/{id:int} */
static int user_by_id(cn_req *req, cn_res *res)
{
    int64_t id;
    cJSON *o;

    cn_req_param_int(req, "id", &id);
    if (id <= 0)
        return cn_res_error(res, 404, "User not found");
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "name", cn_req_sprintf(req, "user%lld", (long long)id));
    return cn_res_json(res, 200, o);
}

/* POST /echo: the JSON body back (400 when it is not JSON) */
static int echo(cn_req *req, cn_res *res)
{
    cJSON *body;
    int rc = cn_req_json(req, &body);

    if (rc < 0)
        return rc;
    return cn_res_json(res, 200, body); /* the request's own tree: printed, not copied */
}

/* POST /items: a body declared like a pydantic model; 422 when it does not fit */
static const cn_field item_fields[] = {
    {.name = "name", .type = CN_STR, .required = 1, .min_length = 1, .max_length = 100},
    {.name = "price", .type = CN_FLOAT, .required = 1, .gt = CN_NUM(0)},
    {.name = "tags",
     .type = CN_ARRAY,
     .items = &(const cn_field){.type = CN_STR},
     .dflt = "[]",
     .max_length = 10},
    {0},
};
static const cn_field item_body = {
    .type = CN_OBJECT, .model = "Item", .required = 1, .fields = item_fields};

static int create_item(cn_req *req, cn_res *res)
{
    cJSON *item;
    int rc = cn_req_json(req, &item); /* validated: defaults filled in */

    return rc < 0 ? rc : cn_res_json(res, 201, cJSON_Duplicate(item, 1));
}

/* GET /async-data: the guide's async route, a 1 s wait that blocks no one */
static int async_data(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(1000);
    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_json_str(res, 200, "{\"source\":\"async\",\"data\":[1,2,3]}");
}

/* GET /sleep/{ms:int}: an async wait of ms milliseconds */
static int sleep_ms(cn_req *req, cn_res *res)
{
    int64_t ms;
    int rc;
    cJSON *o;

    cn_req_param_int(req, "ms", &ms);
    if (ms < 0 || ms > 60000)
        return cn_res_error(res, 422, "ms must be between 0 and 60000");
    rc = cn_sleep(ms);
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "slept_ms", (double)ms);
    return cn_res_json(res, 200, o);
}

/* GET /stream/{n:int}: n JSON lines, one every 10 ms, each sent as soon as it
 * is made (StreamingResponse); the client reads them while the rest waits */
static int stream_lines(cn_req *req, cn_res *res)
{
    int64_t n;
    char line[64];
    int rc;

    cn_req_param_int(req, "n", &n);
    if (n < 0 || n > 10000)
        return cn_res_error(res, 422, "n must be between 0 and 10000");
    rc = cn_res_stream_begin(res, 200, "application/x-ndjson");
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        int len =
            snprintf(line, sizeof line, "{\"i\":%lld,\"of\":%lld}\n", (long long)i, (long long)n);
        rc = cn_res_stream_write(res, line, (size_t)len);
        if (rc == 0 && i + 1 < n)
            rc = cn_sleep(10);
    }
    /* once the head is out an error cannot become a status: returning it
     * cuts the body short, which the client sees */
    return rc < 0 ? rc : cn_res_stream_end(res);
}

/* The guide's three requests: each is a child task that waits its time. */
typedef struct scenario_step {
    const char *name;
    int64_t ms;
    uint64_t took_ms;
} scenario_step;

uint64_t demo_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int scenario_step_run(void *arg)
{
    scenario_step *st = arg;
    uint64_t t0 = demo_now_ms();
    int rc = cn_sleep(st->ms);
    st->took_ms = demo_now_ms() - t0;
    return rc;
}

/* GET /scenario: database 200 ms, compute 1 ms, external API 1000 ms, gathered */
static int scenario(cn_req *req, cn_res *res)
{
    scenario_step *steps = cn_req_alloc(req, 3 * sizeof(*steps));
    cn_task *tasks[3];
    uint64_t t0 = demo_now_ms();
    cJSON *o, *arr;
    int rc;

    if (steps == NULL)
        return CN_ENOMEM;
    steps[0] = (scenario_step){"database", 200, 0};
    steps[1] = (scenario_step){"compute", 1, 0};
    steps[2] = (scenario_step){"external_api", 1000, 0};
    for (int i = 0; i < 3; i++) {
        rc = cn_spawn(scenario_step_run, &steps[i], &tasks[i]);
        if (rc < 0) {
            /* tasks already spawned are cancelled and reported at the end */
            return rc;
        }
    }
    rc = cn_gather(tasks, 3, NULL);
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(o, "steps");
    for (int i = 0; i < 3; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", steps[i].name);
        cJSON_AddNumberToObject(s, "wait_ms", (double)steps[i].ms);
        cJSON_AddNumberToObject(s, "took_ms", (double)steps[i].took_ms);
        cJSON_AddItemToArray(arr, s);
    }
    cJSON_AddNumberToObject(o, "total_ms", (double)(demo_now_ms() - t0));
    return cn_res_json(res, 200, o);
}

uint64_t demo_sum(uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++) {
        s += i;
        __asm__ volatile("" : "+r"(s)::"memory");
    }
    return s;
}

static int sum_json(cn_res *res, const char *source, uint64_t n, uint64_t sum)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", source);
    cJSON_AddNumberToObject(o, "n", (double)n);
    cJSON_AddNumberToObject(o, "result", (double)sum);
    return cn_res_json(res, 200, o);
}

/* GET /sync-data: a def route: CPU work on the pool, the loop stays free */
static int sync_data(cn_req *req, cn_res *res)
{
    (void)req;
    return sum_json(res, "sync", 10000000, demo_sum(10000000));
}

/* The most work one request may ask of the pool: a client must not be
 * able to hold a worker for minutes (the pool's own limits bound how many
 * it may hold). */
#define CPU_MAX_N 2000000000LL /* about a second or two of one core */
#define POOL_MAX_MS 10000

/* demo_sum in slices, looking between them whether the client is still
 * there: returns -1 once the request is cancelled (nobody waits for the
 * sum any more, and the worker is wanted). */
static int sum_cancellable(uint64_t n, uint64_t *out)
{
    enum { SLICE = 1 << 22 }; /* a few ms of work between looks */
    uint64_t s = 0;

    for (uint64_t i = 0; i < n;) {
        uint64_t end = n - i > SLICE ? i + SLICE : n;
        if (cn_job_cancelled() == 1)
            return -1;
        for (; i < end; i++) {
            s += i;
            __asm__ volatile("" : "+r"(s)::"memory");
        }
    }
    *out = s;
    return 0;
}

/* GET /cpu/{n:int}: the sum of 0..n-1 on the pool */
static int cpu(cn_req *req, cn_res *res)
{
    int64_t n;
    uint64_t sum;

    cn_req_param_int(req, "n", &n);
    if (n < 0 || n > CPU_MAX_N)
        return cn_res_error(res, 422, "n must be between 0 and 2*10^9");
    if (sum_cancellable((uint64_t)n, &sum) < 0)
        return CN_ECANCELED; /* the client left: no answer to send */
    return sum_json(res, "sync", (uint64_t)n, sum);
}

static int ms_param_max(cn_req *req, cn_res *res, int64_t *ms, int64_t max)
{
    cn_req_param_int(req, "ms", ms);
    if (*ms < 0 || *ms > max) {
        cn_res_error(res, 422,
                     cn_req_sprintf(req, "ms must be between 0 and %lld", (long long)max));
        return -1;
    }
    return 0;
}

static int ms_param(cn_req *req, cn_res *res, int64_t *ms)
{
    return ms_param_max(req, res, ms, POOL_MAX_MS);
}

/* A blocking sleep, like time.sleep: the calling thread does nothing else. */
static void block_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The same on the pool, in 10 ms slices with a look in between at whether
 * the client is still there: -1 once the request is cancelled. */
static int block_ms_cancellable(int64_t ms)
{
    enum { SLICE_MS = 10 };

    for (int64_t left = ms; left > 0; left -= SLICE_MS) {
        if (cn_job_cancelled() == 1)
            return -1;
        block_ms(left < SLICE_MS ? left : SLICE_MS);
    }
    return 0;
}

static int slept_json(cn_res *res, int64_t ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "slept_ms", (double)ms);
    return cn_res_json(res, 200, o);
}

/* GET /sync-sleep/{ms:int}: time.sleep in a def route: holds its worker */
static int sync_sleep(cn_req *req, cn_res *res)
{
    int64_t ms;

    if (ms_param(req, res, &ms) < 0)
        return 0;
    if (block_ms_cancellable(ms) < 0)
        return CN_ECANCELED;
    return slept_json(res, ms);
}

static int blocking_sleep(void *arg)
{
    int64_t ms = *(int64_t *)arg;
    return block_ms_cancellable(ms) < 0 ? CN_ECANCELED : 0;
}

/* GET /to-thread/{ms:int}: an async route hands a blocking call to the pool */
static int to_thread(cn_req *req, cn_res *res)
{
    int64_t ms;
    int rc;

    if (ms_param(req, res, &ms) < 0)
        return 0;
    rc = cn_to_thread(blocking_sleep, &ms);
    if (rc < 0)
        return rc;
    return slept_json(res, ms);
}

/* GET /trap/blocking/{ms:int}: trap 3, time.sleep inside async def */
static int trap_blocking(cn_req *req, cn_res *res)
{
    int64_t ms;

    if (ms_param_max(req, res, &ms, 60000) < 0)
        return 0;
    block_ms(ms); /* wrong on purpose: the loop stops */
    return slept_json(res, ms);
}

int demo_register_traps(cn_app *app)
{
    return cn_app_route(app, "GET /trap/blocking/{ms:int}", trap_blocking, NULL);
}

/* The cores this process may run on: a CPU-bound route gains nothing from
 * more workers than that, and each one more takes CPU from the short jobs
 * of every other route. */
static unsigned usable_cpus(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int demo_register(cn_app *app)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    /* CPU-bound: at most one job per usable core at once */
    cn_route_opts cpu_bound = {.mode = CN_ROUTE_SYNC, .pool_limit = usable_cpus()};
    int rc = 0;
    rc = rc ? rc : cn_app_route(app, "GET /health", health, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /plaintext", plaintext, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /json", json, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /users/{id:int}", user_by_id, NULL);
    rc = rc ? rc : cn_app_route(app, "POST /echo", echo, NULL);
    rc = rc ? rc
            : cn_app_route_ex(app, "POST /items", create_item, NULL,
                              &(cn_route_opts){.body = &item_body,
                                               .status_code = 201,
                                               .summary = "Create an item",
                                               .tags = (const char *const[]){"items", NULL}});
    rc = rc ? rc : cn_app_route(app, "GET /async-data", async_data, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /sleep/{ms:int}", sleep_ms, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /scenario", scenario, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /stream/{n:int}", stream_lines, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /sync-data", sync_data, NULL, &sync);
    rc = rc ? rc : cn_app_route_ex(app, "GET /sync-sleep/{ms:int}", sync_sleep, NULL, &sync);
    rc = rc ? rc : cn_app_route_ex(app, "GET /cpu/{n:int}", cpu, NULL, &cpu_bound);
    rc = rc ? rc : cn_app_route(app, "GET /to-thread/{ms:int}", to_thread, NULL);
    /* GET /metrics: the app's, the pool's and the loop's figures, for Prometheus */
    rc = rc ? rc : cn_app_metrics_route(app, NULL);
    rc = rc ? rc : demo_register_admin(app);
    /* GET /openapi.json and GET /docs (Swagger UI) from the declarations */
    rc = rc ? rc
            : cn_app_openapi(
                  app, &(cn_openapi_opts){.title = "Canteen demo", .version = CN_VERSION_STRING});
    return rc;
}
