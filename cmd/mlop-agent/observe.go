package main

import (
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/telemetry"
)

// endpointOfOp maps the client's operation names to telemetry endpoints.
func endpointOfOp(op string) string {
	switch op {
	case "send metrics":
		return telemetry.EndpointMetrics
	case "send data":
		return telemetry.EndpointData
	case "send logs":
		return telemetry.EndpointLogs
	case "request uploads":
		return telemetry.EndpointFiles
	case "put file":
		return telemetry.EndpointUpload
	case "create run", "resume run":
		return telemetry.EndpointCreateRun
	case "add log names":
		return telemetry.EndpointLogNames
	case "update tags":
		return telemetry.EndpointTags
	case "update config":
		return telemetry.EndpointConfig
	case "update status":
		return telemetry.EndpointStatus
	case "trigger":
		return telemetry.EndpointTrigger
	default:
		return telemetry.EndpointOther
	}
}

// clientHooks feeds every HTTP attempt to the metrics and the readiness
// tracker.
func clientHooks(tel *telemetry.Telemetry, ready *telemetry.ReadyTracker) (onRequest func(string, int, int, time.Duration), onRetry func(string, int, error)) {
	onRequest = func(op string, status, _ int, d time.Duration) {
		tel.Request(endpointOfOp(op), status, d)
		if strings.HasPrefix(op, "put file") {
			return // object storage, not the mlop server
		}
		now := time.Now()
		switch {
		case status >= 200 && status < 300:
			ready.ServerOK(now)
		case status == 401 || status == 403:
			ready.Unauthorized()
		case status <= 0 || status == 408 || status == 429 || status >= 500:
			ready.ServerError(nil, now)
		}
	}
	onRetry = func(op string, status int, _ error) {
		tel.Retry(endpointOfOp(op), status)
	}
	return onRequest, onRetry
}
