"""A push query's results into a pandas DataFrame: kafkaml vs the Python way, in one run.

A local HTTP server (a separate process; a stand-in, as no ksqlDB server runs here) answers
``POST /query`` with a synthesized ksqlDB-format response of ``--rows`` rows (header, rows,
final message; HTTP/1.1 chunked, 64 KiB chunks). Readers:

- kafkaml: ``Client(url).query(sql).to_pandas()`` (parsing and Arrow decoding in Rust);
- the Python way: ``requests`` streaming + ``json.loads`` per row + ``pandas.DataFrame``.

    python benchmarks/bench_ksql.py --rows 200000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Timer, machine, save  # noqa: E402

SCHEMA = "`ID` BIGINT KEY, `SENSOR` STRING, `V1` DOUBLE, `V2` DOUBLE, `V3` DOUBLE, `V4` DOUBLE, `AMOUNT` DOUBLE, `CLASS` INTEGER"
NAMES = ["ID", "SENSOR", "V1", "V2", "V3", "V4", "AMOUNT", "CLASS"]


def response_body(rows: int) -> bytes:
    parts = ['[{"header":{"queryId":"transient_BENCH_1","schema":' + json.dumps(SCHEMA) + "}},\n"]
    for i in range(rows):
        columns = [i, f"sensor-{i % 97}", i * 0.001, -1.5 + i % 13, 2.25 * (i % 7), 0.125, 10.0 + i % 1000, i % 2]
        parts.append('{"row":{"columns":' + json.dumps(columns) + "}},\n")
    parts.append('{"finalMessage":"Limit Reached"}]\n')
    return "".join(parts).encode()


def serve(rows: int) -> None:
    body = response_body(rows)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 65536):
                chunk = body[start : start + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def kafkaml_way(url: str) -> int:
    from kafkaml.ksql import Client

    frame = Client(url).query("SELECT * FROM READINGS EMIT CHANGES;").to_pandas()
    return len(frame)


def python_way(url: str) -> int:
    import pandas as pd
    import requests

    body = {"ksql": "SELECT * FROM READINGS EMIT CHANGES;", "streamsProperties": {}}
    rows = []
    names = NAMES
    with requests.post(f"{url}/query", json=body, stream=True) as response:
        for line in response.iter_lines():
            line = line.strip().rstrip(b",").lstrip(b"[").rstrip(b"]")
            if not line:
                continue
            element = json.loads(line)
            if "row" in element:
                rows.append(element["row"]["columns"])
    return len(pd.DataFrame(rows, columns=names))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.rows)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--rows", str(args.rows)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        results: dict[str, float] = {}
        for name, reader in [("kafkaml", kafkaml_way), ("requests + json.loads + DataFrame", python_way)]:
            best = float("inf")
            for _ in range(args.repeat):
                with Timer() as timer:
                    count = reader(url)
                assert count == args.rows, (name, count)
                best = min(best, timer.seconds)
            results[name] = best
            print(f"{name:36s} {best:7.3f} s  {args.rows / best:12,.0f} rows/s", flush=True)
        ratio = results["requests + json.loads + DataFrame"] / results["kafkaml"]
        print(f"kafkaml is {ratio:.1f}x faster")
        save(
            "ksql",
            {
                "rows": args.rows,
                "best_of": args.repeat,
                "seconds": results,
                "speedup": round(ratio, 2),
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
            },
        )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
