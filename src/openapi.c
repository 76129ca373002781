/*
 * openapi.c -- the OpenAPI 3.1 document made from the route table and its
 * declarations, the way FastAPI writes it (pydantic v2's JSON schemas, the
 * 422 HTTPValidationError component), and Swagger UI at /docs from npm's
 * swagger-ui-dist files on disk.
 *
 * The document is made on the first request and kept: once the app runs
 * its routes cannot change. Swagger UI's files are read on the thread pool
 * (file reads never run on the loop) and kept in memory.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "common.h"
#include "router.h"
#include "validate.h"

/* Where `npm install -g swagger-ui-dist` puts it: npm's global prefix is
 * /usr/local for Debian's npm, /usr for Node.js's own builds. */
static const char *const ui_dirs[] = {"/usr/local/lib/node_modules/swagger-ui-dist",
                                      "/usr/lib/node_modules/swagger-ui-dist"};
#define REF "#/components/schemas/"

/* Swagger UI's files /docs serves: a fixed list, so no path comes from a request. */
static const struct ui_file {
    const char *name, *ctype;
} ui_files[] = {
    {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
    {"swagger-ui.css", "text/css; charset=utf-8"},
    {"favicon-32x32.png", "image/png"},
};
#define NFILES (sizeof ui_files / sizeof ui_files[0])

typedef struct openapi {
    cn_app *app;
    cn_openapi_opts opts; /* its strings are the copies below */
    char *title, *version, *description, *openapi_url, *docs_url, *ui_dir;
    char *doc; /* made on the first request */
    size_t doc_len;
    struct {
        char *data;
        size_t len;
        bool loaded, missing;
    } files[NFILES];
} openapi;

/* ---- schemas, as pydantic v2 writes them ---- */

/* "x-token" -> "X Token", "max_items" -> "Max Items" (pydantic's field titles). */
static char *title_of(const char *name)
{
    size_t n = strlen(name);
    char *t = malloc(n + 1);
    bool up = true;

    if (t == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        if (c == '_' || c == '-') {
            t[i] = ' ';
            up = true;
        } else {
            t[i] = up ? (char)toupper((unsigned char)c) : c;
            up = false;
        }
    }
    return t;
}

static void add_title(cJSON *o, const char *name)
{
    char *t = name ? title_of(name) : NULL;

    if (t)
        cJSON_AddStringToObject(o, "title", t);
    free(t);
}

/* A default as the JSON value of the field's type (NULL: none, or it does not parse). */
static cJSON *default_json(const cn_field *f)
{
    char *end;

    if (f->dflt == NULL)
        return NULL;
    switch (f->type) {
    case CN_INT:
    case CN_FLOAT: {
        double v = strtod(f->dflt, &end);
        return *end == 0 ? cJSON_CreateNumber(v) : NULL;
    }
    case CN_BOOL:
        return cJSON_CreateBool(strchr("1tTyY", f->dflt[0]) != NULL ||
                                strcasecmp(f->dflt, "on") == 0);
    case CN_OBJECT:
    case CN_ARRAY:
        return cJSON_Parse(f->dflt);
    default:
        return cJSON_CreateString(f->dflt);
    }
}

static cJSON *schema_of(const cn_field *f, cJSON *components, const char *title, int depth);
static cJSON *ref(const char *name);

static cJSON *object_schema(const cn_field *f, cJSON *components, int depth)
{
    cJSON *o = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(o, "properties");
    cJSON *req = cJSON_CreateArray();

    for (const cn_field *k = f->fields; k && k->name; k++) {
        cJSON_AddItemToObject(props, k->name, schema_of(k, components, k->name, depth + 1));
        if (k->required)
            cJSON_AddItemToArray(req, cJSON_CreateString(k->name));
    }
    cJSON_AddStringToObject(o, "type", "object");
    if (cJSON_GetArraySize(req) > 0)
        cJSON_AddItemToObject(o, "required", req);
    else
        cJSON_Delete(req);
    if (f->extra == CN_EXTRA_FORBID)
        cJSON_AddFalseToObject(o, "additionalProperties");
    return o;
}

static cJSON *schema_of(const cn_field *f, cJSON *components, const char *title, int depth)
{
    cJSON *s, *d;

    if (depth > 32)
        return cJSON_CreateObject();
    if (f->type == CN_OBJECT && f->model) {
        /* a named model: a component, referred to */
        if (!cJSON_HasObjectItem(components, f->model)) {
            cJSON *m = object_schema(f, components, depth);
            add_title(m, f->model);
            cJSON_AddItemToObject(components, f->model, m);
        }
        s = ref(f->model);
    } else if (f->type == CN_OBJECT) {
        s = object_schema(f, components, depth);
    } else {
        s = cJSON_CreateObject();
        switch (f->type) {
        case CN_INT:
            cJSON_AddStringToObject(s, "type", "integer");
            break;
        case CN_FLOAT:
            cJSON_AddStringToObject(s, "type", "number");
            break;
        case CN_BOOL:
            cJSON_AddStringToObject(s, "type", "boolean");
            break;
        case CN_ARRAY:
            cJSON_AddItemToObject(s, "items",
                                  f->items ? schema_of(f->items, components, NULL, depth + 1)
                                           : cJSON_CreateObject());
            cJSON_AddStringToObject(s, "type", "array");
            break;
        case CN_ENUM: {
            cJSON *e = cJSON_AddArrayToObject(s, "enum");
            for (size_t i = 0; f->values && f->values[i]; i++)
                cJSON_AddItemToArray(e, cJSON_CreateString(f->values[i]));
            cJSON_AddStringToObject(s, "type", "string");
            break;
        }
        default:
            cJSON_AddStringToObject(s, "type", "string");
            break;
        }
        if (f->type == CN_STR || f->type == CN_ARRAY) {
            const char *mn = f->type == CN_STR ? "minLength" : "minItems";
            const char *mx = f->type == CN_STR ? "maxLength" : "maxItems";
            if (f->max_length)
                cJSON_AddNumberToObject(s, mx, (double)f->max_length);
            if (f->min_length)
                cJSON_AddNumberToObject(s, mn, (double)f->min_length);
        }
        if (f->type == CN_STR && f->pattern)
            cJSON_AddStringToObject(s, "pattern", f->pattern);
        if (f->type == CN_INT || f->type == CN_FLOAT) {
            if (f->lt)
                cJSON_AddNumberToObject(s, "exclusiveMaximum", *f->lt);
            if (f->le)
                cJSON_AddNumberToObject(s, "maximum", *f->le);
            if (f->gt)
                cJSON_AddNumberToObject(s, "exclusiveMinimum", *f->gt);
            if (f->ge)
                cJSON_AddNumberToObject(s, "minimum", *f->ge);
        }
    }
    if (f->nullable) {
        /* pydantic v2: Optional[X] is anyOf X, null */
        cJSON *any = cJSON_CreateObject(), *alts = cJSON_AddArrayToObject(any, "anyOf");
        cJSON *null = cJSON_CreateObject();
        cJSON_AddStringToObject(null, "type", "null");
        cJSON_AddItemToArray(alts, s);
        cJSON_AddItemToArray(alts, null);
        s = any;
    }
    if (title)
        add_title(s, title);
    if (f->description)
        cJSON_AddStringToObject(s, "description", f->description);
    if ((d = default_json(f)) != NULL)
        cJSON_AddItemToObject(s, "default", d);
    return s;
}

/* FastAPI's ValidationError and HTTPValidationError components. */
static void add_validation_components(cJSON *components)
{
    cJSON *ve, *props, *loc, *alts, *s;

    /* once per document: a second validating route has them already */
    if (cJSON_HasObjectItem(components, "ValidationError"))
        return;
    ve = cJSON_CreateObject();
    cJSON_AddStringToObject(ve, "title", "ValidationError");
    cJSON_AddStringToObject(ve, "type", "object");
    props = cJSON_AddObjectToObject(ve, "properties");
    loc = cJSON_AddObjectToObject(props, "loc");
    cJSON_AddStringToObject(loc, "title", "Location");
    cJSON_AddStringToObject(loc, "type", "array");
    alts = cJSON_AddArrayToObject(cJSON_AddObjectToObject(loc, "items"), "anyOf");
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "string");
    cJSON_AddItemToArray(alts, s);
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "integer");
    cJSON_AddItemToArray(alts, s);
    s = cJSON_AddObjectToObject(props, "msg");
    cJSON_AddStringToObject(s, "title", "Message");
    cJSON_AddStringToObject(s, "type", "string");
    s = cJSON_AddObjectToObject(props, "type");
    cJSON_AddStringToObject(s, "title", "Error Type");
    cJSON_AddStringToObject(s, "type", "string");
    s = cJSON_AddObjectToObject(props, "input");
    cJSON_AddStringToObject(s, "title", "Input");
    s = cJSON_AddObjectToObject(props, "ctx");
    cJSON_AddStringToObject(s, "title", "Context");
    cJSON_AddStringToObject(s, "type", "object");
    s = cJSON_AddArrayToObject(ve, "required");
    cJSON_AddItemToArray(s, cJSON_CreateString("loc"));
    cJSON_AddItemToArray(s, cJSON_CreateString("msg"));
    cJSON_AddItemToArray(s, cJSON_CreateString("type"));
    cJSON_AddItemToObject(components, "ValidationError", ve);

    ve = cJSON_CreateObject();
    cJSON_AddStringToObject(ve, "title", "HTTPValidationError");
    cJSON_AddStringToObject(ve, "type", "object");
    s = cJSON_AddObjectToObject(cJSON_AddObjectToObject(ve, "properties"), "detail");
    cJSON_AddStringToObject(s, "title", "Detail");
    cJSON_AddStringToObject(s, "type", "array");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "items"), "$ref", REF "ValidationError");
    cJSON_AddItemToObject(components, "HTTPValidationError", ve);
}

static cJSON *json_content(cJSON *schema)
{
    cJSON *c = cJSON_CreateObject();

    cJSON_AddItemToObject(cJSON_AddObjectToObject(c, "application/json"), "schema", schema);
    return c;
}

static cJSON *ref(const char *name)
{
    cJSON *r = cJSON_CreateObject();
    char buf[160];

    snprintf(buf, sizeof buf, REF "%s", name);
    cJSON_AddStringToObject(r, "$ref", buf);
    return r;
}

/* "/users/{id:int}" -> "/users/{id}" (OpenAPI's path template). */
static char *path_template(const char *pattern)
{
    char *out = malloc(strlen(pattern) + 1), *o = out;
    bool skip = false;

    if (out == NULL)
        return NULL;
    for (const char *p = pattern; *p; p++) {
        if (*p == ':' && !skip && strchr(p, '}') &&
            (!strchr(p, '{') || strchr(p, '}') < strchr(p, '{')))
            skip = true;
        if (*p == '}')
            skip = false;
        if (!skip)
            *o++ = *p;
    }
    *o = 0;
    return out;
}

/* FastAPI's unique id without a function name: path's non-word characters
 * as '_', then the method: "/items/{id}" GET -> "items__id__get". */
static char *operation_id(const char *path, const char *method)
{
    size_t n = strlen(path), k = 0;
    char *id = malloc(n + strlen(method) + 8);

    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = path[i];
        if (k == 0 && c == '/')
            continue;
        id[k++] = isalnum((unsigned char)c) ? c : '_';
    }
    if (k == 0)
        k = (size_t)sprintf(id, "root");
    id[k++] = '_';
    for (const char *m = method; *m; m++)
        id[k++] = (char)tolower((unsigned char)*m);
    id[k] = 0;
    return id;
}

/* One route's operation object. */
static cJSON *operation(const cn__route *rt, const char *path, cJSON *components, cJSON *ids)
{
    const cn_route_opts *o = &rt->opts;
    cJSON *op = cJSON_CreateObject(), *responses, *params = cJSON_CreateArray();
    const char *method = cn__method_name(rt->method);
    char *oid = o->operation_id ? strdup(o->operation_id) : operation_id(path, method);
    char status[16];
    bool validates = false;
    const cn_field *const *fields;
    unsigned n;

    if (o->tags) {
        cJSON *t = cJSON_AddArrayToObject(op, "tags");
        for (size_t i = 0; o->tags[i]; i++)
            cJSON_AddItemToArray(t, cJSON_CreateString(o->tags[i]));
    }
    cJSON_AddStringToObject(op, "summary", o->summary ? o->summary : rt->label);
    if (o->description)
        cJSON_AddStringToObject(op, "description", o->description);
    if (oid) {
        /* operation ids are unique in a document */
        char *unique = oid;
        for (int k = 2; cJSON_HasObjectItem(ids, unique); k++) {
            if (unique != oid)
                free(unique);
            unique = malloc(strlen(oid) + 16);
            if (unique == NULL)
                break;
            sprintf(unique, "%s_%d", oid, k);
        }
        if (unique) {
            cJSON_AddStringToObject(op, "operationId", unique);
            cJSON_AddTrueToObject(ids, unique);
        }
        if (unique != oid)
            free(unique);
        free(oid);
    }
    /* the parameters as they are checked: the path's, then the declared ones */
    n = cn__decl_params(rt, &fields);
    for (unsigned i = 0; i < n; i++) {
        const cn_field *f = fields[i];
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", f->name);
        cJSON_AddStringToObject(p, "in", cn__in_name(f->in));
        cJSON_AddBoolToObject(p, "required", f->in == CN_PATH || f->required);
        cJSON_AddItemToObject(p, "schema", schema_of(f, components, f->name, 0));
        if (f->description)
            cJSON_AddStringToObject(p, "description", f->description);
        cJSON_AddItemToArray(params, p);
        validates = true;
    }
    if (cJSON_GetArraySize(params) > 0)
        cJSON_AddItemToObject(op, "parameters", params);
    else
        cJSON_Delete(params);
    if (o->body) {
        cJSON *rb = cJSON_AddObjectToObject(op, "requestBody");
        cJSON_AddItemToObject(rb, "content", json_content(schema_of(o->body, components, NULL, 0)));
        cJSON_AddBoolToObject(rb, "required", o->body->required);
        validates = true;
    }
    responses = cJSON_AddObjectToObject(op, "responses");
    snprintf(status, sizeof status, "%d", o->status_code ? o->status_code : 200);
    {
        cJSON *r = cJSON_AddObjectToObject(responses, status);
        cJSON_AddStringToObject(r, "description", "Successful Response");
        cJSON_AddItemToObject(r, "content", json_content(cJSON_CreateObject()));
    }
    for (const cn_response_doc *d = o->responses; d && d->status; d++) {
        cJSON *r;
        snprintf(status, sizeof status, "%d", d->status);
        if (cJSON_HasObjectItem(responses, status))
            continue;
        r = cJSON_AddObjectToObject(responses, status);
        cJSON_AddStringToObject(r, "description", d->description ? d->description : "");
        if (d->schema)
            cJSON_AddItemToObject(r, "content",
                                  json_content(schema_of(d->schema, components, NULL, 0)));
    }
    if (validates && !cJSON_HasObjectItem(responses, "422")) {
        cJSON *r = cJSON_AddObjectToObject(responses, "422");
        cJSON_AddStringToObject(r, "description", "Validation Error");
        cJSON_AddItemToObject(r, "content", json_content(ref("HTTPValidationError")));
        add_validation_components(components);
    }
    return op;
}

int cn_app_openapi_json(const cn_app *app, const cn_openapi_opts *opts, cJSON **out)
{
    static const cn_openapi_opts none;
    const cn__route **routes;
    size_t n;
    cJSON *doc, *info, *paths, *components, *schemas, *ids;

    if (app == NULL || out == NULL)
        return CN_EINVAL;
    if (opts == NULL)
        opts = &none;
    if (cn__router_routes(cn__app_router(app), &routes, &n) < 0)
        return CN_ENOMEM;
    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "openapi", "3.1.0");
    info = cJSON_AddObjectToObject(doc, "info");
    cJSON_AddStringToObject(info, "title", opts->title ? opts->title : "Canteen");
    if (opts->description)
        cJSON_AddStringToObject(info, "description", opts->description);
    cJSON_AddStringToObject(info, "version", opts->version ? opts->version : "0.1.0");
    paths = cJSON_AddObjectToObject(doc, "paths");
    components = cJSON_CreateObject();
    schemas = cJSON_AddObjectToObject(components, "schemas");
    ids = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++) {
        const cn__route *rt = routes[i];
        char *path;
        cJSON *item, *m;
        char method[16];
        if (rt->opts.hidden || rt->method == CN__M_HEAD)
            continue;
        path = path_template(rt->pattern);
        if (path == NULL)
            continue;
        item = cJSON_GetObjectItemCaseSensitive(paths, path);
        if (item == NULL)
            item = cJSON_AddObjectToObject(paths, path);
        snprintf(method, sizeof method, "%s", cn__method_name(rt->method));
        for (char *c = method; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        m = operation(rt, path, schemas, ids);
        cJSON_AddItemToObject(item, method, m);
        free(path);
    }
    free(routes);
    cJSON_Delete(ids);
    if (cJSON_GetArraySize(schemas) > 0)
        cJSON_AddItemToObject(doc, "components", components);
    else
        cJSON_Delete(components);
    *out = doc;
    return 0;
}

/* ---- serving it ---- */

static int doc_route(cn_req *req, cn_res *res)
{
    openapi *oa = cn_req_route_data(req);

    if (oa->doc == NULL) {
        cJSON *doc;
        int rc = cn_app_openapi_json(oa->app, &oa->opts, &doc);
        if (rc < 0)
            return rc;
        oa->doc = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        if (oa->doc == NULL)
            return CN_ENOMEM;
        oa->doc_len = strlen(oa->doc);
    }
    return cn_res_bytes(res, 200, oa->doc, oa->doc_len, "application/json");
}

/* Read one of Swagger UI's files, on a pool worker. */
typedef struct file_read {
    const char *path;
    char *data;
    size_t len;
} file_read;

static int read_file(void *arg)
{
    file_read *fr = arg;
    FILE *f = fopen(fr->path, "rb");
    long n;

    if (f == NULL)
        return CN_ENOENT;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return CN_ENOENT;
    }
    fr->data = malloc((size_t)n + 1);
    if (fr->data == NULL) {
        fclose(f);
        return CN_ENOMEM;
    }
    fr->len = fread(fr->data, 1, (size_t)n, f);
    fclose(f);
    return fr->len == (size_t)n ? 0 : CN_ENOENT;
}

/* Swagger UI file i, read once (on the pool) and kept: 0, CN_ENOENT, or an error. */
static int load_file(cn_req *req, openapi *oa, size_t i)
{
    file_read fr = {0};
    int rc;

    if (oa->files[i].loaded)
        return 0;
    if (oa->files[i].missing)
        return CN_ENOENT;
    fr.path = cn_req_sprintf(req, "%s/%s", oa->ui_dir, ui_files[i].name);
    if (fr.path == NULL)
        return CN_ENOMEM;
    rc = cn_to_thread(read_file, &fr);
    if (rc < 0) {
        free(fr.data);
        if (rc == CN_ENOENT)
            oa->files[i].missing = true;
        return rc;
    }
    if (oa->files[i].loaded) { /* another request got there first */
        free(fr.data);
        return 0;
    }
    oa->files[i].data = fr.data;
    oa->files[i].len = fr.len;
    oa->files[i].loaded = true;
    return 0;
}

static int ui_file_route(cn_req *req, cn_res *res)
{
    openapi *oa = cn_req_route_data(req);
    const char *name = cn_req_param(req, "file");

    for (size_t i = 0; i < NFILES; i++) {
        int rc;
        if (strcmp(name, ui_files[i].name) != 0)
            continue;
        rc = load_file(req, oa, i);
        if (rc == CN_ENOENT)
            return cn_res_raise(res, 404, "Not Found");
        if (rc < 0)
            return rc;
        cn_res_header(res, "Cache-Control", "public, max-age=3600");
        return cn_res_bytes(res, 200, oa->files[i].data, oa->files[i].len, ui_files[i].ctype);
    }
    return cn_res_raise(res, 404, "Not Found");
}

/* Text for an HTML page or a JavaScript string: nothing in it can end either. */
static char *escaped(cn_req *req, const char *s)
{
    char *out = cn_req_alloc(req, strlen(s) * 6 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (; *s; s++) {
        const char *e = NULL;
        switch (*s) {
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '&':
            e = "&amp;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        case '\\':
            e = "&#92;";
            break;
        default:
            break;
        }
        if (e) {
            strcpy(o, e);
            o += strlen(e);
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
    return out;
}

static int docs_route(cn_req *req, cn_res *res)
{
    openapi *oa = cn_req_route_data(req);
    const char *title = escaped(req, oa->opts.title ? oa->opts.title : "Canteen");
    const char *docs = escaped(req, oa->docs_url), *url = escaped(req, oa->openapi_url);
    const char *page;
    int rc = load_file(req, oa, 0);

    if (title == NULL || docs == NULL || url == NULL)
        return CN_ENOMEM;
    if (rc == CN_ENOENT) {
        const char *dir = escaped(req, oa->ui_dir);
        page = cn_req_sprintf(
            req,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s - Swagger UI</title>"
            "</head>\n<body><h1>Swagger UI is not installed</h1>\n<p>%s/swagger-ui-bundle.js was "
            "not found. Install npm's swagger-ui-dist package (<code>npm install -g "
            "swagger-ui-dist</code>; Canteen's <code>script/bootstrap</code> does), or point "
            "<code>CANTEEN_SWAGGER_UI_DIR</code> (or <code>cn_openapi_opts.swagger_ui_dir</code>) "
            "at its directory. The document itself is at <a "
            "href=\"%s\">%s</a>.</p></body></html>\n",
            title, dir ? dir : "", url, url);
        if (page == NULL)
            return CN_ENOMEM;
        return cn_res_bytes(res, 503, page, strlen(page), "text/html; charset=utf-8");
    }
    if (rc < 0)
        return rc;
    page = cn_req_sprintf(req,
                          "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
                          "<title>%s - Swagger UI</title>\n"
                          "<link rel=\"stylesheet\" href=\"%s/swagger-ui.css\">\n"
                          "<link rel=\"icon\" href=\"%s/favicon-32x32.png\">\n</head>\n<body>\n"
                          "<div id=\"swagger-ui\"></div>\n"
                          "<script src=\"%s/swagger-ui-bundle.js\"></script>\n"
                          "<script>\nwindow.ui = SwaggerUIBundle({\n  url: \"%s\",\n"
                          "  dom_id: \"#swagger-ui\",\n  deepLinking: true,\n"
                          "  presets: [SwaggerUIBundle.presets.apis],\n  layout: \"BaseLayout\"\n"
                          "});\n</script>\n</body>\n</html>\n",
                          title, docs, docs, docs, url);
    if (page == NULL)
        return CN_ENOMEM;
    return cn_res_bytes(res, 200, page, strlen(page), "text/html; charset=utf-8");
}

static void openapi_free(void *p)
{
    openapi *oa = p;

    free(oa->title);
    free(oa->version);
    free(oa->description);
    free(oa->openapi_url);
    free(oa->docs_url);
    free(oa->ui_dir);
    free(oa->doc);
    for (size_t i = 0; i < NFILES; i++)
        free(oa->files[i].data);
    free(oa);
}

/* The first of ui_dirs that has Swagger UI (the first if none has: for the
 * message /docs gives). A file check, made once, before the app runs. */
static const char *default_ui_dir(void)
{
    for (size_t i = 0; i < sizeof ui_dirs / sizeof ui_dirs[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/swagger-ui-bundle.js", ui_dirs[i]);
        if (access(path, R_OK) == 0)
            return ui_dirs[i];
    }
    return ui_dirs[0];
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int add_get(cn_app *app, const char *path, const char *suffix, cn_handler fn, openapi *oa)
{
    char *spec = malloc(strlen(path) + strlen(suffix) + 8);
    int rc;

    if (spec == NULL)
        return CN_ENOMEM;
    sprintf(spec, "GET %s%s", path, suffix);
    rc = cn__app_add_route(app, spec, fn, oa, &(cn_route_opts){.hidden = 1}, NULL);
    free(spec);
    return rc;
}

int cn_app_openapi(cn_app *app, const cn_openapi_opts *opts)
{
    static const cn_openapi_opts none;
    const char *env = getenv("CANTEEN_SWAGGER_UI_DIR");
    openapi *oa;
    int rc;

    if (app == NULL)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    if (opts == NULL)
        opts = &none;
    oa = calloc(1, sizeof(*oa));
    if (oa == NULL)
        return CN_ENOMEM;
    oa->app = app;
    oa->title = dup_or_null(opts->title);
    oa->version = dup_or_null(opts->version);
    oa->description = dup_or_null(opts->description);
    oa->openapi_url = strdup(opts->openapi_url ? opts->openapi_url : "/openapi.json");
    oa->docs_url = strdup(opts->docs_url ? opts->docs_url : "/docs");
    oa->ui_dir = strdup(opts->swagger_ui_dir ? opts->swagger_ui_dir
                        : env && *env        ? env
                                             : default_ui_dir());
    oa->opts = (cn_openapi_opts){
        .title = oa->title, .version = oa->version, .description = oa->description};
    rc = cn__app_adopt(app, openapi_free, oa);
    if (rc < 0) {
        openapi_free(oa);
        return rc;
    }
    if (oa->openapi_url == NULL || oa->docs_url == NULL || oa->ui_dir == NULL)
        return CN_ENOMEM;
    if (oa->openapi_url[0] == 0)
        return 0; /* no document, no docs */
    rc = add_get(app, oa->openapi_url, "", doc_route, oa);
    if (rc == 0 && oa->docs_url[0]) {
        rc = add_get(app, oa->docs_url, "", docs_route, oa);
        if (rc == 0)
            rc = add_get(app, oa->docs_url, "/{file}", ui_file_route, oa);
    }
    return rc;
}
