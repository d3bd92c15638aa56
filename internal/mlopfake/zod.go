package mlopfake

import (
	"fmt"
	"strings"
	"unicode/utf16"
)

// A small model of the zod schemas in web/server/routes/runs-openapi.ts.
// zod's z.object() strips unknown keys, so only declared keys are checked;
// failures produce the @hono/zod-openapi default body
// {"success":false,"error":{"issues":[...],"name":"ZodError"}}.

type zkind int

const (
	zString zkind = iota
	zNumber
	zBool
	zStringArray
	zEnum
	zObject // any JSON object (z.record / nested object, not inspected further)
)

type zfield struct {
	name               string
	kind               zkind
	optional, nullable bool
	min, max           int // string length (UTF-16 units) or array length; 0 = unchecked
	enum               []string
}

type zodIssue struct {
	Code      string   `json:"code"`
	Expected  string   `json:"expected,omitempty"`
	Received  string   `json:"received,omitempty"`
	Minimum   *int     `json:"minimum,omitempty"`
	Maximum   *int     `json:"maximum,omitempty"`
	Type      string   `json:"type,omitempty"`
	Inclusive *bool    `json:"inclusive,omitempty"`
	Exact     *bool    `json:"exact,omitempty"`
	Options   []string `json:"options,omitempty"`
	Path      []any    `json:"path"`
	Message   string   `json:"message"`
}

type zodError struct {
	Success bool `json:"success"`
	Error   struct {
		Issues []zodIssue `json:"issues"`
		Name   string     `json:"name"`
	} `json:"error"`
}

func newZodError(issues []zodIssue) zodError {
	var e zodError
	e.Error.Issues = issues
	e.Error.Name = "ZodError"
	return e
}

func (e zodError) summary() string {
	var parts []string
	for _, is := range e.Error.Issues {
		path := make([]string, len(is.Path))
		for i, p := range is.Path {
			path[i] = fmt.Sprint(p)
		}
		parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(path, "."), is.Message))
	}
	return "zod: " + strings.Join(parts, "; ")
}

// zodType is zod's getParsedType for a value decoded by encoding/json.
func zodType(v any, present bool) string {
	if !present {
		return "undefined"
	}
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func typeIssue(path []any, expected, received string) zodIssue {
	msg := fmt.Sprintf("Expected %s, received %s", expected, received)
	if received == "undefined" {
		msg = "Required"
	}
	return zodIssue{Code: "invalid_type", Expected: expected, Received: received, Path: path, Message: msg}
}

func ptr[T any](v T) *T { return &v }

func jsLen(s string) int { return len(utf16.Encode([]rune(s))) }

func enumList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q, " | ")
}

// zodValidate checks body against fields. It returns the object (unknown
// keys included, they are simply never read) or the issues.
func zodValidate(body any, fields []zfield) (map[string]any, []zodIssue) {
	m, ok := body.(map[string]any)
	if !ok {
		return nil, []zodIssue{typeIssue([]any{}, "object", zodType(body, true))}
	}
	var issues []zodIssue
	for _, f := range fields {
		v, present := m[f.name]
		path := []any{f.name}
		if !present {
			if !f.optional {
				exp := map[zkind]string{zString: "string", zNumber: "number", zBool: "boolean", zStringArray: "array", zObject: "object", zEnum: enumList(f.enum)}[f.kind]
				issues = append(issues, typeIssue(path, exp, "undefined"))
			}
			continue
		}
		if v == nil && f.nullable {
			continue
		}
		got := zodType(v, true)
		switch f.kind {
		case zString:
			sv, ok := v.(string)
			if !ok {
				issues = append(issues, typeIssue(path, "string", got))
				continue
			}
			if f.min > 0 && jsLen(sv) < f.min {
				issues = append(issues, zodIssue{Code: "too_small", Minimum: ptr(f.min), Type: "string", Inclusive: ptr(true), Exact: ptr(false), Path: path,
					Message: fmt.Sprintf("String must contain at least %d character(s)", f.min)})
			}
			if f.max > 0 && jsLen(sv) > f.max {
				issues = append(issues, zodIssue{Code: "too_big", Maximum: ptr(f.max), Type: "string", Inclusive: ptr(true), Exact: ptr(false), Path: path,
					Message: fmt.Sprintf("String must contain at most %d character(s)", f.max)})
			}
		case zNumber:
			if _, ok := v.(float64); !ok {
				issues = append(issues, typeIssue(path, "number", got))
			}
		case zBool:
			if _, ok := v.(bool); !ok {
				issues = append(issues, typeIssue(path, "boolean", got))
			}
		case zObject:
			if _, ok := v.(map[string]any); !ok {
				issues = append(issues, typeIssue(path, "object", got))
			}
		case zStringArray:
			arr, ok := v.([]any)
			if !ok {
				issues = append(issues, typeIssue(path, "array", got))
				continue
			}
			for i, e := range arr {
				if _, ok := e.(string); !ok {
					issues = append(issues, typeIssue([]any{f.name, i}, "string", zodType(e, true)))
				}
			}
			if f.max > 0 && len(arr) > f.max {
				issues = append(issues, zodIssue{Code: "too_big", Maximum: ptr(f.max), Type: "array", Inclusive: ptr(true), Exact: ptr(false), Path: path,
					Message: fmt.Sprintf("Array must contain at most %d element(s)", f.max)})
			}
		case zEnum:
			sv, ok := v.(string)
			if !ok {
				if _, isNum := v.(float64); !isNum {
					issues = append(issues, typeIssue(path, enumList(f.enum), got))
					continue
				}
			}
			valid := false
			for _, e := range f.enum {
				if e == sv {
					valid = true
				}
			}
			if !valid {
				issues = append(issues, zodIssue{Code: "invalid_enum_value", Received: fmt.Sprint(v), Options: f.enum, Path: path,
					Message: fmt.Sprintf("Invalid enum value. Expected %s, received '%v'", enumList(f.enum), v)})
			}
		}
	}
	if len(issues) > 0 {
		return nil, issues
	}
	return m, nil
}

// Prisma enums.
var (
	runStatuses = []string{"RUNNING", "COMPLETED", "FAILED", "TERMINATED", "CANCELLED"}
	logTypes    = []string{"METRIC", "IMAGE", "VIDEO", "AUDIO", "FILE", "TEXT", "ARTIFACT", "HISTOGRAM", "TABLE", "DATA"}
)

var createRunSchema = []zfield{
	{name: "runName", kind: zString},
	{name: "projectName", kind: zString},
	{name: "externalId", kind: zString, optional: true, nullable: true, min: 1},
	{name: "tags", kind: zStringArray, optional: true, nullable: true, max: 50},
	{name: "loggerSettings", kind: zString, optional: true, nullable: true},
	{name: "systemMetadata", kind: zString, optional: true, nullable: true},
	{name: "config", kind: zString, optional: true, nullable: true},
	{name: "createdAt", kind: zNumber, optional: true, nullable: true},
	{name: "updatedAt", kind: zNumber, optional: true, nullable: true},
	{name: "forkRunId", kind: zNumber, optional: true, nullable: true},
	{name: "forkStep", kind: zNumber, optional: true, nullable: true},
	{name: "inheritConfig", kind: zBool, optional: true, nullable: true},
	{name: "inheritTags", kind: zBool, optional: true, nullable: true},
}

var resumeRunSchema = []zfield{
	{name: "runId", kind: zNumber, optional: true},
	{name: "displayId", kind: zString, optional: true},
	{name: "externalId", kind: zString, optional: true},
	{name: "projectName", kind: zString, optional: true},
}

var statusUpdateSchema = []zfield{
	{name: "runId", kind: zNumber},
	{name: "status", kind: zEnum, enum: runStatuses},
	{name: "statusMetadata", kind: zString, optional: true, nullable: true},
	{name: "loggerSettings", kind: zString, optional: true, nullable: true},
	{name: "statusUpdated", kind: zNumber, optional: true, nullable: true},
}

var logNameAddSchema = []zfield{
	{name: "runId", kind: zNumber},
	{name: "logName", kind: zStringArray},
	{name: "logType", kind: zEnum, enum: logTypes},
}

var tagsUpdateSchema = []zfield{
	{name: "runId", kind: zNumber},
	{name: "tags", kind: zStringArray, max: 50},
}

var configUpdateSchema = []zfield{
	{name: "runId", kind: zNumber},
	{name: "config", kind: zString},
}

var notesUpdateSchema = []zfield{
	{name: "runId", kind: zNumber},
	{name: "notes", kind: zString, nullable: true, max: 1000},
}

var modelGraphSchema = []zfield{
	{name: "runId", kind: zNumber},
	{name: "graph", kind: zObject},
}
