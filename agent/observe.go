package agent

import (
	"context"
	"errors"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/telemetry"
	"github.com/mlop-ai/mlop-agent/sink"
)

// endpointOf names a batch kind for the telemetry labels.
func endpointOf(k kind) string {
	switch k {
	case kMetrics:
		return telemetry.EndpointMetrics
	case kData:
		return telemetry.EndpointData
	case kLogs:
		return telemetry.EndpointLogs
	default:
		return telemetry.EndpointFiles
	}
}

// statusOf extracts the HTTP status of a sink error (0 if none).
func statusOf(err error) int {
	var se *sink.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// lags reports every stream's lag, for /metrics.
func (a *Agent) lags() []telemetry.Lag {
	now := time.Now()
	streams := a.streamList()
	out := make([]telemetry.Lag, 0, len(streams))
	for _, s := range streams {
		path, bytes, oldest := s.lag(now)
		l := telemetry.Lag{Source: s.source, Path: path, BytesBehind: bytes}
		if !oldest.IsZero() {
			l.SecondsBehind = now.Sub(oldest).Seconds()
		}
		out = append(out, l)
	}
	return out
}

// OldestUnacked returns when the oldest data not yet acknowledged was read
// (zero when everything is acknowledged), for readiness.
func (a *Agent) OldestUnacked() time.Time {
	var oldest time.Time
	for _, l := range a.lagsOldest() {
		if oldest.IsZero() || l.Before(oldest) {
			oldest = l
		}
	}
	return oldest
}

func (a *Agent) lagsOldest() []time.Time {
	streams := a.streamList()
	var out []time.Time
	for _, s := range streams {
		s.mu.Lock()
		if len(s.pending) > 0 {
			out = append(out, s.pending[0].readAt)
		}
		s.mu.Unlock()
	}
	return out
}

// Flush sends every partial batch now and waits until the server has
// acknowledged everything read so far, or ctx ends (POST /flush, a
// preStop hook). Reading goes on meanwhile.
func (a *Agent) Flush(ctx context.Context) error {
	a.flushAll()
	if !a.waitIdle(ctx) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errors.New("flush interrupted")
	}
	return a.saveNow()
}

// login checks the API key once at start, so a wrong key stops the agent
// at once with a clear message and readiness has a first answer even when
// there is nothing to send.
func (a *Agent) login(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	org, err := a.client.Login(ctx)
	switch {
	case err == nil:
		a.log.Debug("API key accepted", "organization", org)
	case isFatal(err):
		a.unauthorized(err)
	case errors.Is(err, sink.ErrRouting):
		// The API URL answers, but not as mlop does (a 404 page, a
		// redirect): nothing sent there can arrive.
		a.fail(err)
	case ctx.Err() != nil:
	default:
		a.log.Warn("server not reachable yet; data waits and is sent when it is", "error", err)
	}
}
