package neptune

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// pathMap re-roots absolute paths recorded on the producing machine
// (neptune-client UploadFile.file_path and file globs, neptune-scale
// file_upload_requests.source_path) onto this machine.
type pathMap []pathRule

type pathRule struct{ from, to string }

// parsePathMap reads "from=to" rules separated by ';' or newlines.
func parsePathMap(s string) (pathMap, error) {
	var pm pathMap
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(from) == "" {
			return nil, fmt.Errorf("parse %s %q: want from=to", ParamPathMap, part)
		}
		pm = append(pm, pathRule{from: filepath.Clean(strings.TrimSpace(from)), to: filepath.Clean(strings.TrimSpace(to))})
	}
	return pm, nil
}

// apply rewrites p with the longest matching rule (matching whole path
// components).
func (pm pathMap) apply(p string) string {
	best := -1
	for i, r := range pm {
		if (p == r.from || strings.HasPrefix(p, r.from+string(filepath.Separator))) && (best < 0 || len(r.from) > len(pm[best].from)) {
			best = i
		}
	}
	if best < 0 {
		return p
	}
	return pm[best].to + p[len(pm[best].from):]
}

// regularFile reports whether p names an existing regular file.
func regularFile(p string) bool {
	if p == "" {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// spool writes inline file content (neptune-client LogImages and
// UploadFileContent carry base64 data, not a path) to a file the agent can
// upload. The name is derived from key, so reading the same operation
// again finds the same file instead of writing another. A file with a name
// of its own (a LogImages image's name) keeps it, in a directory derived
// from key, so the upload carries it as its file name.
func spool(dir, key, own, ext string, data []byte) (string, error) {
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:12])
	if own = sanitizeName(own); own != "" {
		dir, name = filepath.Join(dir, name), own
	}
	if ext != "" {
		name += "." + sanitizeExt(ext)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("spool %s: %w", key, err)
	}
	p := filepath.Join(dir, name)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return p, nil
	}
	tmp, err := os.CreateTemp(dir, ".spool-*")
	if err != nil {
		return "", fmt.Errorf("spool %s: %w", key, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("spool %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("spool %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("spool %s: %w", key, err)
	}
	return p, nil
}

// sanitizeName makes a file name of a producer's name: letters, digits,
// '-', '_' and inner '.' kept, anything else '_', at most 100 bytes; ""
// when nothing usable is left.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 100 {
			break
		}
		switch {
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.Trim(b.String(), "._")
	if strings.Trim(out, "_-") == "" {
		return ""
	}
	return out
}

func sanitizeExt(ext string) string {
	ext = strings.TrimPrefix(ext, ".")
	var b strings.Builder
	for _, r := range ext {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 || b.Len() > 16 {
		return "bin"
	}
	return b.String()
}

// imageExt sniffs the format of image bytes.
func imageExt(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		return "jpg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) > 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(data, []byte("BM")):
		return "bmp"
	}
	return "png"
}
