"""Continuous /metrics scrapers in a process of their own, as Prometheus servers would be.

    python -m tests.scrapers URL SCRAPERS SECONDS MAX_SCRAPES

Starts SCRAPERS threads, each fetching URL back to back on one kept-alive connection
(http.client: the socket reads release the GIL), until stdin closes, SECONDS have passed
or MAX_SCRAPES scrapes were made in all. Prints `started` once the first scrape is in,
and at the end one JSON line: scrapes, failures, the largest body's bytes, and the seconds
the scrapers ran. A separate process, so the scrapers' own work is not done on the loop of the test
or benchmark that measures the proxy's clients. Loopback only: the URL must be 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def scrape_for(url: str, scrapers: int, seconds: float, max_scrapes: int) -> dict[str, float]:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", "scrapers only talk to loopback"
    began = time.monotonic()
    deadline = began + seconds
    stop = threading.Event()
    lock = threading.Lock()
    started = threading.Event()
    totals: dict[str, float] = {"scrapes": 0, "failures": 0, "max_bytes": 0}

    def claim() -> bool:
        with lock:
            if stop.is_set() or totals["scrapes"] + totals["failures"] >= max_scrapes or time.monotonic() >= deadline:
                return False
            totals["scrapes"] += 1  # counted as a scrape now, moved to failures if it fails
            return True

    def scraper() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            while claim():
                try:
                    connection.request("GET", parts.path or "/")
                    response = connection.getresponse()
                    body = response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    ok, body = False, b""
                    connection.close()
                with lock:
                    if ok:
                        totals["max_bytes"] = max(totals["max_bytes"], len(body))
                        if not started.is_set():
                            started.set()
                            print("started", flush=True)
                    else:
                        totals["scrapes"] -= 1
                        totals["failures"] += 1
        finally:
            connection.close()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # until EOF: whoever started us is done
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    threads = [threading.Thread(target=scraper, name=f"scraper {n}") for n in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals["seconds"] = time.monotonic() - began
    return totals


def main(argv: list[str]) -> int:
    url, scrapers, seconds, max_scrapes = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    print(json.dumps(scrape_for(url, scrapers, seconds, max_scrapes)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
