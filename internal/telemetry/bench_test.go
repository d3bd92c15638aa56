package telemetry

import (
	"testing"
	"time"
)

func BenchmarkRecordsRead(b *testing.B) {
	tel := New(Options{Sources: []string{"train"}})
	b.ReportAllocs()
	for b.Loop() {
		tel.RecordsRead("train", 100)
	}
}

func BenchmarkRequest(b *testing.B) {
	tel := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		tel.Request("metrics", 200, 3*time.Millisecond)
	}
}

func BenchmarkBatchSize(b *testing.B) {
	tel := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		tel.BatchSize("metrics", 5000, 1<<20)
	}
}

func BenchmarkHotPathParallel(b *testing.B) {
	tel := New(Options{Sources: []string{"train"}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tel.RecordsRead("train", 100)
			tel.LinesSent("metrics", 100)
			tel.PointsSent(1000)
			tel.Request("metrics", 200, 3*time.Millisecond)
			tel.BatchSize("metrics", 5000, 1<<20)
		}
	})
}

func BenchmarkNil(b *testing.B) {
	var tel *Telemetry
	b.ReportAllocs()
	for b.Loop() {
		tel.RecordsRead("train", 100)
		tel.Request("metrics", 200, 3*time.Millisecond)
	}
}
