package sink

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestStatusErrorClassification(t *testing.T) {
	tests := []struct {
		status       int
		err          error
		unauthorized bool
		notFound     bool
		rejected     bool
		permanent    bool
	}{
		{400, nil, false, false, true, true},
		{401, nil, true, false, false, true},
		{403, nil, true, false, false, true},
		{404, nil, false, true, true, true},
		{408, nil, false, false, false, false},
		{409, nil, false, false, true, true},
		{413, nil, false, false, true, true},
		{422, nil, false, false, true, true},
		{422, ErrUnauthorized, true, false, false, true},
		{403, ErrRejected, false, false, true, true},
		{429, nil, false, false, false, false},
		{500, nil, false, false, false, false},
		{501, nil, false, false, true, true},
		{502, nil, false, false, false, false},
		{503, nil, false, false, false, false},
		{504, nil, false, false, false, false},
		{0, nil, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%v", tt.status, tt.err), func(t *testing.T) {
			var err error = &StatusError{Op: "send metrics", Status: tt.status, Body: "b", Err: tt.err}
			wrapped := fmt.Errorf("flush batch: %w", err)
			if got := errors.Is(wrapped, ErrUnauthorized); got != tt.unauthorized {
				t.Errorf("Is(ErrUnauthorized) = %v", got)
			}
			if got := errors.Is(wrapped, ErrNotFound); got != tt.notFound {
				t.Errorf("Is(ErrNotFound) = %v", got)
			}
			if got := errors.Is(wrapped, ErrRejected); got != tt.rejected {
				t.Errorf("Is(ErrRejected) = %v", got)
			}
			var se *StatusError
			if !errors.As(wrapped, &se) || se.Permanent() != tt.permanent {
				t.Errorf("Permanent() = %v, want %v", se.Permanent(), tt.permanent)
			}
		})
	}
}

func TestStatusErrorMessage(t *testing.T) {
	tests := []struct {
		e    *StatusError
		want string
	}{
		{&StatusError{Op: "login", Status: 401, Body: `{"error":"Unauthorized"}`}, `login: HTTP 401 Unauthorized: {"error":"Unauthorized"}`},
		{&StatusError{Op: "send metrics", Status: 422, Body: "InvalidToken", Err: ErrUnauthorized}, "send metrics: HTTP 422 Unprocessable Entity (unauthorized): InvalidToken"},
		{&StatusError{Op: "put file", Status: 403, Err: ErrRejected}, "put file: HTTP 403 Forbidden"},
		{&StatusError{Op: "trigger", Status: 503}, "trigger: HTTP 503 Service Unavailable"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	if !strings.Contains(ErrNotFound.Error(), "not found") || !errors.Is(ErrNotFound, ErrRejected) {
		t.Errorf("ErrNotFound = %v", ErrNotFound)
	}
}
