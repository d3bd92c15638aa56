package mlop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("health check sent credentials")
		}
		if r.URL.Path == "/health" {
			w.Write([]byte("OK"))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c, err := New(Options{APIURL: srv.URL, IngestURL: srv.URL, PyURL: srv.URL, APIKey: "mlpi_testkey"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Health(context.Background(), srv.URL+"/health"); err != nil {
		t.Errorf("healthy service: %v", err)
	}
	if err := c.Health(context.Background(), srv.URL+"/nope"); err == nil {
		t.Error("404 reported healthy")
	}
}
