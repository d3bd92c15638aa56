package mlopfake

import (
	"fmt"
	"net/http"
	"strings"
)

type org struct {
	id   string
	slug string
}

// apiKey is an api_key row. Guarded by Server.mu.
type apiKey struct {
	org     *org
	revoked bool
	expired bool
}

// KeyState is the lifecycle state of an API key.
type KeyState string

// Key states, as the real api_key row expresses them.
const (
	KeyActive  KeyState = "active"
	KeyRevoked KeyState = "revoked" // revokedAt set
	KeyExpired KeyState = "expired" // expiresAt in the past
)

// SetKeyState adds key to the home organisation if unknown, then sets its
// state. Use it to revoke or expire a key in the middle of a test.
func (s *Server) SetKeyState(key string, state KeyState) error {
	if err := validKeyFormat(key); err != nil {
		return err
	}
	switch state {
	case KeyActive, KeyRevoked, KeyExpired:
	default:
		return fmt.Errorf("key state %q: want active, revoked or expired", state)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	if k == nil {
		k = &apiKey{org: s.orgs[s.opts.OrgSlug]}
		s.keys[key] = k
	}
	k.revoked = state == KeyRevoked
	k.expired = state == KeyExpired
	return nil
}

// RevokeKey marks key revoked: every service answers 401 for it (the py
// service included; it checks revocation since the 2026 server).
func (s *Server) RevokeKey(key string) error { return s.SetKeyState(key, KeyRevoked) }

// ExpireKey marks key expired.
func (s *Server) ExpireKey(key string) error { return s.SetKeyState(key, KeyExpired) }

// AddKey adds an active key to the home organisation.
func (s *Server) AddKey(key string) error { return s.SetKeyState(key, KeyActive) }

// keyProblem looks the key up. It returns the org, or the failure message the
// real services use ("Key not found" / "API key has expired" / "... revoked").
func (s *Server) keyProblem(key string) (*org, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	switch {
	case k == nil:
		return nil, "not found"
	case k.expired:
		return nil, "API key has expired"
	case k.revoked:
		return nil, "API key has been revoked"
	}
	return k.org, ""
}

// backendAuth is withApiKey (web/server/routes/middleware.ts): the key is the
// second space-separated word of Authorization; the scheme word is not
// checked. On failure it writes the 401 and returns nil.
func (s *Server) backendAuth(w http.ResponseWriter, r *http.Request) *org {
	parts := strings.Split(r.Header.Get("Authorization"), " ")
	key := ""
	if len(parts) > 1 {
		key = parts[1]
	}
	fail := func(body map[string]string, reason string) *org {
		s.reject(ServiceAPI, r, http.StatusUnauthorized, reason)
		writeJSON(w, http.StatusUnauthorized, body)
		return nil
	}
	if key == "" {
		return fail(map[string]string{"error": "Unauthorized"}, "missing API key")
	}
	if !strings.HasPrefix(key, "mlps_") && !strings.HasPrefix(key, "mlpi_") {
		return fail(map[string]string{"error": "Unauthorized", "message": "Invalid API key"}, "API key without mlps_/mlpi_ prefix")
	}
	o, problem := s.keyProblem(key)
	switch problem {
	case "":
		return o
	case "not found":
		return fail(map[string]string{"error": "Unauthorized", "message": "Key not found"}, "unknown API key")
	default:
		return fail(map[string]string{"error": "Unauthorized", "message": problem}, problem)
	}
}

// ingestAuthError is the AppError of ingest/src/auth.rs and db.rs.
type ingestAuthError struct {
	code string // SCREAMING_SNAKE_CASE for the JSON body
	name string // Rust variant name for Display
	num  int
	msg  string
}

func (e *ingestAuthError) Error() string {
	return fmt.Sprintf("%s (%d - Authentication Error): %s", e.name, e.num, e.msg)
}

// ingestAuth is extract_bearer_token + get_tenant_by_api_key.
func (s *Server) ingestAuth(r *http.Request) (*org, *ingestAuthError) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, &ingestAuthError{"MISSING_TOKEN", "MissingToken", 1003, "Missing Authorization header"}
	}
	h := vals[0]
	if !visibleASCII(h) {
		return nil, &ingestAuthError{"INVALID_TOKEN_FORMAT", "InvalidTokenFormat", 1006, "Authorization header contains invalid characters"}
	}
	if !strings.HasPrefix(h, "Bearer ") {
		return nil, &ingestAuthError{"INVALID_BEARER_FORMAT", "InvalidBearerFormat", 1007, "Authorization header must start with 'Bearer '"}
	}
	token := strings.TrimSpace(h[len("Bearer "):])
	if token == "" {
		return nil, &ingestAuthError{"INVALID_TOKEN", "InvalidToken", 1002, "Bearer token cannot be empty"}
	}
	for _, c := range token {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, &ingestAuthError{"INVALID_TOKEN_FORMAT", "InvalidTokenFormat", 1006, "Bearer token contains invalid characters"}
		}
	}
	o, problem := s.keyProblem(token)
	switch problem {
	case "":
		return o, nil
	case "not found":
		return nil, &ingestAuthError{"INVALID_TOKEN", "InvalidToken", 1002, "Invalid API key"}
	default:
		return nil, &ingestAuthError{"INVALID_TOKEN", "InvalidToken", 1002, problem}
	}
}

// pyAuth is check_api_key of py/python/server.py: a Bearer key that exists,
// is not expired and (2026 server) not revoked.
func (s *Server) pyAuth(r *http.Request) (*org, string) {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(key) == "" {
		return nil, "missing or non-Bearer Authorization"
	}
	o, problem := s.keyProblem(strings.TrimSpace(key))
	if problem == "not found" {
		problem = "unknown API key"
	}
	return o, problem
}

// visibleASCII is http::HeaderValue::to_str's test: only visible ASCII and tab.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}
