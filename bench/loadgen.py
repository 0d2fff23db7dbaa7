"""What the benchmarks that drive the local stack share (bench/cost, bench/faults, bench/query,
bench/mcp): plain HTTP on 127.0.0.1, requests sent at a steady rate from a pool of threads, each
answer recorded; workerd's CPU time."""
import http.client
import json
import os
import queue
import random
import threading
import time
import uuid

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
BROWSER_KEY, SERVER_KEY = "pk_live_dev_bench_0001", "sk_live_dev_bench_0001"


def call(port, method, path, body=None, headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def clickhouse(port, sql):
    return call(port, "POST", "/", sql.encode())[1].decode().strip()


def workerd_ticks(pgid):
    """CPU time (utime + stime, in clock ticks) of the workerd processes in process group `pgid`
    (one `wrangler dev` and what it started)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == "workerd" and rest[2] == str(pgid):
            total += int(rest[11]) + int(rest[12])
    return total


def visitor_address():
    return f"81.2.{random.randint(1, 254)}.{random.randint(1, 254)}"


def browser_pages(n_events, custom_per_page=0, ids=None):
    """Visits of three pages from a browser on https://example.com, /mm.js fetched on each
    visit's first page; `custom_per_page` custom events after each pageview. `ids`: a callable
    giving each event its id (else the edge makes one)."""
    out, page = [], 0
    while sum(1 for r in out if r[1] == "/collect") < n_events:
        visitor, ip = str(uuid.uuid4()), visitor_address()
        hdr = {"Content-Type": "text/plain", "Origin": "https://example.com", "User-Agent": UA, "CF-Connecting-IP": ip}
        for p in range(3):
            if p == 0:
                out.append(("GET", "/mm.js", {"User-Agent": UA, "CF-Connecting-IP": ip}, None))
            page += 1
            evs = [{"type": "pageview", "url": f"https://example.com/p/{page % 40}?utm_source=news",
                    "referrer": "https://www.google.com/", "title": "A page"}]
            evs += [{"type": "event", "name": "signup_click" if k == 0 else "scroll_75",
                     "url": f"https://example.com/p/{page % 40}", "props": {"plan": "pro"}} for k in range(custom_per_page)]
            for ev in evs:
                ev.update({"key": BROWSER_KEY, "mm_aid": visitor})
                if ids:
                    ev["id"] = ids()
                out.append(("POST", "/collect", hdr, json.dumps(ev)))
    return out


def server_batches(n_batches, size=100, ids=None):
    """A server SDK's batches of `size` orders, each forwarding its visitor's address."""
    hdr = {"Content-Type": "application/json", "Authorization": f"Bearer {SERVER_KEY}"}
    out = []
    for _ in range(n_batches):
        batch = []
        for _ in range(size):
            ev = {"type": "event", "name": "order", "url": "https://example.com/checkout", "mm_aid": str(uuid.uuid4()),
                  "ip": visitor_address(), "user_agent": UA, "props": {"plan": "pro"},
                  "revenue": {"amount": "19.90", "currency": "EUR"}}
            if ids:
                ev["id"] = ids()
            batch.append(ev)
        out.append(("POST", "/collect", hdr, json.dumps({"batch": batch})))
    return out


class Result:
    def __init__(self):
        self.accepted_ids, self.statuses, self.latencies_ms, self.errors = [], {}, [], 0


def drive(port, requests, per_second, threads=16, timeout=150):
    """Sends `requests` ((method, path, headers, body)) at `per_second`, never retrying; returns
    the ids of the events answered 202, each status's count and each request's latency."""
    todo, out, lock = queue.Queue(), Result(), threading.Lock()
    start = time.time() + 0.2
    for i, r in enumerate(requests):
        todo.put((start + i / per_second, r))

    def work():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        while True:
            try:
                at, (method, path, headers, body) = todo.get_nowait()
            except queue.Empty:
                return
            time.sleep(max(0, at - time.time()))
            t = time.time()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                with lock:
                    out.errors += 1
                continue
            with lock:
                out.latencies_ms.append((time.time() - t) * 1000)
                out.statuses[resp.status] = out.statuses.get(resp.status, 0) + 1
                if path == "/collect" and resp.status == 202:
                    try:
                        out.accepted_ids += json.loads(data)["ids"]
                    except (ValueError, KeyError, TypeError):
                        pass  # not the edge (the no-op Worker answers anything)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return out
