// Package api is the HTTP API that video management systems (VMS) poll: JSON
// under /api/v1 with bearer tokens, MP4 export with HTTP Range support,
// server-sent events, Prometheus /metrics and /healthz, and the OpenAPI
// document that describes it (served at /api/v1/openapi.json, kept true by a
// test).
//
// The package owns the wire format (the JSON view types in this package) and
// request handling only. Everything it shows comes from a Backend, which the
// appliance implements over the recorder, the store and the configuration.
//
// Concurrency: a Server is safe for concurrent use; each request runs on its
// own goroutine (net/http). Run owns the listener and the HTTP server and
// returns once both are closed.
package api
