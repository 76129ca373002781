"""FastAPI + asyncpg peer for the TechEmpower tests in bench/run.

    DATABASE_URL=postgresql://... POOL_SIZE=8 /usr/bin/python3 -m uvicorn app:app \
        --loop uvloop --http httptools --workers 1 --port 8000 --no-access-log

Written the way FastAPI's own TechEmpower entry is: one asyncpg pool opened in
the lifespan, a connection acquired per request, prepared statements (asyncpg
caches them per connection), one SELECT per row, executemany for the updates,
a Jinja2 template for the fortunes, ujson responses.
"""
import os
from contextlib import asynccontextmanager
from operator import itemgetter
from random import randint, sample

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, UJSONResponse
from fastapi.templating import Jinja2Templates

READ_ROW_SQL = 'SELECT "randomnumber" FROM "world" WHERE id = $1'
WRITE_ROW_SQL = 'UPDATE "world" SET "randomnumber" = $1 WHERE id = $2'
FORTUNES_SQL = 'SELECT "id", "message" FROM "fortune"'
ADDITIONAL = [0, "Additional fortune added at request time."]
POOL_SIZE = int(os.environ.get("POOL_SIZE", "8"))

templates = Jinja2Templates(
    directory=os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates"))
cache = {}


def get_num_queries(queries):
    try:
        n = int(queries)
    except (TypeError, ValueError):
        return 1
    return max(1, min(500, n))


@asynccontextmanager
async def lifespan(app):
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=POOL_SIZE, max_size=POOL_SIZE)
    async with app.state.pool.acquire() as conn:
        for row_id, number in await conn.fetch('SELECT "id", "randomnumber" FROM "world"'):
            cache[row_id] = number
    yield
    await app.state.pool.close()


app = FastAPI()
# FastAPI 0.92 (Debian 12) takes no lifespan= argument yet; Starlette's router does.
app.router.lifespan_context = lifespan


@app.get("/json")
async def json_serialization():
    return UJSONResponse({"message": "Hello, World!"})


@app.get("/plaintext")
async def plaintext():
    return PlainTextResponse(b"Hello, World!")


@app.get("/db")
async def single_database_query():
    row_id = randint(1, 10000)
    async with app.state.pool.acquire() as conn:
        number = await conn.fetchval(READ_ROW_SQL, row_id)
    return UJSONResponse({"id": row_id, "randomNumber": number})


@app.get("/queries")
async def multiple_database_queries(queries=None):
    row_ids = [randint(1, 10000) for _ in range(get_num_queries(queries))]
    worlds = []
    async with app.state.pool.acquire() as conn:
        statement = await conn.prepare(READ_ROW_SQL)
        for row_id in row_ids:
            number = await statement.fetchval(row_id)
            worlds.append({"id": row_id, "randomNumber": number})
    return UJSONResponse(worlds)


@app.get("/fortunes")
async def fortunes(request: Request):
    async with app.state.pool.acquire() as conn:
        rows = await conn.fetch(FORTUNES_SQL)
    rows.append(ADDITIONAL)
    rows.sort(key=itemgetter(1))
    return templates.TemplateResponse("fortune.html", {"fortunes": rows, "request": request})


@app.get("/updates")
async def database_updates(queries=None):
    # distinct ids, sorted: concurrent requests then lock rows in one order
    row_ids = sorted(sample(range(1, 10001), get_num_queries(queries)))
    worlds = []
    async with app.state.pool.acquire() as conn:
        statement = await conn.prepare(READ_ROW_SQL)
        for row_id in row_ids:
            await statement.fetchval(row_id)
            worlds.append({"id": row_id, "randomNumber": randint(1, 10000)})
        await conn.executemany(WRITE_ROW_SQL, [(w["randomNumber"], w["id"]) for w in worlds])
    return UJSONResponse(worlds)


@app.get("/cached-queries")
async def cached_queries(count=None):
    worlds = []
    for _ in range(get_num_queries(count)):
        row_id = randint(1, 10000)
        worlds.append({"id": row_id, "randomNumber": cache[row_id]})
    return UJSONResponse(worlds)
