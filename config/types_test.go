package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    Duration
		wantErr bool
	}{
		{"1s", Duration(time.Second), false},
		{"500ms", Duration(500 * time.Millisecond), false},
		{"1m30s", Duration(90 * time.Second), false},
		{"2h", Duration(2 * time.Hour), false},
		{"0", 0, false},
		{"0s", 0, false},
		{" 10ms ", Duration(10 * time.Millisecond), false},
		{"-5s", Duration(-5 * time.Second), false}, // syntax is fine; validation rejects it
		{"never", Never, false},
		{"30", 0, true},
		{"1 s", 0, true},
		{"1d", 0, true},
		{"", 0, true},
		{"Never", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("%q", strings.TrimSpace(tc.in))) {
					t.Errorf("error %q should wrap ErrInvalid and quote the input", err)
				}
				return
			}
			if got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   Duration
		want string
	}{
		{Duration(90 * time.Second), "1m30s"},
		{Duration(500 * time.Millisecond), "500ms"},
		{0, "0s"},
		{Never, "never"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		// String output parses back to the same value.
		back, err := ParseDuration(tc.want)
		if err != nil || back != tc.in {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.want, back, err, tc.in)
		}
	}
	if Duration(-1).IsNever() || !Never.IsNever() {
		t.Error("IsNever is wrong")
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{"1024", 1024, ""},
		{"0", 0, ""},
		{"64KiB", 64 << 10, ""},
		{"1MiB", 1 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"10MB", 10_000_000, ""},
		{"1KB", 1000, ""},
		{"1kb", 1000, ""},
		{"1mib", 1 << 20, ""},
		{"1 MiB", 1 << 20, ""},
		{"512B", 512, ""},
		{"1.5MiB", 3 << 19, ""},
		{"0.5KB", 500, ""},
		{"1M", 0, "ambiguous"},
		{"1k", 0, "ambiguous"},
		{"1XB", 0, "unknown unit"},
		{"MiB", 0, "want a number"},
		{"-1", 0, "want a number"},
		{"", 0, "want a number"},
		{"1.2.3MiB", 0, "malformed number"},
		{"9223372036854775807", 9223372036854775807, ""},
		{"9223372036854775808", 0, "too large"},
		{"9000000TiB", 0, "too large"},
		{"1e6", 0, "unknown unit"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseByteSize(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1 << 20, "1MiB"},
		{64 << 20, "64MiB"},
		{10_000_000, "10MB"},
		{1500, "1500"},
		{3 << 19, "1536KiB"},
	}
	for _, tc := range tests {
		got := tc.in.String()
		if got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseByteSize(got)
		if err != nil || back != tc.in {
			t.Errorf("round trip of %d via %q = %d, %v", int64(tc.in), got, back, err)
		}
	}
}

const testKey = "mlpi_SuperSecretKey123"

// TestSecretRedaction checks every way a Secret (alone or inside a Config)
// can be printed or serialised.
func TestSecretRedaction(t *testing.T) {
	s := Secret(testKey)
	c := Default()
	c.Server.APIKey = s
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		outputs["secret "+verb] = fmt.Sprintf(verb, s)
		outputs["config "+verb] = fmt.Sprintf(verb, c)
		outputs["*config "+verb] = fmt.Sprintf(verb, *c)
		outputs["server "+verb] = fmt.Sprintf(verb, c.Server)
	}
	outputs["Sprint"] = fmt.Sprint(s, c)
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()
	for name, v := range map[string]any{"secret": s, "config": c} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs["json "+name] = string(b)
	}
	text, _ := s.MarshalText()
	outputs["MarshalText"] = string(text)
	y, err := c.MarshalRedacted()
	if err != nil {
		t.Fatal(err)
	}
	outputs["MarshalRedacted"] = string(y)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", s, "cfg", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", s, "cfg", c)
	outputs["slog"] = buf.String()

	for name, out := range outputs {
		if strings.Contains(out, testKey) || strings.Contains(out, fmt.Sprintf("%x", testKey)) || strings.Contains(out, fmt.Sprintf("%X", testKey)) {
			t.Errorf("%s leaks the key: %s", name, out)
		}
	}
	if !strings.Contains(outputs["secret %v"], "[REDACTED]") || !strings.Contains(outputs["json config"], `"APIKey":"[REDACTED]"`) {
		t.Errorf("redacted form missing: %q, %q", outputs["secret %v"], outputs["json config"])
	}
	if s.Reveal() != testKey {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("empty secret prints %q, want empty", got)
	}
}
