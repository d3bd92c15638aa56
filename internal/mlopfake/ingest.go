package mlopfake

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is the ingest (Rust, axum) listener.

func (s *Server) ingestHandler() http.Handler {
	type route struct {
		method string
		fn     func(http.ResponseWriter, *http.Request)
	}
	routes := map[string]route{
		"/health":         {http.MethodGet, s.ingestHealth},
		"/ingest/metrics": {http.MethodPost, s.ingestMetrics},
		"/ingest/data":    {http.MethodPost, s.ingestData},
		"/ingest/logs":    {http.MethodPost, s.ingestLogs},
		"/files":          {http.MethodPost, s.ingestFiles},
		"/step":           {http.MethodPost, s.ingestStep},
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := routes[r.URL.Path]
		if !ok {
			// axum: unknown path → 404 with an empty body.
			s.reject(ServiceIngest, r, http.StatusNotFound, fmt.Sprintf("no route %s %s on the ingest listener", r.Method, r.URL.Path))
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if rt.method != r.Method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			// axum: known path, other method → 405 with Allow.
			s.reject(ServiceIngest, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
			w.Header().Set("Allow", rt.method)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		rt.fn(w, r)
	})
}

func (s *Server) ingestHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "OK")
}

type ingestKind int

const (
	kindMetrics ingestKind = iota
	kindData
	kindLogs
)

func (k ingestKind) noun() string {
	return [...]string{"metrics", "data", "logs"}[k]
}

// headerValue is HeaderMap::get(..).to_str(): a header that is absent or
// holds anything but visible ASCII counts as missing.
func headerValue(r *http.Request, name string) (string, bool) {
	vals := r.Header.Values(name)
	if len(vals) == 0 || !visibleASCII(vals[0]) {
		return "", false
	}
	return vals[0], true
}

// parseRustU64 is str::parse::<u64>(): an optional '+', then digits only.
func parseRustU64(v string) (uint64, error) {
	d := strings.TrimPrefix(v, "+")
	if d == "" || d[0] < '0' || d[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(d, 10, 64)
}

// enrichment reads X-Run-Id and X-Project-Name like the *Enrichment
// from_headers of ingest/src/models. A non-numeric X-Run-Id becomes 0.
func enrichment(r *http.Request) (runID uint64, project string, err *lineError) {
	rid, ok := headerValue(r, "X-Run-Id")
	if !ok {
		return 0, "", &lineError{code: "InvalidHeaderFormat", num: 2004, kind: "Validation Error", msg: "Missing required header: X-Run-Id"}
	}
	project, ok = headerValue(r, "X-Project-Name")
	if !ok {
		return 0, "", &lineError{code: "InvalidHeaderFormat", num: 2004, kind: "Validation Error", msg: "Missing required header: X-Project-Name"}
	}
	runID, _ = parseRustU64(rid) // .unwrap_or(0)
	return runID, project, nil
}

func (s *Server) ingestMetrics(w http.ResponseWriter, r *http.Request) {
	s.ingestStream(w, r, kindMetrics)
}
func (s *Server) ingestData(w http.ResponseWriter, r *http.Request) { s.ingestStream(w, r, kindData) }
func (s *Server) ingestLogs(w http.ResponseWriter, r *http.Request) { s.ingestStream(w, r, kindLogs) }

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// ingestStream is JsonLineProcessor::process_stream: authenticate, read the
// headers, then parse and store line by line while the body streams in.
// Any failure is wrapped into 422 PROCESSING_FAILED after the lines before it
// were stored.
func (s *Server) ingestStream(w http.ResponseWriter, r *http.Request, kind ingestKind) {
	if kind == kindMetrics {
		s.cnt.metricRequests.Add(1)
	}
	fail := func(cause error, reason string) {
		drain(r.Body)
		s.reject(ServiceIngest, r, http.StatusUnprocessableEntity, reason)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{
			"code":    "PROCESSING_FAILED",
			"message": fmt.Sprintf("Failed to process %s stream: %v", kind.noun(), cause),
		})
	}
	o, aerr := s.ingestAuth(r)
	if aerr != nil {
		fail(aerr, "auth: "+aerr.msg)
		return
	}
	runID, project, herr := enrichment(r)
	if herr != nil {
		fail(herr, herr.msg)
		return
	}
	st := s.streams.get(streamKey{org: o.id, project: project, runID: runID})

	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r.Body)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	var mp *metricParser
	if kind == kindMetrics {
		mp = metricParserPool.Get().(*metricParser)
		defer metricParserPool.Put(mp)
	}
	var long []byte // accumulates a line longer than the reader's buffer
	inLong := false
	records := 0
	lineNo := 0
	var bytesRead int64
	for {
		chunk, err := br.ReadSlice('\n')
		bytesRead += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			if !inLong {
				long = long[:0]
				inLong = true
			}
			long = append(long, chunk...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			s.cnt.ingestBytes.Add(bytesRead)
			infoOf(r).records = records
			fail(&lineError{code: "StreamProcessingError", num: 3002, kind: "Processing Error", msg: fmt.Sprintf("Failed to read stream chunk: %v", err)},
				fmt.Sprintf("body read failed after %d records: %v", records, err))
			return
		}
		line := chunk
		if inLong {
			long = append(long, chunk...)
			line = long
		}
		final := errors.Is(err, io.EOF)
		if len(line) > 0 {
			lineNo++
			trimmed := trimLine(line)
			if len(trimmed) == 0 {
				if kind == kindMetrics {
					s.cnt.metricBlankLines.Add(1)
				}
			} else {
				n, lerr := s.storeLine(st, kind, mp, trimmed, final)
				if lerr != nil {
					s.cnt.ingestBytes.Add(bytesRead)
					infoOf(r).records = records
					fail(lerr, fmt.Sprintf("line %d: %v (after %d records stored)", lineNo, lerr, records))
					return
				}
				records += n
			}
		}
		if inLong {
			inLong = false
			if cap(long) > 1<<20 {
				long = nil
			}
		}
		if final {
			break
		}
	}
	s.cnt.ingestBytes.Add(bytesRead)
	infoOf(r).records = records
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Stream processed successfully: %d records", records)
}

var metricParserPool = sync.Pool{New: func() any { return new(metricParser) }}

// storeLine parses, validates and stores one trimmed non-empty line and
// returns the number of rows written.
func (s *Server) storeLine(st *stream, kind ingestKind, mp *metricParser, line []byte, final bool) (int, *lineError) {
	switch kind {
	case kindMetrics:
		if err := mp.parseLine(line, final); err != nil {
			s.cnt.metricBadLines.Add(1)
			return 0, err
		}
		st.mu.Lock()
		st.addMetricLine(mp)
		st.mu.Unlock()
		s.cnt.metricLines.Add(1)
		s.cnt.metricPoints.Add(int64(len(mp.pts)))
		return len(mp.pts), nil
	case kindData:
		v, err := parseStruct(line, dataFields, final)
		if err == nil {
			switch {
			case isBlank([]byte(v.strs[3])):
				err = logFormatError("'dataType' field cannot be empty")
			case isBlank([]byte(v.strs[4])):
				err = logFormatError("'logName' field cannot be empty")
			}
		}
		if err != nil {
			s.cnt.dataBadLines.Add(1)
			return 0, err
		}
		row := DataRow{Time: v.u64s[0], Data: v.strs[1], Step: v.u64s[2], DataType: v.strs[3], LogName: v.strs[4], LogGroup: logGroupOf(v.strs[4])}
		st.mu.Lock()
		st.data = append(st.data, row)
		st.mu.Unlock()
		s.cnt.dataLines.Add(1)
		return 1, nil
	default:
		v, err := parseStruct(line, logFields, final)
		if err == nil && isBlank([]byte(v.strs[3])) {
			err = logFormatError("'logType' field cannot be empty")
		}
		if err != nil {
			s.cnt.logBadLines.Add(1)
			return 0, err
		}
		row := LogRow{Time: v.u64s[0], Message: v.strs[1], LineNumber: v.u64s[2], LogType: v.strs[3]}
		st.mu.Lock()
		st.logs = append(st.logs, row)
		st.mu.Unlock()
		s.cnt.logLines.Add(1)
		return 1, nil
	}
}

// ingestAppError writes the axum AppError JSON body.
func (s *Server) ingestAppError(w http.ResponseWriter, r *http.Request, status int, code, msg, reason string) {
	s.reject(ServiceIngest, r, status, reason)
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

// axumRejection answers like axum's Json extractor: plain text.
func (s *Server) axumRejection(w http.ResponseWriter, r *http.Request, status int, msg string) {
	drain(r.Body)
	s.reject(ServiceIngest, r, status, msg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	typ, sub, ok := strings.Cut(mt, "/")
	return ok && typ == "application" && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

type fileRequest struct {
	FileName, LogName, FileType string
	FileSize, Step, Time        uint64
	SampleIndex                 uint32
	Caption, Annotations        *string
}

// ingestFiles is generate_presigned_urls (ingest/src/routes/files.rs). The
// Json extractor runs first (415/400/422 as text), then auth (401), then the
// headers (400); a non-numeric X-Run-Id panics the real handler, which drops
// the connection.
func (s *Server) ingestFiles(w http.ResponseWriter, r *http.Request) {
	s.cnt.fileRequests.Add(1)
	if !isJSONMediaType(r.Header.Get("Content-Type")) {
		s.axumRejection(w, r, http.StatusUnsupportedMediaType, "Expected request with `Content-Type: application/json`")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20+1))
	if err != nil {
		s.axumRejection(w, r, http.StatusBadRequest, fmt.Sprintf("Failed to buffer the request body: %v", err))
		return
	}
	if len(body) > 2<<20 {
		s.axumRejection(w, r, http.StatusRequestEntityTooLarge, "Failed to buffer the request body: length limit exceeded")
		return
	}
	files, syntaxErr, dataErr := parseFilesBody(body)
	if syntaxErr != nil {
		s.axumRejection(w, r, http.StatusBadRequest, fmt.Sprintf("Failed to parse the request body as JSON: %v", syntaxErr))
		return
	}
	if dataErr != nil {
		s.axumRejection(w, r, http.StatusUnprocessableEntity, fmt.Sprintf("Failed to deserialize the JSON body into the target type: %v", dataErr))
		return
	}
	o, aerr := s.ingestAuth(r)
	if aerr != nil {
		s.ingestAppError(w, r, http.StatusUnauthorized, aerr.code, aerr.msg, "auth: "+aerr.msg)
		return
	}
	rid, ok := headerValue(r, "X-Run-Id")
	if !ok {
		s.ingestAppError(w, r, http.StatusBadRequest, "INVALID_HEADER_FORMAT", "Missing required header: X-Run-Id", "missing X-Run-Id")
		return
	}
	project, ok := headerValue(r, "X-Project-Name")
	if !ok {
		s.ingestAppError(w, r, http.StatusBadRequest, "INVALID_HEADER_FORMAT", "Missing required header: X-Project-Name", "missing X-Project-Name")
		return
	}
	runID, err := parseRustU64(rid)
	if err != nil {
		s.reject(ServiceIngest, r, 0, fmt.Sprintf("X-Run-Id %q is not a u64: the real handler panics on .unwrap() and drops the connection", rid))
		panic(http.ErrAbortHandler)
	}
	st := s.streams.get(streamKey{org: o.id, project: project, runID: runID})
	resp := make(map[string][]map[string]string)
	now := time.Now()
	st.mu.Lock()
	for _, f := range files {
		key := fmt.Sprintf("%s/%s/%d/%s/%s", o.id, project, runID, f.LogName, f.FileName)
		u := s.presign(key, now)
		st.files = append(st.files, &File{
			FileName: f.FileName, LogName: f.LogName, LogGroup: logGroupOf(f.LogName),
			FileType: fileTypeExtension(f.FileType), SentFileType: f.FileType,
			FileSize: f.FileSize, Step: f.Step, Time: f.Time, SampleIndex: f.SampleIndex,
			Caption: f.Caption, Annotations: f.Annotations, Key: key, URL: u, RequestedAt: now,
		})
		resp[f.LogName] = append(resp[f.LogName], map[string]string{f.FileName: u})
	}
	st.mu.Unlock()
	s.cnt.filesPresigned.Add(int64(len(files)))
	infoOf(r).records = len(files)
	writeJSON(w, http.StatusOK, resp)
}

// fileTypeExtension is FileType::extension() of files.rs: what mlop_files
// stores. Unknown types are FileType::Custom, whose extension is "".
func fileTypeExtension(ft string) string {
	switch l := strings.ToLower(ft); l {
	case "jpeg", "jpg", "png", "gif", "svg", "webp", "mp4", "webm", "avi", "mov", "mp3", "wav", "ogg",
		"pdf", "doc", "docx", "xls", "xlsx", "txt", "json", "csv", "xml", "onnx", "pkl", "h5",
		"tflite", "savedmodel", "pt", "ckpt":
		return l
	case "yaml", "yml":
		return "yaml"
	}
	return ""
}

// parseFilesBody decodes FileUploadRequest with serde_json rules: syntax
// errors and data (shape) errors are reported apart, unknown keys ignored.
func parseFilesBody(body []byte) (files []fileRequest, syntaxErr, dataErr error) {
	v, err := parseJSONValue(body)
	if err != nil {
		return nil, err, nil
	}
	if v.kind != jvObject {
		return nil, nil, fmt.Errorf("invalid type: %s, expected struct FileUploadRequest", v.describe())
	}
	fv, ok, dup := v.field("files")
	if dup {
		return nil, nil, errors.New("duplicate field `files`")
	}
	if !ok {
		return nil, nil, errors.New("missing field `files`")
	}
	if fv.kind != jvArray {
		return nil, nil, fmt.Errorf("files: invalid type: %s, expected a sequence", fv.describe())
	}
	for i, e := range fv.arr {
		f, err := decodeFileInfo(e)
		if err != nil {
			return nil, nil, fmt.Errorf("files[%d]: %w", i, err)
		}
		files = append(files, f)
	}
	return files, nil, nil
}

func decodeFileInfo(v *jsonValue) (fileRequest, error) {
	var f fileRequest
	if v.kind != jvObject {
		return f, fmt.Errorf("invalid type: %s, expected struct FileUploadInfo", v.describe())
	}
	strField := func(name string, dst *string) error {
		fv, ok, dup := v.field(name)
		switch {
		case dup:
			return fmt.Errorf("duplicate field `%s`", name)
		case !ok:
			return fmt.Errorf("missing field `%s`", name)
		case fv.kind != jvString:
			return fmt.Errorf("%s: invalid type: %s, expected a string", name, fv.describe())
		}
		*dst = fv.str
		return nil
	}
	u64Field := func(name string, dst *uint64, bits int) error {
		fv, ok, dup := v.field(name)
		switch {
		case dup:
			return fmt.Errorf("duplicate field `%s`", name)
		case !ok:
			return fmt.Errorf("missing field `%s`", name)
		}
		n, err := fv.uint(bits)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*dst = n
		return nil
	}
	optStr := func(name string) (*string, error) {
		fv, ok, dup := v.field(name)
		switch {
		case dup:
			return nil, fmt.Errorf("duplicate field `%s`", name)
		case !ok || fv.kind == jvNull:
			return nil, nil
		case fv.kind != jvString:
			return nil, fmt.Errorf("%s: invalid type: %s, expected a string", name, fv.describe())
		}
		s := fv.str
		return &s, nil
	}
	if err := strField("fileName", &f.FileName); err != nil {
		return f, err
	}
	if err := strField("logName", &f.LogName); err != nil {
		return f, err
	}
	if err := u64Field("fileSize", &f.FileSize, 64); err != nil {
		return f, err
	}
	// fileType: a string, or {"custom": "<mime>"}.
	ft, ok, dup := v.field("fileType")
	switch {
	case dup:
		return f, errors.New("duplicate field `fileType`")
	case !ok:
		return f, errors.New("missing field `fileType`")
	case ft.kind == jvString:
		f.FileType = ft.str
	case ft.kind == jvObject:
		c, ok, _ := ft.field("custom")
		if !ok || c.kind != jvString {
			return f, errors.New("fileType: missing field `custom`")
		}
		f.FileType = c.str
	default:
		return f, fmt.Errorf("fileType: invalid type: %s, expected a string or an object with 'custom' field", ft.describe())
	}
	if err := u64Field("step", &f.Step, 64); err != nil {
		return f, err
	}
	if err := u64Field("time", &f.Time, 64); err != nil {
		return f, err
	}
	if _, ok, _ := v.field("sampleIndex"); ok {
		var si uint64
		if err := u64Field("sampleIndex", &si, 32); err != nil {
			return f, err
		}
		f.SampleIndex = uint32(si)
	}
	var err error
	if f.Caption, err = optStr("caption"); err != nil {
		return f, err
	}
	if f.Annotations, err = optStr("annotations"); err != nil {
		return f, err
	}
	return f, nil
}

// ingestStep answers POST /step with the max raw step of the run's metrics.
func (s *Server) ingestStep(w http.ResponseWriter, r *http.Request) {
	o, aerr := s.ingestAuth(r)
	if aerr != nil {
		s.ingestAppError(w, r, http.StatusUnauthorized, aerr.code, aerr.msg, "auth: "+aerr.msg)
		return
	}
	runID, project, herr := enrichment(r)
	if herr != nil {
		s.ingestAppError(w, r, http.StatusBadRequest, "INVALID_HEADER_FORMAT", herr.msg, herr.msg)
		return
	}
	var step uint64
	if st := s.streams.lookup(streamKey{o.id, project, runID}); st != nil {
		st.mu.Lock()
		step = st.maxStep
		st.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"step": step})
}
