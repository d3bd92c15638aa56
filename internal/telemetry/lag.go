package telemetry

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// Lag is how far one stream is behind: what was written to it but not yet
// acknowledged by the server.
type Lag struct {
	// Source is the configured source name (the only label).
	Source string
	// Path identifies the stream for the agent's own use (debugging); it
	// is never exported as a label.
	Path string
	// BytesBehind is the stream's size minus its acknowledged offset.
	BytesBehind int64
	// SecondsBehind is how old the oldest unacknowledged data is (0 when
	// the stream is caught up).
	SecondsBehind float64
}

// SetLagFunc registers the callback that reports every stream's lag. It is
// called at each scrape, from the scraping goroutine, so it must be safe
// for concurrent use and quick. nil removes it (lag then reads zero).
func (t *Telemetry) SetLagFunc(f func() []Lag) {
	if t == nil {
		return
	}
	if f == nil {
		t.lagFunc.Store(nil)
		return
	}
	t.lagFunc.Store(&f)
}

var (
	lagBytesDesc = prometheus.NewDesc(namespace+"_lag_bytes",
		"Bytes written to the source's streams and not yet acknowledged by the server, summed over its streams.",
		[]string{"source"}, nil)
	lagSecondsDesc = prometheus.NewDesc(namespace+"_lag_seconds",
		"Age of the oldest unacknowledged data among the source's streams (the maximum over its streams).",
		[]string{"source"}, nil)
	streamsBehindDesc = prometheus.NewDesc(namespace+"_streams_behind",
		"Streams of the source with unacknowledged bytes.",
		[]string{"source"}, nil)
)

// lagCollector turns the agent's per-stream lag into per-source series at
// scrape time. Paths never become labels: 10,000 files make one series
// per source.
type lagCollector struct{ t *Telemetry }

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagBytesDesc
	ch <- lagSecondsDesc
	ch <- streamsBehindDesc
}

type lagAgg struct {
	bytes   int64
	seconds float64
	behind  int
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.t
	agg := map[string]*lagAgg{}
	// Every known source reports, at zero when it has no stream behind.
	for _, s := range *t.sources.Load() {
		if agg[s.label] == nil {
			agg[s.label] = &lagAgg{}
		}
	}
	if f := t.lagFunc.Load(); f != nil {
		for _, l := range (*f)() {
			label := t.source(l.Source).label
			a := agg[label]
			if a == nil {
				a = &lagAgg{}
				agg[label] = a
			}
			if l.BytesBehind > 0 {
				a.bytes += l.BytesBehind
				a.behind++
			}
			if l.SecondsBehind > a.seconds {
				a.seconds = l.SecondsBehind
			}
		}
	}
	labels := make([]string, 0, len(agg))
	for k := range agg {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	for _, k := range labels {
		a := agg[k]
		ch <- prometheus.MustNewConstMetric(lagBytesDesc, prometheus.GaugeValue, float64(a.bytes), k)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, a.seconds, k)
		ch <- prometheus.MustNewConstMetric(streamsBehindDesc, prometheus.GaugeValue, float64(a.behind), k)
	}
}
