// Package mlopfake is a strict stand-in for the mlop/pluto server, for tests.
// It is a TEST DOUBLE, not the mlop server.
//
// The real server is three services plus S3 (Trainy-ai/pluto-server: the
// Rust ingest, the Hono backend in web/server, the FastAPI py service, MinIO;
// the project's wire-protocol note mlop-api.md cites them). The stand-in
// serves each
// on its own loopback listener, and each listener serves only its own routes,
// so an agent that sends to the wrong base URL fails the way it would in
// production:
//
//   - api (url_api, the Hono backend): /api/slug, /api/runs/{create,resume,
//     status/update,logName/add,tags/update,config/update,notes/update,
//     modelGraph/create}, GET /api/health; the read API, GET
//     /api/runs/{auth/validate,list,details/{runId},metrics/raw,metrics,
//     metric-names,files,logs,status/history} with the real zod query
//     validation and limits, served from the same store (read.go);
//     responses gzip-compressed when the client accepts gzip
//     (hono/compress);
//   - ingest (url_ingest, the Rust service): /ingest/{metrics,data,logs}
//     (NDJSON, strict serde models, 422 after storing the lines before a
//     bad one), /files (presigned URLs), /step, GET /health;
//   - py (url_py, FastAPI): /api/runs/trigger (heartbeat), /api/runs/alert,
//     GET /healthz;
//   - s3: PUT/GET of the presigned URLs /files hands out.
//
// The aim is to reject what the real server rejects and to store what it
// stores: metric rows raw (mlop_metrics) with a deduplicated view per
// (project, run, metric, step) where the largest time wins
// (mlop_metrics_v2, ReplacingMergeTree(time)); data, log and file rows
// without deduplication. Every validation rejection is recorded with its
// reason (Server.Rejected), every request is logged (Server.Requests).
//
// Deliberate choices where the sources leave room:
//   - NDJSON lines that are blank after trimming are skipped, as
//     ingest/src/processors/stream.rs does (checked in the source); a last
//     line without '\n' is processed as the "final" line.
//   - A JSON -0 is rejected for u64 fields (simd-json reads it as a float).
//   - createdAt/updatedAt/runId/forkStep accept any JSON number like zod's
//     z.number(); a fractional runId/forkRunId/forkStep then makes Prisma or
//     BigInt() throw in the real handler, which the stand-in answers with
//     Hono's 500 "Internal Server Error".
//   - runName/externalId longer than 255 characters give the real handler's
//     500 {"error":"Failed to create run"} (Postgres varchar(255)).
//   - A backend POST without a JSON Content-Type is answered 500: the real
//     @hono/zod-openapi skips validation of such a body and the handler
//     crashes on the missing fields.
//
// For chaos tests: Faults (fail rate with 500/503/429, accept-then-500,
// latency; seeded and reproducible), and Down/Up/DownFor, which really close
// the listeners and their connections and re-listen on the same ports. Keys
// can be revoked or expired at runtime (SetKeyState), a run cancelled from
// "the UI" (CancelRun), and the py service's stale-run reaper applied
// (ReapStaleRuns, or Options.ReapInterval).
//
// ModeCount turns the stand-in into a minimal receiver for benchmarks: valid
// 200s everywhere, NDJSON lines and metric points counted, nothing stored.
//
// For verification tests: deliberate damage to stored data — drop metric
// rows, change a value, add a row, remove a tag, change config, unregister a
// log name (alter.go; Go methods and POST /_standin/alter).
//
// The /_standin/ endpoints on the api listener are for inspection and
// control; they are not part of the mlop API. Run URLs keep the real
// server's shape, {AppURL}/o/{org}/projects/{project}/{sqid}, with AppURL
// standing for the web app, which the stand-in does not have; with
// Options.AppAtStandin the base is the stand-in's own /_standin/app, which
// answers each run URL with the run's summary.
package mlopfake
