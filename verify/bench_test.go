package verify

import (
	"context"
	"fmt"
	"testing"

	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// BenchmarkVerifyRun checks a run of 10 metrics x 100,000 steps against
// the stand-in in this process (both sides on the same cores).
func BenchmarkVerifyRun(b *testing.B) {
	const steps, metrics = 100000, 10
	sc := func(ctx context.Context, c *mlop.Client) error {
		r, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "bench", ExternalID: "bench"})
		if err != nil {
			return err
		}
		var body []byte
		for s := 1; s <= steps; s++ {
			body = fmt.Appendf(body, `{"time":%d,"step":%d,"data":{`, 1700000000000+s, s)
			for m := range metrics {
				if m > 0 {
					body = append(body, ',')
				}
				body = fmt.Appendf(body, `"m%d":%g`, m, float64(s*m)/7)
			}
			body = append(body, "}}\n"...)
			if len(body) > 1<<20 || s == steps {
				if err := c.SendMetrics(ctx, r.ID, "proj", body, 0); err != nil {
					return err
				}
				body = body[:0]
			}
		}
		return nil
	}
	srv := startFake(b)
	migrate(b, srv, sc)
	cp := capture(b, sc)
	c := client(b, mlop.Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: "mlpi_testkey", ReadOnly: true})
	b.ResetTimer()
	for range b.N {
		rep, err := Run(context.Background(), c, cp, Options{Live: true})
		if err != nil || rep.Points != steps*metrics {
			b.Fatalf("%v %s", err, rep.Summary())
		}
	}
	b.ReportMetric(float64(steps*metrics*b.N)/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkRecorderMetrics decodes and spools metric bodies as the agent
// sends them (5,000 lines of 10 metrics).
func BenchmarkRecorderMetrics(b *testing.B) {
	rec := NewRecorder(b.TempDir())
	c := client(b, mlop.Options{APIURL: CaptureAPIURL, IngestURL: CaptureIngestURL, PyURL: CapturePyURL, APIKey: "mlpi_capture",
		Project: "proj", Transport: rec})
	ctx := context.Background()
	r, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "bench", ExternalID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	for s := 1; s <= 5000; s++ {
		body = fmt.Appendf(body, `{"time":%d,"step":%d,"data":{`, 1700000000000+s, s)
		for m := range 10 {
			if m > 0 {
				body = append(body, ',')
			}
			body = fmt.Appendf(body, `"train/metric_%d":%g`, m, float64(s*m)/7)
		}
		body = append(body, "}}\n"...)
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		if err := c.SendMetrics(ctx, r.ID, "proj", body, 5000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(50000*b.N)/b.Elapsed().Seconds(), "points/s")
}
