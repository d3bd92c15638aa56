package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// startPprof serves Go's profiler on MLOP_AGENT_PPROF (host:port) when it
// is set: a debugging aid, off by default, never on the metrics listener.
func startPprof(log *slog.Logger) {
	addr := os.Getenv("MLOP_AGENT_PPROF")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/heap", pprof.Index)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("pprof listener not started", "addr", addr, "error", err)
		return
	}
	log.Info("serving pprof (MLOP_AGENT_PPROF)", "addr", ln.Addr().String())
	go http.Serve(ln, mux)
}
