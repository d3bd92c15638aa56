package mlop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

// Login checks the API key: POST {api}/api/slug, and returns the slug of the
// key's organization (mlop-api.md §1.3).
func (c *Client) Login(ctx context.Context) (orgSlug string, err error) {
	var resp struct {
		Organization struct {
			Slug string `json:"slug"`
		} `json:"organization"`
	}
	err = c.do(ctx, &request{op: "login", method: "POST", url: c.api + "/api/slug", ctype: ctypeJSON, final: true}, &resp)
	if errors.Is(err, sink.ErrRouting) {
		return "", fmt.Errorf("%s is not an mlop API (check url_api): %w", c.api, err)
	}
	if err != nil {
		return "", err
	}
	if resp.Organization.Slug == "" {
		return "", fmt.Errorf("login: response has no organization slug")
	}
	return resp.Organization.Slug, nil
}

// CreateRun describes a run to create (mlop-api.md §2.1).
type CreateRun struct {
	RunName     string // required, at most 255 characters
	ProjectName string // "" means Options.Project; the server creates the project
	// ExternalID is the idempotency key: creating a run with an ExternalID
	// that exists in the project returns that run with Resumed set (and
	// deep-merges Config into it). At most 255 characters; "" sends none.
	ExternalID string
	Config     map[string]any // initial config; empty sends null
	Tags       []string       // initial tags, at most 50; ignored by the server when the run is resumed
	CreatedAt  int64          // epoch ms for backfills; 0 sends null (the server's now)
	UpdatedAt  int64          // epoch ms; 0 sends null
	// ForkRunID, when not 0, makes the run a fork of that run at ForkStep;
	// InheritConfig and InheritTags are sent only with it.
	ForkRunID                  int64
	ForkStep                   int64
	InheritConfig, InheritTags bool
	// SystemMetadata holds extra keys for the run's systemMetadata (the
	// source file, a Neptune project, ...). The agent's own keys win.
	SystemMetadata map[string]any
}

// Run is the server's view of a run after create or resume. The legacy
// server sends only ID, ProjectName, OrganizationSlug and URL; the other
// fields are then zero.
type Run struct {
	ID               int64  `json:"runId"`
	Number           int    `json:"number"`    // per-project counter, from 1
	DisplayID        string `json:"displayId"` // e.g. "MPR-1"
	ProjectName      string `json:"projectName"`
	OrganizationSlug string `json:"organizationSlug"`
	URL              string `json:"url"`
	Resumed          bool   `json:"resumed"` // the run existed (same externalId) or was resumed
	ForkedFromRunID  *int64 `json:"forkedFromRunId"`
	ForkStep         *int64 `json:"forkStep"`
}

// createRunBody is the wire form of CreateRun. Nullable fields are pointers
// so that they encode as null; optional fields are omitted when unset.
type createRunBody struct {
	RunName        string   `json:"runName"`
	ProjectName    string   `json:"projectName"`
	ExternalID     string   `json:"externalId,omitempty"`
	Config         *string  `json:"config"`
	LoggerSettings string   `json:"loggerSettings"`
	SystemMetadata string   `json:"systemMetadata"`
	Tags           []string `json:"tags"`
	CreatedAt      *int64   `json:"createdAt"`
	UpdatedAt      *int64   `json:"updatedAt"`
	ForkRunID      *int64   `json:"forkRunId,omitempty"`
	ForkStep       *int64   `json:"forkStep,omitempty"`
	InheritConfig  *bool    `json:"inheritConfig,omitempty"`
	InheritTags    *bool    `json:"inheritTags,omitempty"`
}

// CreateRun creates a run, or returns the existing one with the same
// ExternalID in the project (Run.Resumed), via POST {api}/api/runs/create.
//
// loggerSettings and systemMetadata (JSON strings on the wire) identify the
// agent: loggerSettings is {"agent":"mlop-agent","version":V}, systemMetadata
// is {"agent":"mlop-agent","version":V,"hostname":H,"os":GOOS,"arch":GOARCH}
// plus spec.SystemMetadata. The SDK sends its own, richer shapes; the server
// stores both as opaque JSON.
func (c *Client) CreateRun(ctx context.Context, spec CreateRun) (Run, error) {
	const op = "create run"
	body := createRunBody{
		RunName:     spec.RunName,
		ProjectName: spec.ProjectName,
		ExternalID:  spec.ExternalID,
		Tags:        spec.Tags,
	}
	if body.ProjectName == "" {
		body.ProjectName = c.project
	}
	switch {
	case strings.TrimSpace(body.RunName) == "":
		return Run{}, invalidf("%s: run name is blank", op)
	case utf8.RuneCountInString(body.RunName) > maxNameLen:
		return Run{}, invalidf("%s: run name is longer than %d characters", op, maxNameLen)
	case body.ProjectName == "":
		return Run{}, invalidf("%s: no project name", op)
	case utf8.RuneCountInString(body.ExternalID) > maxNameLen:
		return Run{}, invalidf("%s: external id is longer than %d characters", op, maxNameLen)
	case spec.CreatedAt < 0 || spec.UpdatedAt < 0:
		return Run{}, invalidf("%s: negative createdAt or updatedAt", op)
	}
	if err := checkTags(op, spec.Tags); err != nil {
		return Run{}, err
	}
	if body.Tags == nil {
		body.Tags = []string{}
	}
	if len(spec.Config) > 0 {
		s, err := configJSON(spec.Config)
		if err != nil {
			return Run{}, fmt.Errorf("%s: encode config: %w", op, err)
		}
		body.Config = &s
	}
	if spec.CreatedAt != 0 {
		body.CreatedAt = &spec.CreatedAt
	}
	if spec.UpdatedAt != 0 {
		body.UpdatedAt = &spec.UpdatedAt
	}
	if spec.ForkRunID != 0 {
		body.ForkRunID, body.ForkStep = &spec.ForkRunID, &spec.ForkStep
		if spec.InheritConfig {
			body.InheritConfig = &spec.InheritConfig
		}
		if spec.InheritTags {
			body.InheritTags = &spec.InheritTags
		}
	}
	ls, sm := c.systemInfo()
	for k, v := range spec.SystemMetadata {
		if _, ours := sm[k]; !ours {
			sm[k] = v
		}
	}
	var err error
	if body.LoggerSettings, err = configJSON(ls); err != nil {
		return Run{}, fmt.Errorf("%s: encode logger settings: %w", op, err)
	}
	if body.SystemMetadata, err = configJSON(sm); err != nil {
		return Run{}, fmt.Errorf("%s: encode system metadata: %w", op, err)
	}
	return c.postRun(ctx, op, "/api/runs/create", body)
}

// ResumeRun reopens a run by its numeric id via POST {api}/api/runs/resume
// (pluto-server only; the legacy server answers 404). A finished run is set
// back to RUNNING. An unknown run is sink.ErrNotFound.
func (c *Client) ResumeRun(ctx context.Context, runID int64) (Run, error) {
	const op = "resume run"
	if runID <= 0 {
		return Run{}, invalidf("%s: run id %d", op, runID)
	}
	return c.postRun(ctx, op, "/api/runs/resume", struct {
		RunID int64 `json:"runId"`
	}{runID})
}

func (c *Client) postRun(ctx context.Context, op, path string, body any) (Run, error) {
	b, err := marshal(body)
	if err != nil {
		return Run{}, fmt.Errorf("%s: encode request: %w", op, err)
	}
	var run Run
	if err := c.do(ctx, &request{op: op, method: "POST", url: c.api + path, body: b, ctype: ctypeJSON}, &run); err != nil {
		return Run{}, err
	}
	if run.ID <= 0 {
		return Run{}, fmt.Errorf("%s: response has no runId", op)
	}
	return run, nil
}

// UpdateStatus sets a run's status (RUNNING, COMPLETED, FAILED, TERMINATED or
// CANCELLED; event.Status*) via POST {api}/api/runs/status/update.
// statusUpdated is the time of the change in epoch ms; 0 sends null (the
// server's now). statusMetadata is always null.
func (c *Client) UpdateStatus(ctx context.Context, runID int64, status string, statusUpdated int64) error {
	const op = "update status"
	if runID <= 0 {
		return invalidf("%s: run id %d", op, runID)
	}
	switch status {
	case event.StatusRunning, event.StatusCompleted, event.StatusFailed, event.StatusTerminated, event.StatusCancelled:
	default:
		return invalidf("%s: unknown status %q", op, status)
	}
	if statusUpdated < 0 {
		return invalidf("%s: negative statusUpdated %d", op, statusUpdated)
	}
	body := struct {
		RunID          int64   `json:"runId"`
		Status         string  `json:"status"`
		StatusMetadata *string `json:"statusMetadata"`
		StatusUpdated  *int64  `json:"statusUpdated"`
	}{RunID: runID, Status: status}
	if statusUpdated != 0 {
		body.StatusUpdated = &statusUpdated
	}
	return c.postJSON(ctx, op, c.api+"/api/runs/status/update", body)
}

// Log types accepted by logName/add (mlop-api.md §2.4).
const (
	LogTypeMetric    = "METRIC"
	LogTypeImage     = "IMAGE"
	LogTypeVideo     = "VIDEO"
	LogTypeAudio     = "AUDIO"
	LogTypeFile      = "FILE"
	LogTypeText      = "TEXT"
	LogTypeArtifact  = "ARTIFACT"
	LogTypeHistogram = "HISTOGRAM"
	LogTypeTable     = "TABLE"
	LogTypeData      = "DATA"
)

// AddLogNames registers names of one log type with a run, via POST
// {api}/api/runs/logName/add, at most 1000 names per request. The UI lists a
// run's charts from these registrations, so every metric, data and file name
// must be registered once. Names already registered are skipped by the
// server; no names is a no-op.
func (c *Client) AddLogNames(ctx context.Context, runID int64, logType string, names []string) error {
	const op = "add log names"
	if runID <= 0 {
		return invalidf("%s: run id %d", op, runID)
	}
	switch logType {
	case LogTypeMetric, LogTypeImage, LogTypeVideo, LogTypeAudio, LogTypeFile, LogTypeText,
		LogTypeArtifact, LogTypeHistogram, LogTypeTable, LogTypeData:
	default:
		return invalidf("%s: unknown log type %q", op, logType)
	}
	for len(names) > 0 {
		n := min(len(names), logNamesPerCall)
		body := struct {
			RunID   int64    `json:"runId"`
			LogType string   `json:"logType"`
			LogName []string `json:"logName"`
		}{runID, logType, names[:n]}
		if err := c.postJSON(ctx, op, c.api+"/api/runs/logName/add", body); err != nil {
			return err
		}
		names = names[n:]
	}
	return nil
}

// UpdateTags replaces a run's tags with the full list via POST
// {api}/api/runs/tags/update. An empty list removes all tags. At most 50
// tags and at most one "group:" tag (server rules, checked here first).
func (c *Client) UpdateTags(ctx context.Context, runID int64, tags []string) error {
	const op = "update tags"
	if runID <= 0 {
		return invalidf("%s: run id %d", op, runID)
	}
	if err := checkTags(op, tags); err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	body := struct {
		RunID int64    `json:"runId"`
		Tags  []string `json:"tags"`
	}{runID, tags}
	return c.postJSON(ctx, op, c.api+"/api/runs/tags/update", body)
}

func checkTags(op string, tags []string) error {
	if len(tags) > maxTags {
		return invalidf("%s: %d tags, at most %d allowed", op, len(tags), maxTags)
	}
	groups := 0
	for _, t := range tags {
		if strings.HasPrefix(t, "group:") {
			groups++
		}
	}
	if groups > 1 {
		return invalidf("%s: %d group: tags, at most 1 allowed", op, groups)
	}
	return nil
}

// UpdateConfig deep-merges keys into a run's config via POST
// {api}/api/runs/config/update: objects merge key by key, arrays and scalars
// replace. The config travels as a JSON string of an object (see configJSON
// for NaN and Infinity). An empty map sends nothing: the server rejects a
// null config and merging nothing changes nothing.
func (c *Client) UpdateConfig(ctx context.Context, runID int64, config map[string]any) error {
	const op = "update config"
	if runID <= 0 {
		return invalidf("%s: run id %d", op, runID)
	}
	if len(config) == 0 {
		return nil
	}
	s, err := configJSON(config)
	if err != nil {
		return fmt.Errorf("%s: encode config: %w", op, err)
	}
	body := struct {
		RunID  int64  `json:"runId"`
		Config string `json:"config"`
	}{runID, s}
	return c.postJSON(ctx, op, c.api+"/api/runs/config/update", body)
}

// Trigger is the heartbeat: POST {py}/api/runs/trigger. It keeps the server
// from marking the run FAILED (after 150 s without one) and returns the run's
// status; "CANCELLED" means a user cancelled the run in the UI. It makes a
// single attempt bounded by 5 s, like the SDK: the next heartbeat follows
// within seconds, so retrying a stale one only delays it. The legacy py
// service always answers 500 here; callers should count, not stop on, errors.
func (c *Client) Trigger(ctx context.Context, runID int64) (status string, err error) {
	const op = "trigger"
	if runID <= 0 {
		return "", invalidf("%s: run id %d", op, runID)
	}
	ctx, cancel := context.WithTimeout(ctx, TriggerTimeout)
	defer cancel()
	b, err := marshal(struct {
		RunID int64 `json:"runId"`
	}{runID})
	if err != nil {
		return "", fmt.Errorf("%s: encode request: %w", op, err)
	}
	var resp struct {
		Status string `json:"status"`
	}
	err = c.do(ctx, &request{op: op, method: "POST", url: c.py + "/api/runs/trigger", body: b, ctype: ctypeJSON, client: c.single}, &resp)
	if err != nil {
		return "", err
	}
	return resp.Status, nil
}

// postJSON posts body as JSON and ignores the response body.
func (c *Client) postJSON(ctx context.Context, op, url string, body any) error {
	b, err := marshal(body)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", op, err)
	}
	return c.do(ctx, &request{op: op, method: "POST", url: url, body: b, ctype: ctypeJSON}, nil)
}

// marshal is json.Marshal without HTML escaping: names and tags go out as
// they are, not with \u003c for '<'.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
