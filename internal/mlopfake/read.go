package mlopfake

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file is the backend's read API (web/server/routes/runs-openapi.ts,
// the "MCP API Endpoints": GET under /api/runs/), served from the same
// store the write endpoints fill: Postgres-side run rows for auth/validate,
// list, details and status/history; ClickHouse-side rows (raw, duplicates
// included) for metrics/raw, metrics, metric-names, files and logs.
//
// Where the stored source leaves room (see doc.go):
//   - UInt64 columns passed through from ClickHouse (step, lineNumber,
//     fileSize) are JSON strings, as JSONEachRow writes them by default;
//     DateTime64(3) columns are "YYYY-MM-DD hh:mm:ss.sss" in UTC.
//   - A NaN/±Inf metric value comes back as value 0 with nonFiniteFlags
//     (bit 0 NaN, bit 1 +Inf, bit 2 −Inf) on metrics/raw and as value 0 with
//     valueFlag "NaN"/"Inf"/"-Inf" on the sampled metrics; −0 comes back as 0
//     (JSON.stringify(-0) is "0").
//   - metrics/raw answers at most limit rows ordered by step, then time,
//     then arrival, and truncated is true when more rows matched.
//   - metric-names is read from the raw rows at once; the real server reads
//     a summaries table refreshed every five minutes.
//   - A fractional or negative id or limit that passes zod makes the real
//     ClickHouse or Prisma call throw: 500 "Internal Server Error".

var (
	listSchema = []qfield{
		{name: "projectName", kind: qString},
		{name: "search", kind: qString, optional: true},
		{name: "tags", kind: qString, optional: true},
		{name: "limit", kind: qNumber, def: f64(50), min: f64(1), max: f64(200)},
		{name: "offset", kind: qNumber, def: f64(0), min: f64(0)},
	}
	detailsSchema = []qfield{{name: "runId", kind: qNumber}}
	rawSchema     = []qfield{
		{name: "runId", kind: qNumber},
		{name: "projectName", kind: qString},
		{name: "logName", kind: qString},
		{name: "stepMin", kind: qNumber, optional: true, integer: true, min: f64(0)},
		{name: "stepMax", kind: qNumber, optional: true, integer: true, min: f64(0)},
		{name: "limit", kind: qNumber, def: f64(50000), min: f64(1), max: f64(50000)},
	}
	sampledSchema = []qfield{
		{name: "runId", kind: qNumber},
		{name: "projectName", kind: qString},
		{name: "logName", kind: qString, optional: true},
		{name: "logGroup", kind: qString, optional: true},
		{name: "limit", kind: qNumber, def: f64(2000), min: f64(1), max: f64(10000)},
		{name: "stepMin", kind: qNumber, optional: true, integer: true, min: f64(0)},
		{name: "stepMax", kind: qNumber, optional: true, integer: true, min: f64(0)},
	}
	metricNamesSchema = []qfield{
		{name: "projectName", kind: qString},
		{name: "search", kind: qString, optional: true},
		{name: "runIds", kind: qString, optional: true},
		{name: "limit", kind: qNumber, def: f64(500)},
	}
	filesSchema = []qfield{
		{name: "runId", kind: qNumber},
		{name: "projectName", kind: qString},
		{name: "logName", kind: qString, optional: true},
		{name: "logGroup", kind: qString, optional: true},
	}
	logsSchema = []qfield{
		{name: "runId", kind: qNumber},
		{name: "projectName", kind: qString},
		{name: "logType", kind: qEnum, optional: true, enum: []string{"INFO", "ERROR", "WARNING", "DEBUG", "PRINT"}},
		{name: "limit", kind: qNumber, def: f64(1000), min: f64(1), max: f64(10000)},
		{name: "offset", kind: qNumber, def: f64(0), min: f64(0)},
	}
	statusHistorySchema = []qfield{{name: "runId", kind: qNumber}}
)

// Limits of the real queries.
const (
	detailsLogNames = 1000 // queryRunDetails: logs take 1000
	filesLimit      = 1000 // queryRunFiles: LIMIT 1000
	metricNamesMax  = 500  // Math.min(limit, 500)
)

// readQuery authenticates (withApiKey runs before the validator), then
// validates the query. On failure the response is written.
func (s *Server) readQuery(w http.ResponseWriter, r *http.Request, schema []qfield) (*org, queryArgs, bool) {
	o := s.backendAuth(w, r)
	if o == nil {
		return nil, nil, false
	}
	q, issues := zodQuery(r.URL.Query(), schema)
	if issues != nil {
		ze := newZodError(issues)
		s.reject(ServiceAPI, r, http.StatusBadRequest, ze.summary())
		writeJSON(w, http.StatusBadRequest, ze)
		return nil, nil, false
	}
	return o, q, true
}

// uint64Arg converts a validated number that the real handler passes to a
// ClickHouse UInt parameter (or Prisma BigInt); a fractional, negative or
// infinite one makes that call throw.
func (s *Server) uint64Arg(w http.ResponseWriter, r *http.Request, q queryArgs, name string) (uint64, bool) {
	f, _ := q.num(name)
	if f < 0 || f != math.Trunc(f) || math.IsInf(f, 0) || f > math.MaxInt64 {
		s.internalError(w, r, fmt.Sprintf("%s %v is not a non-negative integer: the database call throws", name, f))
		return 0, false
	}
	return uint64(f), true
}

func chTime(ms uint64) string { return string(appendCHTime(nil, ms)) }

// appendCHTime appends epoch milliseconds as ClickHouse writes a
// DateTime64(3) in UTC: "YYYY-MM-DD hh:mm:ss.sss". Times before 1970 or
// after 9999 go through package time.
func appendCHTime(b []byte, ms uint64) []byte {
	if ms >= 253402300800000 { // 10000-01-01
		return time.UnixMilli(int64(ms)).UTC().AppendFormat(b, "2006-01-02 15:04:05.000")
	}
	days := int64(ms / 86400000)
	rem := ms % 86400000
	// H. Hinnant's civil_from_days.
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	two := func(b []byte, v uint64) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = two(b, uint64(m))
	b = append(b, '-')
	b = two(b, uint64(d))
	b = append(b, ' ')
	b = two(b, rem/3600000)
	b = append(b, ':')
	b = two(b, rem/60000%60)
	b = append(b, ':')
	b = two(b, rem/1000%60)
	return append(b, '.', byte('0'+rem%1000/100), byte('0'+rem%100/10), byte('0'+rem%10))
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) apiAuthValidate(w http.ResponseWriter, r *http.Request) {
	o := s.backendAuth(w, r)
	if o == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"valid":        true,
		"organization": map[string]string{"id": o.id, "slug": o.slug},
		"user":         map[string]string{"id": "user_" + o.slug},
	})
}

type listItem struct {
	ID          int64    `json:"id"`
	Name        string   `json:"name"`
	Number      int      `json:"number"`
	DisplayID   string   `json:"displayId"`
	ProjectName string   `json:"projectName"`
	Status      string   `json:"status"`
	Tags        []string `json:"tags"`
	CreatedAt   string   `json:"createdAt"`
}

func (s *Server) apiListRuns(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, listSchema)
	if !ok {
		return
	}
	limit, _ := q.num("limit")
	offset, _ := q.num("offset")
	if limit != math.Trunc(limit) || offset != math.Trunc(offset) {
		s.internalError(w, r, fmt.Sprintf("limit %v / offset %v: Prisma take and skip need integers", limit, offset))
		return
	}
	projectName, _ := q.str("projectName")
	search, _ := q.str("search")
	search = strings.TrimSpace(search)
	var tags []string
	if tp, ok := q.str("tags"); ok {
		for _, t := range strings.Split(tp, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	s.mu.Lock()
	proj := s.projects[projectKey{o.id, projectName}]
	var match []*run
	if proj != nil {
		for _, rn := range s.runOrder {
			if rn.project != proj {
				continue
			}
			if search != "" {
				did := fmt.Sprintf("%s-%d", proj.prefix, rn.number)
				if !ilike(rn.name, "%"+search+"%") && !ilike(did, "%"+search+"%") {
					continue
				}
			}
			if len(tags) > 0 && !slices.ContainsFunc(tags, func(t string) bool { return slices.Contains(rn.tags, t) }) {
				continue
			}
			match = append(match, rn)
		}
	}
	// ORDER BY createdAt DESC; the id breaks ties so the order is stable.
	sort.SliceStable(match, func(i, j int) bool {
		a, b := match[i], match[j]
		if !a.createdAt.Equal(b.createdAt) {
			return a.createdAt.After(b.createdAt)
		}
		return a.id > b.id
	})
	total := len(match)
	items := []listItem{}
	for i := int(offset); i < total && len(items) < int(limit); i++ {
		rn := match[i]
		tags := slices.Clone(rn.tags)
		if tags == nil {
			tags = []string{}
		}
		items = append(items, listItem{ID: rn.id, Name: rn.name, Number: rn.number,
			DisplayID: fmt.Sprintf("%s-%d", rn.project.prefix, rn.number), ProjectName: rn.project.name,
			Status: rn.status, Tags: tags, CreatedAt: isoTime(rn.createdAt)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"runs": items, "total": total})
}

type logNameEntry struct {
	LogName  string `json:"logName"`
	LogType  string `json:"logType"`
	LogGroup string `json:"logGroup"`
}

type detailsResponse struct {
	ID              int64          `json:"id"`
	Name            string         `json:"name"`
	Number          int            `json:"number"`
	DisplayID       string         `json:"displayId"`
	Status          string         `json:"status"`
	Tags            []string       `json:"tags"`
	Config          any            `json:"config"`
	SystemMetadata  any            `json:"systemMetadata"`
	LoggerSettings  any            `json:"loggerSettings"`
	StatusMetadata  any            `json:"statusMetadata"`
	CreatedAt       string         `json:"createdAt"`
	UpdatedAt       string         `json:"updatedAt"`
	StatusUpdated   *string        `json:"statusUpdated"`
	ProjectName     string         `json:"projectName"`
	ExternalID      *string        `json:"externalId"`
	ForkedFromRunID *int64         `json:"forkedFromRunId"`
	ForkStep        *int64         `json:"forkStep"`
	LogNames        []logNameEntry `json:"logNames"`
}

// apiRunDetails is GET /api/runs/details/{runId}.
func (s *Server) apiRunDetails(w http.ResponseWriter, r *http.Request, param string) {
	o := s.backendAuth(w, r)
	if o == nil {
		return
	}
	q, issues := zodQuery(url.Values{"runId": {param}}, detailsSchema)
	if issues != nil {
		ze := newZodError(issues)
		s.reject(ServiceAPI, r, http.StatusBadRequest, ze.summary())
		writeJSON(w, http.StatusBadRequest, ze)
		return
	}
	f, _ := q.num("runId")
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		s.internalError(w, r, fmt.Sprintf("runId %v: BigInt() of a non-integer throws", f))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.lookupRun(o, int64(f))
	if rn == nil {
		s.apiError(w, r, http.StatusNotFound, "Run not found", fmt.Sprintf("details: run %v not found in org %s", f, o.slug))
		return
	}
	d := detailsResponse{
		ID: rn.id, Name: rn.name, Number: rn.number, DisplayID: fmt.Sprintf("%s-%d", rn.project.prefix, rn.number),
		Status: rn.status, Tags: slices.Clone(rn.tags), Config: deepCopy(rn.config),
		SystemMetadata: deepCopy(rn.systemMetadata), LoggerSettings: deepCopy(rn.loggerSettings),
		StatusMetadata: deepCopy(rn.statusMetadata), CreatedAt: isoTime(rn.createdAt), UpdatedAt: isoTime(rn.updatedAt),
		StatusUpdated: ptr(isoTime(rn.statusUpdated)), ProjectName: rn.project.name, LogNames: []logNameEntry{},
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	if rn.externalID != "" {
		d.ExternalID = ptr(rn.externalID)
	}
	if rn.forkedFrom != 0 {
		d.ForkedFromRunID = ptr(rn.forkedFrom)
		if rn.forkStep != nil {
			d.ForkStep = ptr(*rn.forkStep)
		}
	}
	for _, name := range rn.logOrder {
		if len(d.LogNames) == detailsLogNames {
			break
		}
		d.LogNames = append(d.LogNames, logNameEntry{LogName: name, LogType: rn.logNames[name], LogGroup: logGroupOf(name)})
	}
	writeJSON(w, http.StatusOK, d)
}

// readStream finds the ClickHouse rows of (the key's org, projectName,
// runId) after validating those arguments; nil when none were stored.
func (s *Server) readStream(w http.ResponseWriter, r *http.Request, o *org, q queryArgs) (*stream, bool) {
	id, ok := s.uint64Arg(w, r, q, "runId")
	if !ok {
		return nil, false
	}
	project, _ := q.str("projectName")
	return s.streams.lookup(streamKey{o.id, project, id}), true
}

// nonFiniteFlags is the bit mask of metrics/raw: bit 0 NaN, bit 1 +Inf,
// bit 2 -Inf; the value is then 0.
func nonFiniteFlags(v float64) (float64, int) {
	switch {
	case math.IsNaN(v):
		return 0, 1
	case math.IsInf(v, 1):
		return 0, 2
	case math.IsInf(v, -1):
		return 0, 4
	case v == 0:
		return 0, 0 // -0 too: JSON.stringify(-0) is "0"
	}
	return v, 0
}

func appendJSFloat(b []byte, v float64) []byte {
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, v, 'e', -1, 64)
		// JavaScript writes 1e-7 and 1e+21, not 1e-07.
		if i := len(b) - 3; i > 0 && (b[i] == '-' || b[i] == '+') && b[i+1] == '0' {
			b = append(b[:i+1], b[i+2])
		}
		return b
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// apiMetricsRaw is GET /api/runs/metrics/raw: every stored row of one
// metric, duplicates included, ordered by step then time.
func (s *Server) apiMetricsRaw(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, rawSchema)
	if !ok {
		return
	}
	st, ok := s.readStream(w, r, o, q)
	if !ok {
		return
	}
	limit, _ := q.num("limit")
	if limit != math.Trunc(limit) {
		s.internalError(w, r, fmt.Sprintf("limit %v is not an integer: the ClickHouse UInt32 parameter throws", limit))
		return
	}
	stepMin, stepMax := uint64(0), uint64(math.MaxUint64)
	if v, ok := q.num("stepMin"); ok {
		stepMin = uint64(min(v, math.MaxUint64))
	}
	if v, ok := q.num("stepMax"); ok {
		stepMax = uint64(min(v, math.MaxUint64))
	}
	logName, _ := q.str("logName")
	var rows []Point
	more := false
	if st != nil {
		st.mu.Lock()
		if ser := st.series[logName]; ser != nil {
			rows, more = ser.rangeRows(stepMin, stepMax, int(limit))
		}
		st.mu.Unlock()
	}
	group := logGroupOf(logName)
	b := make([]byte, 0, 64+len(rows)*(110+len(group)))
	b = append(b, `{"rows":[`...)
	for i, p := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		v, flags := nonFiniteFlags(p.Value)
		b = append(b, `{"logGroup":`...)
		b = strconv.AppendQuote(b, group)
		b = append(b, `,"step":"`...)
		b = strconv.AppendUint(b, p.Step, 10)
		b = append(b, `","time":"`...)
		b = appendCHTime(b, p.Time)
		b = append(b, `","value":`...)
		b = appendJSFloat(b, v)
		b = append(b, `,"nonFiniteFlags":`...)
		b = strconv.AppendInt(b, int64(flags), 10)
		b = append(b, '}')
	}
	b = append(b, `],"truncated":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, '}')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// apiMetricsSampled is GET /api/runs/metrics: the raw rows of each metric
// reservoir-sampled down to about limit (queryRunMetrics). It can never
// prove completeness.
func (s *Server) apiMetricsSampled(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, sampledSchema)
	if !ok {
		return
	}
	st, ok := s.readStream(w, r, o, q)
	if !ok {
		return
	}
	limit, _ := q.num("limit")
	if limit != math.Trunc(limit) {
		s.internalError(w, r, fmt.Sprintf("limit %v is not an integer: the ClickHouse UInt32 parameter throws", limit))
		return
	}
	stepMin, stepMax := uint64(0), uint64(math.MaxUint64)
	if v, ok := q.num("stepMin"); ok {
		stepMin = uint64(min(v, math.MaxUint64))
	}
	if v, ok := q.num("stepMax"); ok {
		stepMax = uint64(min(v, math.MaxUint64))
	}
	logName, byName := q.str("logName")
	logGroup, byGroup := q.str("logGroup")
	out := []map[string]any{}
	if st != nil {
		st.mu.Lock()
		names := make([]string, 0, len(st.series))
		for name := range st.series {
			if (byName && logName != "" && name != logName) || (byGroup && logGroup != "" && logGroupOf(name) != logGroup) {
				continue
			}
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			rows, _ := st.series[name].rangeRows(stepMin, stepMax, math.MaxInt)
			total := len(rows)
			every := int(math.Ceil(float64(total) / limit))
			for i, p := range rows {
				rn := i + 1
				if !(float64(total) <= limit || rn%every == 1 || rn == total) {
					continue
				}
				v, flags := nonFiniteFlags(p.Value)
				flag := map[int]string{0: "", 1: "NaN", 2: "Inf", 4: "-Inf"}[flags]
				out = append(out, map[string]any{"logName": name, "logGroup": logGroupOf(name), "value": v,
					"valueFlag": flag, "time": chTime(p.Time), "step": strconv.FormatUint(p.Step, 10)})
			}
		}
		st.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"metrics": out})
}

// apiMetricNames is GET /api/runs/metric-names: distinct metric names of a
// project, optionally of some runs, sorted, at most 500.
func (s *Server) apiMetricNames(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, metricNamesSchema)
	if !ok {
		return
	}
	limit, _ := q.num("limit")
	limit = min(limit, metricNamesMax)
	if limit < 0 || limit != math.Trunc(limit) {
		s.internalError(w, r, fmt.Sprintf("limit %v: the ClickHouse UInt32 parameter throws", limit))
		return
	}
	project, _ := q.str("projectName")
	search, _ := q.str("search")
	search = strings.TrimSpace(search)
	var runIDs map[uint64]bool
	if ids, ok := q.str("runIds"); ok && ids != "" {
		for _, p := range strings.Split(ids, ",") {
			f := jsNumber(p)
			if math.IsNaN(f) {
				continue
			}
			if f < 0 || f != math.Trunc(f) {
				s.internalError(w, r, fmt.Sprintf("runIds: %v is not a UInt64", f))
				return
			}
			if runIDs == nil {
				runIDs = map[uint64]bool{}
			}
			runIDs[uint64(f)] = true
		}
	}
	seen := map[string]bool{}
	for _, st := range s.streams.all() {
		if st.key.org != o.id || st.key.project != project || (runIDs != nil && !runIDs[st.key.runID]) {
			continue
		}
		st.mu.Lock()
		for name, ser := range st.series {
			if ser.n > 0 && (search == "" || ilike(name, "%"+search+"%")) {
				seen[name] = true
			}
		}
		st.mu.Unlock()
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > int(limit) {
		names = names[:int(limit)]
	}
	writeJSON(w, http.StatusOK, map[string]any{"projectName": project, "metricNames": names})
}

type fileEntry struct {
	FileName    string  `json:"fileName"`
	FileType    string  `json:"fileType"`
	FileSize    string  `json:"fileSize"`
	LogName     string  `json:"logName"`
	LogGroup    string  `json:"logGroup"`
	Time        string  `json:"time"`
	Step        string  `json:"step"`
	Caption     *string `json:"caption"`
	Annotations *string `json:"annotations"`
	URL         string  `json:"url"`
}

// apiFiles is GET /api/runs/files: mlop_files rows with download URLs,
// ordered by step, sample index, file name, at most 1000.
func (s *Server) apiFiles(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, filesSchema)
	if !ok {
		return
	}
	st, ok := s.readStream(w, r, o, q)
	if !ok {
		return
	}
	logName, _ := q.str("logName")
	logGroup, _ := q.str("logGroup")
	var rows []File
	if st != nil {
		st.mu.Lock()
		for _, f := range st.files {
			if (logName == "" || f.LogName == logName) && (logGroup == "" || f.LogGroup == logGroup) {
				rows = append(rows, *f)
			}
		}
		st.mu.Unlock()
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		switch {
		case a.Step != b.Step:
			return a.Step < b.Step
		case a.SampleIndex != b.SampleIndex:
			return a.SampleIndex < b.SampleIndex
		}
		return a.FileName < b.FileName
	})
	if len(rows) > filesLimit {
		rows = rows[:filesLimit]
	}
	out := make([]fileEntry, len(rows))
	for i, f := range rows {
		out[i] = fileEntry{FileName: f.FileName, FileType: f.FileType, FileSize: strconv.FormatUint(f.FileSize, 10),
			LogName: f.LogName, LogGroup: f.LogGroup, Time: chTime(f.Time), Step: strconv.FormatUint(f.Step, 10),
			Caption: f.Caption, Annotations: f.Annotations,
			URL: s.S3URL() + "/" + s.opts.Bucket + "/" + awsURIEncode(f.Key) + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=432000"}
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": out})
}

// apiLogs is GET /api/runs/logs: console lines ordered by line number, with
// the total count.
func (s *Server) apiLogs(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, logsSchema)
	if !ok {
		return
	}
	st, ok := s.readStream(w, r, o, q)
	if !ok {
		return
	}
	limit, _ := q.num("limit")
	offset, _ := q.num("offset")
	if limit != math.Trunc(limit) || offset != math.Trunc(offset) || offset > math.MaxUint32 {
		s.internalError(w, r, fmt.Sprintf("limit %v / offset %v: the ClickHouse UInt32 parameters throw", limit, offset))
		return
	}
	logType, byType := q.str("logType")
	var rows []LogRow
	if st != nil {
		st.mu.Lock()
		for _, l := range st.logs {
			if !byType || l.LogType == logType {
				rows = append(rows, l)
			}
		}
		st.mu.Unlock()
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].LineNumber < rows[j].LineNumber })
	type logEntry struct {
		Time       string `json:"time"`
		LogType    string `json:"logType"`
		LineNumber string `json:"lineNumber"`
		Message    string `json:"message"`
		Step       *int64 `json:"step"`
	}
	out := []logEntry{}
	for i := int(offset); i < len(rows) && len(out) < int(limit); i++ {
		l := rows[i]
		out = append(out, logEntry{Time: chTime(l.Time), LogType: l.LogType, LineNumber: strconv.FormatUint(l.LineNumber, 10), Message: l.Message})
	}
	writeJSON(w, http.StatusOK, map[string]any{"logs": out, "total": len(rows)})
}

// apiStatusHistory is GET /api/runs/status/history: the run's status
// events, oldest first.
func (s *Server) apiStatusHistory(w http.ResponseWriter, r *http.Request) {
	o, q, ok := s.readQuery(w, r, statusHistorySchema)
	if !ok {
		return
	}
	f, _ := q.num("runId")
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		s.internalError(w, r, fmt.Sprintf("runId %v is not an integer: Prisma rejects it", f))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.lookupRun(o, int64(f))
	if rn == nil {
		s.apiError(w, r, http.StatusNotFound, "Run not found", fmt.Sprintf("status/history: run %v not found in org %s", f, o.slug))
		return
	}
	type ev struct {
		ID         string  `json:"id"`
		RunID      int64   `json:"runId"`
		FromStatus *string `json:"fromStatus"`
		ToStatus   string  `json:"toStatus"`
		Source     string  `json:"source"`
		Metadata   any     `json:"metadata"`
		ActorID    *string `json:"actorId"`
		APIKeyID   *string `json:"apiKeyId"`
		CreatedAt  string  `json:"createdAt"`
	}
	events := make([]ev, 0, len(rn.history))
	for i, h := range rn.history {
		e := ev{ID: strconv.FormatInt(rn.id*1000+int64(i)+1, 10), RunID: rn.id, ToStatus: h.To, Source: h.Source,
			Metadata: deepCopy(h.Metadata), CreatedAt: isoTime(h.At)}
		if h.From != "" {
			e.FromStatus = ptr(h.From)
		}
		events = append(events, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runId": rn.id, "events": events})
}
