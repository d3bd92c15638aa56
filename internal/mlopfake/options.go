package mlopfake

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Service names one of the stand-in's listeners, mirroring the real topology.
type Service string

// The four listeners. Each serves only its own routes; anything else is 404.
const (
	ServiceAPI    Service = "api"    // backend (url_api): /api/...
	ServiceIngest Service = "ingest" // Rust ingest (url_ingest): /ingest/..., /files, /step
	ServicePy     Service = "py"     // Python helper (url_py): /api/runs/trigger, /api/runs/alert
	ServiceS3     Service = "s3"     // object store behind the presigned URLs
)

// AllServices lists every listener, in start order.
var AllServices = []Service{ServiceAPI, ServiceIngest, ServicePy, ServiceS3}

// ParseService converts a flag or JSON value to a Service.
func ParseService(s string) (Service, error) {
	for _, svc := range AllServices {
		if string(svc) == s {
			return svc, nil
		}
	}
	return "", fmt.Errorf("unknown service %q (want api, ingest, py or s3)", s)
}

// Mode selects how much the stand-in does.
type Mode string

const (
	// ModeStrict validates every request like the real server and stores
	// everything for inspection. The default.
	ModeStrict Mode = "strict"
	// ModeCount is a minimal receiver for benchmarks: every endpoint answers
	// a valid 200 as fast as possible, only NDJSON lines and metric points
	// are counted, nothing is validated or stored.
	ModeCount Mode = "count"
)

// DefaultKey is the API key accepted when Options.Keys is empty.
const DefaultKey = "mlpi_testkey"

// Options configures Start. The zero value is usable.
type Options struct {
	// Listen addresses. Empty means "127.0.0.1:0" (a free loopback port).
	APIAddr, IngestAddr, PyAddr, S3Addr string

	// Keys are the API keys of the organisation OrgSlug. Empty means
	// []string{DefaultKey}. Every key must start with mlps_ or mlpi_ and use
	// only [A-Za-z0-9._-], like keys the real server issues.
	Keys []string
	// ForeignKeys belong to a second organisation, "other-org", so tests can
	// prove that runs of one organisation are invisible (404) to another.
	ForeignKeys []string
	// OrgSlug is the organisation slug of Keys. Default "test-org".
	OrgSlug string

	// Mode is ModeStrict (default) or ModeCount.
	Mode Mode

	// AppURL is the web UI base used in run URLs (BETTER_AUTH_URL).
	// Default "http://127.0.0.1:3000", where a real self-hosted server's web
	// app listens; the stand-in serves nothing there.
	AppURL string
	// AppAtStandin puts the stand-in's own run pages in run URLs instead of
	// AppURL: the base becomes <api>/_standin/app, and GET
	// <base>/o/{org}/projects/{project}/{sqid} answers the run's summary as
	// JSON. The path after the base is the real server's either way; only
	// the base, a deployment setting of the real server, changes. For people
	// running the stand-in by hand (the demo, cmd/mlopfake), so the link in
	// the agent's log answers.
	AppAtStandin bool
	// Bucket is the S3 bucket in presigned URLs. Default "mlop".
	Bucket string
	// FirstRunID is the id of the first created run. Default 1001, so a
	// run id never equals the per-project run number by accident.
	FirstRunID int64

	// Faults are the initial fault-injection settings; see SetFaults.
	Faults Faults

	// ReapInterval, when > 0, runs the py service's stale-run reaper at this
	// interval (the real one runs every 60 s): RUNNING runs without a
	// heartbeat for 150 s (or without any activity for 30 min when they never
	// sent a heartbeat) become FAILED. Off by default; see ReapStaleRuns.
	ReapInterval time.Duration

	// MaxRequestLog bounds the Requests() log (oldest dropped). Default
	// 100000. Rejections are bounded by the same number.
	MaxRequestLog int

	// Logger receives one line per rejection and lifecycle events.
	// Default: discard.
	Logger *slog.Logger
}

// Faults configures chaos for every listener in Services (all when empty).
// Decisions come from a hash of Seed, the listener and the request's sequence
// number on that listener, so a seeded run with the same request order makes
// the same decisions. The /_standin/ endpoints are never faulted.
type Faults struct {
	// FailRate is the probability a request is answered, unprocessed, with
	// 500, 503 or 429 (with Retry-After: 1), chosen evenly.
	FailRate float64 `json:"failRate"`
	// AcceptThenFailRate is the probability a request is fully processed and
	// stored, and then answered 500 anyway (a lost acknowledgement).
	AcceptThenFailRate float64 `json:"acceptThenFailRate"`
	// Latency is added before every faulted-service request is handled.
	Latency time.Duration `json:"-"`
	// LatencyMS is Latency in milliseconds, for JSON.
	LatencyMS int64 `json:"latencyMs"`
	// Seed makes decisions reproducible. 0 is a valid seed.
	Seed int64 `json:"seed"`
	// Services limits faults to these listeners; empty means all.
	Services []Service `json:"services,omitempty"`
}

func (f Faults) normalize() (Faults, error) {
	if f.LatencyMS != 0 && f.Latency == 0 {
		f.Latency = time.Duration(f.LatencyMS) * time.Millisecond
	}
	f.LatencyMS = f.Latency.Milliseconds()
	var errs []error
	if f.FailRate < 0 || f.FailRate > 1 {
		errs = append(errs, fmt.Errorf("failRate %v: must be within [0, 1]", f.FailRate))
	}
	if f.AcceptThenFailRate < 0 || f.AcceptThenFailRate > 1 {
		errs = append(errs, fmt.Errorf("acceptThenFailRate %v: must be within [0, 1]", f.AcceptThenFailRate))
	}
	if f.FailRate+f.AcceptThenFailRate > 1 {
		errs = append(errs, fmt.Errorf("failRate + acceptThenFailRate = %v: must not exceed 1", f.FailRate+f.AcceptThenFailRate))
	}
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v: must not be negative", f.Latency))
	}
	for _, s := range f.Services {
		if _, err := ParseService(string(s)); err != nil {
			errs = append(errs, err)
		}
	}
	return f, errors.Join(errs...)
}

// ErrBadKey reports a configured key the real server could never have issued.
var ErrBadKey = errors.New("invalid API key format")

func validKeyFormat(k string) error {
	if !strings.HasPrefix(k, "mlps_") && !strings.HasPrefix(k, "mlpi_") {
		return fmt.Errorf("key %q: %w: must start with mlps_ or mlpi_", k, ErrBadKey)
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key %q: %w: only [A-Za-z0-9._-] allowed", k, ErrBadKey)
		}
	}
	return nil
}
