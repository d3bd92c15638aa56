package mlopfake

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Count mode: a minimal receiver for benchmarks. Every endpoint answers a
// valid 200 without validating or storing anything; NDJSON lines and metric
// points are only counted. /_standin/ works as in strict mode (the run list
// stays empty).

func (s *Server) countHandlers() map[Service]http.Handler {
	ok := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":true}`)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, standinPrefix):
			s.serveStandin(w, r)
		case p == "/api/health":
			io.WriteString(w, "OK")
		case p == "/api/slug":
			writeJSON(w, http.StatusOK, map[string]any{"organization": map[string]string{"slug": s.opts.OrgSlug}})
		case p == "/api/runs/create" || p == "/api/runs/resume":
			drain(r.Body)
			id := s.opts.FirstRunID + s.countRuns.Add(1) - 1
			n := id - s.opts.FirstRunID + 1
			s.cnt.runsCreated.Add(1)
			fmt.Fprintf(w, `{"runId":%d,"number":%d,"displayId":"RUN-%d","projectName":"count","organizationSlug":%q,"url":"%s/o/%s/projects/count/%s","resumed":%v,"forkedFromRunId":null,"forkStep":null}`,
				id, n, n, s.opts.OrgSlug, s.AppURL(), s.opts.OrgSlug, sqidLike(id), p == "/api/runs/resume")
		default:
			drain(r.Body)
			ok(w)
		}
	})
	ingest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			io.WriteString(w, "OK")
		case "/ingest/metrics", "/ingest/data", "/ingest/logs":
			lines, points, n := countNDJSON(r.Body, r.URL.Path == "/ingest/metrics")
			s.cnt.ingestBytes.Add(n)
			switch r.URL.Path {
			case "/ingest/metrics":
				s.cnt.metricRequests.Add(1)
				s.cnt.metricLines.Add(lines)
				s.cnt.metricPoints.Add(points)
				fmt.Fprintf(w, "Stream processed successfully: %d records", points)
			case "/ingest/data":
				s.cnt.dataLines.Add(lines)
				fmt.Fprintf(w, "Stream processed successfully: %d records", lines)
			default:
				s.cnt.logLines.Add(lines)
				fmt.Fprintf(w, "Stream processed successfully: %d records", lines)
			}
		case "/files":
			s.cnt.fileRequests.Add(1)
			var req struct {
				Files []struct {
					FileName string `json:"fileName"`
					LogName  string `json:"logName"`
				} `json:"files"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			resp := make(map[string][]map[string]string)
			now := time.Now()
			for _, f := range req.Files {
				key := fmt.Sprintf("count/%s/%s/%s/%s", r.Header.Get("X-Project-Name"), r.Header.Get("X-Run-Id"), f.LogName, f.FileName)
				resp[f.LogName] = append(resp[f.LogName], map[string]string{f.FileName: s.presign(key, now)})
			}
			s.cnt.filesPresigned.Add(int64(len(req.Files)))
			writeJSON(w, http.StatusOK, resp)
		case "/step":
			io.WriteString(w, `{"step":0}`)
		default:
			drain(r.Body)
			w.WriteHeader(http.StatusOK)
		}
	})
	py := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		drain(r.Body)
		switch r.URL.Path {
		case "/api/runs/trigger":
			s.cnt.heartbeats.Add(1)
			io.WriteString(w, `{"status":"RUNNING","triggers":null}`)
		case "/api/runs/alert":
			s.cnt.alerts.Add(1)
			io.WriteString(w, `{"status":"success"}`)
		default:
			io.WriteString(w, `{"status":"ok"}`)
		}
	})
	s3 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPut {
			s.cnt.s3Puts.Add(1)
			s.cnt.s3PutBytes.Add(n)
		}
		w.WriteHeader(http.StatusOK)
	})
	return map[Service]http.Handler{ServiceAPI: api, ServiceIngest: ingest, ServicePy: py, ServiceS3: s3}
}

// countNDJSON counts non-blank lines and, for metrics, the entries of each
// line's data object (colons at nesting depth 2 outside strings).
func countNDJSON(body io.Reader, metrics bool) (lines, points, n int64) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	var depth int
	var inStr, esc, blank bool
	blank = true
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		for _, c := range chunk {
			switch {
			case inStr:
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
				}
			case c == '"':
				inStr = true
				blank = false
			case c == '{' || c == '[':
				depth++
				blank = false
			case c == '}' || c == ']':
				depth--
			case c == ':':
				if metrics && depth == 2 {
					points++
				}
			case c == '\n':
				if !blank {
					lines++
				}
				blank, depth, inStr = true, 0, false
			case c != ' ' && c != '\t' && c != '\r':
				blank = false
			}
		}
		if err != nil {
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
	}
	if !blank {
		lines++
	}
	return lines, points, n
}
