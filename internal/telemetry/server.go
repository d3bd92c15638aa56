package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultFlushTimeout bounds POST /flush when Hooks.FlushTimeout is zero.
const DefaultFlushTimeout = 30 * time.Second

// ErrNoTelemetry is returned by Listen and Serve on a nil *Telemetry.
var ErrNoTelemetry = errors.New("telemetry is not enabled")

// Hooks connect the HTTP endpoints to the agent.
type Hooks struct {
	// Ready answers GET /readyz: 200 when ready, else 503 with the reason
	// as text. The reason must not contain secrets. nil: always ready.
	// ReadyTracker.Ready fits.
	Ready func() (ready bool, reason string)
	// Flush answers POST /flush: the agent cuts every partial batch and
	// waits until everything is acknowledged or ctx ends, whichever comes
	// first, and returns ctx.Err() in the latter case. It may be called
	// concurrently. nil: /flush answers 501.
	Flush func(ctx context.Context) error
	// FlushTimeout bounds a flush (DefaultFlushTimeout when <= 0). A
	// request may ask for less with ?timeout=10s.
	FlushTimeout time.Duration
}

// Server is a running HTTP listener. Its goroutine is owned by whoever
// called Listen, who must Close it.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	log    *slog.Logger
	cancel context.CancelFunc // ends the handlers' base context
	done   chan struct{}      // closed when the serve goroutine has returned
	err    error              // the serve goroutine's error; read after done

	closeOnce sync.Once
	closeErr  error
}

// Listen binds addr (host:port; port 0 picks a free one) and serves the
// endpoints in a goroutine of its own until Close:
//
//	GET  /metrics  the metrics (Prometheus text format)
//	GET  /healthz  200 "ok" while the process runs
//	GET  /readyz   200 "ok" or 503 and the reason (Hooks.Ready)
//	POST /flush    deliver everything buffered: 200, 504 on timeout (Hooks.Flush)
//	GET  /         a list of these endpoints
//
// Other methods get 405, other paths 404. Answers carry no error text and
// no configuration, only metrics, fixed text and Hooks.Ready's reason.
//
// Binding happens before Listen returns, so a port in use is reported
// here rather than later.
func (t *Telemetry) Listen(addr string, h Hooks) (*Server, error) {
	if t == nil {
		return nil, ErrNoTelemetry
	}
	if h.FlushTimeout <= 0 {
		h.FlushTimeout = DefaultFlushTimeout
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, log: t.log, cancel: cancel, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           t.mux(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A flush may legitimately take FlushTimeout; the answer must
		// still get out after it.
		WriteTimeout:   h.FlushTimeout + 10*time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 16 << 10,
		BaseContext:    func(net.Listener) context.Context { return base },
		ErrorLog:       slog.NewLogLogger(t.log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("serve on %s: %w", ln.Addr(), err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on (with the port picked when
// Listen was given port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener: it cancels running handlers (a flush in
// progress ends), waits up to 5 s for them to answer, and waits for the
// serve goroutine to return. It is idempotent and returns the serve
// goroutine's error, if it failed on its own.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close() // handlers did not finish in time: cut their connections
		}
		<-s.done
		s.closeErr = s.err
	})
	return s.closeErr
}

// Serve is Listen until ctx ends, then Close. It returns nil after ctx
// ends, or the error that stopped the listener.
func (t *Telemetry) Serve(ctx context.Context, addr string, h Hooks) error {
	s, err := t.Listen(addr, h)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	return s.Close()
}

const textPlain = "text/plain; charset=utf-8"

// mux builds the handler tree. Method patterns make the mux answer 405
// (with Allow) to other methods and 404 to other paths.
func (t *Telemetry) mux(h Hooks) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /metrics", t.handler)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if h.Ready == nil {
			text(w, http.StatusOK, "ok")
			return
		}
		if ok, reason := h.Ready(); !ok {
			text(w, http.StatusServiceUnavailable, reason)
			return
		}
		text(w, http.StatusOK, "ok")
	})
	m.HandleFunc("POST /flush", func(w http.ResponseWriter, r *http.Request) {
		t.flush(w, r, h)
	})
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "mlop-agent\n\n"+
			"GET  /metrics  Prometheus metrics\n"+
			"GET  /healthz  liveness\n"+
			"GET  /readyz   readiness (503 and the reason when not ready)\n"+
			"POST /flush    deliver everything buffered (?timeout=10s)")
	})
	return m
}

// flush serves POST /flush.
func (t *Telemetry) flush(w http.ResponseWriter, r *http.Request, h Hooks) {
	if h.Flush == nil {
		text(w, http.StatusNotImplemented, "flush is not supported")
		return
	}
	timeout := h.FlushTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			text(w, http.StatusBadRequest, "timeout must be a positive duration such as 10s")
			return
		}
		timeout = min(d, timeout)
	}
	// The body is not used; do not let a client stream one at us.
	io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	start := time.Now()
	err := h.Flush(ctx)
	switch {
	case err == nil:
		text(w, http.StatusOK, "flushed")
	case errors.Is(err, context.DeadlineExceeded):
		text(w, http.StatusGatewayTimeout, fmt.Sprintf("not everything was acknowledged within %s", timeout))
	case errors.Is(err, context.Canceled):
		text(w, http.StatusServiceUnavailable, "flush cancelled")
	default:
		// The error stays in the log: it is the agent's, and an answer
		// must carry nothing that could hold a secret.
		t.log.Error("flush failed", "error", err, "elapsed", time.Since(start))
		text(w, http.StatusInternalServerError, "flush failed; see the agent's log")
	}
}

// text writes a short text/plain answer that is never cached.
func text(w http.ResponseWriter, code int, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", textPlain)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	io.WriteString(w, msg)
}
