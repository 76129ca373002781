/*
 * canteen/declare.h -- declared parameters and bodies (FastAPI's typed
 * signatures and pydantic models), in plain C data. Included by canteen.h.
 *
 * A route says what it takes; Canteen checks every request against it
 * before the handler runs, answers 422 with the body FastAPI sends (pydantic
 * v2's error list) when it does not fit, and hands the handler typed,
 * validated values. The same declarations make the route's OpenAPI
 * operation (cn_app_openapi).
 *
 *     static const cn_field list_params[] = {
 *         {.name = "limit", .type = CN_INT, .dflt = "10", .ge = CN_NUM(1), .le = CN_NUM(100)},
 *         {.name = "x-token", .in = CN_HEADER, .type = CN_STR},
 *         {0},
 *     };
 *     static const cn_field item_fields[] = {
 *         {.name = "name", .type = CN_STR, .required = 1, .min_length = 1},
 *         {.name = "price", .type = CN_FLOAT, .required = 1, .gt = CN_NUM(0)},
 *         {.name = "tags", .type = CN_ARRAY, .items = &(const cn_field){.type = CN_STR},
 *          .dflt = "[]"},
 *         {0},
 *     };
 *     static const cn_field item = {.type = CN_OBJECT, .model = "Item", .required = 1,
 *                                   .fields = item_fields};
 *     ...
 *     cn_app_route_ex(app, "GET /items", list_items, NULL, &(cn_route_opts){.params =
 * list_params}); cn_app_route_ex(app, "POST /items", create_item, NULL,
 *                     &(cn_route_opts){.body = &item, .status_code = 201});
 *
 * In the handler, cn_req_int(req, "limit") is the validated value (or its
 * default), and cn_req_json gives the body as validated: numbers and
 * booleans given as strings converted as pydantic converts them, defaults
 * filled in, unknown keys dropped (or refused, or kept: `extra`).
 *
 * Path parameters: "GET /users/{id:int}" declares `id` (an int, required)
 * by itself; a field with `.in = CN_PATH` and the same name adds
 * constraints. Errors come in FastAPI's order: path, query, header,
 * cookie, then body, each in declaration order; all of them at once.
 */
#ifndef CANTEEN_DECLARE_H
#define CANTEEN_DECLARE_H

#ifdef __cplusplus
extern "C" {
#endif

/* What a parameter or field holds. */
typedef enum cn_type {
    CN_STR = 1, /* a string (characters counted as Unicode code points) */
    CN_INT,     /* a signed 64-bit integer */
    CN_FLOAT,   /* a double */
    CN_BOOL,    /* true/false (also "yes", "on", "1"... as pydantic reads them) */
    CN_ENUM,    /* one string of `values` */
    CN_OBJECT,  /* a JSON object with `fields` (body only) */
    CN_ARRAY,   /* a JSON array of `items` (body only) */
} cn_type;

/* Where a parameter comes from. */
typedef enum cn_in {
    CN_QUERY = 0, /* the query string (the default) */
    CN_PATH,      /* a {segment} of the route's path */
    CN_HEADER,    /* a header, named as sent ("x-token"), case-insensitive */
    CN_COOKIE,    /* a cookie */
} cn_in;

/* What an object does with keys it does not declare (pydantic's `extra`). */
typedef enum cn_extra {
    CN_EXTRA_IGNORE = 0, /* dropped from the validated body (the default) */
    CN_EXTRA_FORBID,     /* 422 extra_forbidden */
    CN_EXTRA_ALLOW,      /* kept as they came */
} cn_extra;

/* A number for a bound: `.ge = CN_NUM(1)`. */
#define CN_NUM(x) (&(const double){(x)})

/*
 * One parameter, one field of a body object, an array's item type, or a
 * whole body. Static data: Canteen keeps the pointer, never copies it.
 * Arrays of them end with an entry whose name is NULL ({0}).
 */
typedef struct cn_field {
    const char *name;                /* parameter or key; unused for items and bodies */
    cn_type type;                    /* required */
    cn_in in;                        /* parameters only */
    int required;                    /* absent: 422 "missing" */
    int nullable;                    /* body values: JSON null is accepted */
    const char *dflt;                /* when absent and not required: the default, written
                                      * as a query string would carry it ("10", "true",
                                      * "World"), or as JSON for objects and arrays ("[]");
                                      * NULL: absent stays absent (null in a body) */
    const char *description;         /* for OpenAPI */
    const double *ge, *gt, *le, *lt; /* numbers: bounds (CN_NUM) */
    size_t min_length, max_length;   /* strings (characters), arrays (items); 0: none */
    const char *pattern;             /* strings: a POSIX extended regex that must match
                                      * somewhere (anchor it with ^...$ for all) */
    const char *const *values;       /* CN_ENUM: the allowed strings, NULL-terminated */
    const struct cn_field *fields;   /* CN_OBJECT: its fields, ended by {0} */
    const struct cn_field *items;    /* CN_ARRAY: what each item is */
    cn_extra extra;                  /* CN_OBJECT: undeclared keys */
    const char *model;               /* CN_OBJECT: its schema's name in OpenAPI ("Item") */
    void *reserved[4];
} cn_field;

/* A response a route documents in OpenAPI, besides its success response. */
typedef struct cn_response_doc {
    int status;              /* 404, 409...; 0 ends an array of them */
    const char *description; /* "Item not found" */
    const cn_field *schema;  /* the body's shape, or NULL for FastAPI's {"detail": ...} */
} cn_response_doc;

/*
 * The validated value of declared parameter `name` (path, query, header or
 * cookie): what the request carried, converted, or the declaration's
 * default. Never awaits; any thread that holds the request. An absent
 * optional parameter without a default (or a name not declared) reads as
 * NULL, 0, 0.0 and 0; cn_req_has tells them apart.
 */
CN_EXTERN const char *cn_req_str(const cn_req *req, const char *name);
CN_EXTERN int64_t cn_req_int(const cn_req *req, const char *name);
CN_EXTERN double cn_req_float(const cn_req *req, const char *name);
CN_EXTERN int cn_req_bool(const cn_req *req, const char *name);

/* 1 if declared parameter `name` has a value (given, or its default), else 0. */
CN_EXTERN int cn_req_has(const cn_req *req, const char *name);

#ifdef __cplusplus
}
#endif

#endif
