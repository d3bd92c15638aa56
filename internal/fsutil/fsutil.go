// Package fsutil holds the durable-write helpers shared by the packages that
// persist state.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data so that a crash at any instant
// leaves either the old or the new content, never a mix: it writes a
// temporary file in the same directory, fsyncs it, renames it over path and
// fsyncs the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteFileAtomicSteps(path, data, perm, nil)
}

// The steps of WriteFileAtomic, in order, as WriteFileAtomicSteps names
// them.
var AtomicSteps = []string{"create", "write", "sync", "close", "rename", "syncdir"}

// WriteFileAtomicSteps is WriteFileAtomic that calls step (when not nil)
// before each of AtomicSteps. An error from step stops the write there and
// leaves everything as it is — a temporary file half done, a rename not yet
// made durable — as a process killed at that instant would: tests use it to
// show that a crash at any step loses nothing.
func WriteFileAtomicSteps(path string, data []byte, perm os.FileMode, step func(string) error) error {
	at := func(name string) error {
		if step == nil {
			return nil
		}
		return step(name)
	}
	dir := filepath.Dir(path)
	if err := at("create"); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	ok, killed := false, false
	defer func() {
		if !ok && !killed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	kill := func(err error) error { killed = true; f.Close(); return err }
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := at("write"); err != nil {
		return kill(err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := at("sync"); err != nil {
		return kill(err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := at("close"); err != nil {
		return kill(err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := at("rename"); err != nil {
		killed = true
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	if err := at("syncdir"); err != nil {
		return err
	}
	return SyncDir(dir)
}

// TempPrefix is the name prefix of WriteFileAtomic's temporary files for
// path (".<name>.tmp-"), so an owner can remove the ones a crash left.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// SyncDir fsyncs a directory so a rename inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
