"""A faithful simulator of the DCDN Cloud API (shared/dcdn-api.md), over real HTTP.

Pure Python; nothing here needs Django. ``state.py`` holds every rule and all state,
``catalog.py`` the seeded plans, images, regions and templates, ``server.py`` the HTTP
layer and ``SimulatorServer``; ``cli.py`` backs ``manage.py dcdn_simulator`` and
``python -m panel.dcdn.simulator``.

    server = SimulatorServer(port=0, create_seconds=0.2).start()
    server.api_url   # http://127.0.0.1:PORT/api/v1/compute
    server.reset(); server.stop()

Control endpoints (loopback only, not rate limited, not counted as API calls):

- ``POST /_sim/accounts`` ``{"token", "credits", "nodes": [ids]}`` -> 201; 400 bad body; 409 taken
- ``POST /_sim/reset`` -> 204: seeded state; faults back to the start-up values; counters and
  rate windows cleared
- ``POST /_sim/faults`` ``{"latency_ms", "error_rate", "malformed_rate", "down",
  "hang_after_commit_ms", "hang_after_commit_count"}`` -> 204; keys left out keep their values,
  except that a new ``hang_after_commit_ms`` without a count hangs every mutation (count null)
- ``GET /_sim/faults`` -> the current fault settings
- ``GET /_sim/calls`` -> ``{"total", "rate_limited", "by_token": {token: {"total",
  "rate_limited", "endpoints": {"GET /instances/{id}": n, ...}}}}``; ``POST /_sim/calls/reset``
- ``GET /_sim/state?token=...`` -> credits, instance count and statuses, balances, payouts

Fault order for an API request: the call is counted; latency is slept; ``down`` answers 503
and ``error_rate`` 500 before anything else happens; otherwise the request is served, a
``hang_after_commit_ms`` hang is slept after a POST/DELETE took effect, and ``malformed_rate``
replaces the answer (whatever it was, effect included) with a 200 whose body is not JSON.
"""
