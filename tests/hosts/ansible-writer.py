"""A client that writes in a loop, for tests/hosts/ansible.sh: one put every 50 ms through etcd's
JSON gateway (POST /v3/kv/put) over https with a client certificate, on one kept-alive
connection (a new etcdctl process per write would take a core of this 2-core machine away from
the playbook it watches). A write goes to the endpoint that answered last, and to the next one
when that fails (2 s each); it fails when no endpoint takes it. Prints "ok|fail TIME_MS KEY" per
write, flushed, until the stop file exists or the time limit passes.

    python3 ansible-writer.py CA CERT KEY STOP_FILE LIMIT_SECONDS HOST:PORT...
"""

import base64
import http.client
import json
import os
import ssl
import sys
import time


def main():
    ca, cert, key, stop, limit = sys.argv[1:6]
    endpoints = sys.argv[6:]
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    connections = {}
    current = 0
    end = time.monotonic() + float(limit)
    i = 0
    while not os.path.exists(stop) and time.monotonic() < end:
        i += 1
        key_name = f"w/{i}"
        body = json.dumps(
            {
                "key": base64.b64encode(key_name.encode()).decode(),
                "value": base64.b64encode(str(i).encode()).decode(),
            }
        )
        written = False
        for attempt in range(len(endpoints)):
            index = (current + attempt) % len(endpoints)
            endpoint = endpoints[index]
            try:
                if endpoint not in connections:
                    host, port = endpoint.rsplit(":", 1)
                    connections[endpoint] = http.client.HTTPSConnection(host, int(port), timeout=2, context=context)
                connection = connections[endpoint]
                connection.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                if response.status == 200 and "header" in json.loads(answer):
                    written = True
                    current = index
                    break
            except (OSError, http.client.HTTPException, ValueError):
                pass
            # Whatever went wrong, the next try on this endpoint starts on a new connection.
            if endpoint in connections:
                connections.pop(endpoint).close()
        print(f"{'ok' if written else 'fail'} {int(time.time() * 1000)} {key_name}", flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
