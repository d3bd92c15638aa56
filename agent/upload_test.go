package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
)

// TestUploadRoots: files are only uploaded from under the upload roots,
// symlinks resolved.
func TestUploadRoots(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	inFile := filepath.Join(root, "run", "img.png")
	os.MkdirAll(filepath.Dir(inFile), 0o755)
	os.WriteFile(inFile, []byte("x"), 0o644)
	secret := filepath.Join(outside, "secret.txt")
	os.WriteFile(secret, []byte("s"), 0o600)
	link := filepath.Join(root, "run", "link.txt")
	os.Symlink(secret, link)
	real, _ := filepath.EvalSymlinks(root)
	src := &sourceRT{uploadRoots: []string{real}}
	tests := []struct {
		path string
		ok   bool
	}{
		{inFile, true},
		{secret, false},
		{link, false}, // a link inside the root pointing outside
		{filepath.Join(root, "run", "..", "..", filepath.Base(outside), "secret.txt"), false},
		{filepath.Join(root, "missing.png"), false},
	}
	for _, tc := range tests {
		err := src.checkUpload(&event.Event{Kind: event.KindFile, Path: tc.path, Name: "f"})
		if (err == nil) != tc.ok {
			t.Errorf("checkUpload(%s) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}
