package mlopfake

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file is the py (FastAPI) listener: heartbeats/cancel poll and alerts.

// maxHeartbeatTimes bounds the timestamps kept per run (the count is exact).
const maxHeartbeatTimes = 10000

func (s *Server) pyHandler() http.Handler {
	type route struct {
		method string
		fn     func(http.ResponseWriter, *http.Request)
	}
	routes := map[string]route{
		"/healthz":          {http.MethodGet, s.pyHealth},
		"/api/runs/trigger": {http.MethodPost, s.pyTrigger},
		"/api/runs/alert":   {http.MethodPost, s.pyAlert},
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := routes[r.URL.Path]
		if !ok {
			s.reject(ServicePy, r, http.StatusNotFound, fmt.Sprintf("no route %s %s on the py listener", r.Method, r.URL.Path))
			writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
			return
		}
		if rt.method != r.Method {
			s.reject(ServicePy, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
			w.Header().Set("Allow", rt.method)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": "Method Not Allowed"})
			return
		}
		rt.fn(w, r)
	})
}

func (s *Server) pyHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type fastAPIIssue struct {
	Type  string `json:"type"`
	Loc   []any  `json:"loc"`
	Msg   string `json:"msg"`
	Input any    `json:"input"`
}

// pyBody decodes an embedded-Body FastAPI request; on a 422 it has written
// the response.
func (s *Server) pyBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		raw = nil
	}
	var body map[string]any
	ct := r.Header.Get("Content-Type")
	if ct == "" || strings.Contains(strings.ToLower(ct), "json") {
		if len(raw) > 0 {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				issues := []fastAPIIssue{{Type: "json_invalid", Loc: []any{"body", 0}, Msg: "JSON decode error", Input: map[string]any{}}}
				s.reject(ServicePy, r, http.StatusUnprocessableEntity, "body is not valid JSON")
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": issues})
				return nil, false
			}
			body, _ = v.(map[string]any)
		}
	}
	return body, true
}

// pyRunID validates the int runId field with pydantic's lax rules: an
// integer, an integral float or a numeric string.
func pyRunID(body map[string]any) (int64, *fastAPIIssue) {
	v, ok := body["runId"]
	if !ok {
		return 0, &fastAPIIssue{Type: "missing", Loc: []any{"body", "runId"}, Msg: "Field required", Input: nil}
	}
	switch t := v.(type) {
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<62 {
			return int64(t), nil
		}
		return 0, &fastAPIIssue{Type: "int_from_float", Loc: []any{"body", "runId"}, Msg: "Input should be a valid integer, got a number with a fractional part", Input: t}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, &fastAPIIssue{Type: "int_parsing", Loc: []any{"body", "runId"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v}
}

func (s *Server) pyCheck(w http.ResponseWriter, r *http.Request, body map[string]any, extra ...*fastAPIIssue) (*run, bool) {
	id, issue := pyRunID(body)
	var issues []fastAPIIssue
	if issue != nil {
		issues = append(issues, *issue)
	}
	for _, e := range extra {
		if e != nil {
			issues = append(issues, *e)
		}
	}
	if issues != nil {
		s.reject(ServicePy, r, http.StatusUnprocessableEntity, "body validation: "+issues[0].Msg)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": issues})
		return nil, false
	}
	o, problem := s.pyAuth(r)
	if problem != "" {
		s.reject(ServicePy, r, http.StatusUnauthorized, "auth: "+problem)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": "Invalid or expired API key for this run"})
		return nil, false
	}
	s.mu.Lock()
	rn := s.lookupRun(o, id)
	s.mu.Unlock()
	if rn == nil {
		s.reject(ServicePy, r, http.StatusNotFound, fmt.Sprintf("run %d not found in org %s", id, o.slug))
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Run not found"})
		return nil, false
	}
	return rn, true
}

func (s *Server) pyTrigger(w http.ResponseWriter, r *http.Request) {
	body, ok := s.pyBody(w, r)
	if !ok {
		return
	}
	rn, ok := s.pyCheck(w, r, body)
	if !ok {
		return
	}
	s.mu.Lock()
	rn.heartbeatCount++
	rn.heartbeats = append(rn.heartbeats, time.Now())
	if len(rn.heartbeats) > maxHeartbeatTimes {
		rn.heartbeats = append(rn.heartbeats[:0], rn.heartbeats[len(rn.heartbeats)-maxHeartbeatTimes/2:]...)
	}
	status := rn.status
	s.mu.Unlock()
	s.cnt.heartbeats.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{"status": status, "triggers": nil})
}

func (s *Server) pyAlert(w http.ResponseWriter, r *http.Request) {
	body, ok := s.pyBody(w, r)
	if !ok {
		return
	}
	var alertIssue *fastAPIIssue
	alert, isMap := body["alert"].(map[string]any)
	switch {
	case !hasKey(body, "alert"):
		alertIssue = &fastAPIIssue{Type: "missing", Loc: []any{"body", "alert"}, Msg: "Field required", Input: nil}
	case !isMap:
		alertIssue = &fastAPIIssue{Type: "dict_type", Loc: []any{"body", "alert"}, Msg: "Input should be a valid dictionary", Input: body["alert"]}
	default:
		for k, v := range alert {
			switch v.(type) {
			case map[string]any, []any:
				alertIssue = &fastAPIIssue{Type: "string_type", Loc: []any{"body", "alert", k}, Msg: "Input should be a valid string", Input: v}
			}
		}
	}
	rn, ok := s.pyCheck(w, r, body, alertIssue)
	if !ok {
		return
	}
	s.mu.Lock()
	rn.alerts = append(rn.alerts, deepCopy(alert).(map[string]any))
	s.mu.Unlock()
	s.cnt.alerts.Add(1)
	if u, _ := alert["url"].(string); u != "" {
		// The real handler raises HTTPException(302) inside its try block,
		// which its own except clause turns into a 500.
		s.reject(ServicePy, r, http.StatusInternalServerError, "alert with url: the real service answers 500")
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": "Failed to send alert: 302: " + u})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
}
