"""FastAPI peer for bench/run: the bench endpoints as the async guide writes them.

    UPSTREAM=http://127.0.0.1:9000 python3 -m uvicorn app:app --loop uvloop \
        --http httptools --workers 1 --port 8000 --no-access-log

async def routes run on the event loop; def routes run on Starlette's thread
pool (anyio's default limiter: 40 threads), like Canteen's sync routes.
/fetch-multiple needs httpx (Debian python3-httpx); without it the route is
absent and bench/run reports a dash.
"""
import asyncio
import os
import time

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

try:
    import httpx
except ImportError:  # the route is simply not served
    httpx = None

app = FastAPI()
UPSTREAM = os.environ.get("UPSTREAM", "")


def check_ms(ms: int) -> None:
    if ms < 0 or ms > 60000:
        raise HTTPException(422, "ms must be between 0 and 60000")


@app.get("/plaintext", response_class=PlainTextResponse)
async def plaintext():
    return "Hello, World!"


@app.get("/json")
async def json_route():
    return {"message": "Hello, World!"}


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.get("/sleep/{ms}")
async def sleep(ms: int):
    check_ms(ms)
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/sync-sleep/{ms}")
def sync_sleep(ms: int):
    check_ms(ms)
    time.sleep(ms / 1000)  # holds one pool thread
    return {"slept_ms": ms}


@app.get("/trap/blocking/{ms}")
async def trap_blocking(ms: int):
    check_ms(ms)
    time.sleep(ms / 1000)  # wrong on purpose: blocks the event loop
    return {"slept_ms": ms}


@app.get("/cpu/{n}")
def cpu(n: int):
    s = 0
    for i in range(n):
        s += i
    return {"source": "sync", "n": n, "result": s}


@app.get("/scenario")
async def scenario():
    t0 = time.monotonic()

    async def step(name, ms):
        s = time.monotonic()
        await asyncio.sleep(ms / 1000)
        return {"name": name, "wait_ms": ms, "took_ms": round((time.monotonic() - s) * 1000)}

    steps = await asyncio.gather(step("database", 200), step("compute", 1),
                                 step("external_api", 1000))
    return {"steps": steps, "total_ms": round((time.monotonic() - t0) * 1000)}


if httpx is not None and UPSTREAM:
    client = httpx.AsyncClient(base_url=UPSTREAM,
                               limits=httpx.Limits(max_connections=64,
                                                   max_keepalive_connections=64))

    @app.get("/fetch-multiple")
    async def fetch_multiple():
        r1, r2 = await asyncio.gather(client.get("/users/octocat"), client.get("/users/torvalds"))
        if r1.status_code != 200 or r2.status_code != 200:
            raise HTTPException(502, "upstream error")
        return [r1.json(), r2.json()]
