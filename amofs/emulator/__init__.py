"""amofs.emulator: a spec-faithful emulator of the amoCRM Files API, for the tests and ``amofs mount --demo``.

It shares no code with the client (import-linter keeps ``amofs.emulator`` from importing the rest of amofs).
Modules, leaves first:

  filenames  name/extension split, sanitized names, MIME type and file type
  options    EmulatorOptions: behaviour switches and injected faults; CLI flags and JSON conversion
  store      SQLite metadata + blob files under the data dir; sessions, tokens, entities, links
  render     JSON shapes: file and version models, entities, problem bodies
  traffic    request log, rate-limit bucket, block state
  httpd      listeners, threads, streaming request bodies, sendfile responses
  endpoints  the API: ROUTES table and one handler per endpoint
  app        per-request pipeline: block, rate limit, latency, faults, routing, auth, garbling, log
  server     Emulator (start/stop/seed/inspect) and main() for ``amofs emulator``
  demo       seed_demo(): the sample account of ``--demo-data``

See docs/EMULATOR.md for what is implemented and every reading of the spec taken.
"""
