package tensorboard

import (
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/parsers"
)

// keyPrefix starts every stream key and run external id of this format.
const keyPrefix = "tensorboard:"

// hparamsYAMLName is Lightning's hparams file, beside the events files.
const hparamsYAMLName = "hparams.yaml"

// Limits of the directory structure considered.
const (
	maxFoldDepth = 4 // a sub-directory folds into an ancestor at most this many levels up
	maxUpward    = 8 // levels searched above a file's directory for the run it belongs to
)

// isEventsFile is TensorBoard's rule ("tfevents" in the name) without its
// dummy files: the profiler's ".profile-empty" files hold no summaries and
// SageMaker's ".sagemaker-uploaded"/"-uploading" names are upload
// markers. Hidden files (rsync's and editors' temporary copies) are left
// out too.
func isEventsFile(name string) bool {
	return strings.Contains(name, "tfevents") && !strings.HasPrefix(name, ".") &&
		!strings.HasSuffix(name, ".profile-empty") && !strings.HasSuffix(name, ".sagemaker-uploaded") &&
		!strings.HasSuffix(name, ".sagemaker-uploading")
}

// listEvents returns the events files directly in dir, sorted (the order
// TensorBoard reads them in: the names start with the writer's start
// time), or nil.
func listEvents(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !isEventsFile(e.Name()) {
			continue
		}
		if e.Type().IsRegular() || (e.Type()&fs.ModeSymlink != 0 && isRegular(filepath.Join(dir, e.Name()))) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

func isRegular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// relName is dir's path relative to root, slash-separated.
func relName(root, dir string) string {
	r, err := filepath.Rel(root, dir)
	if err != nil || r == "." {
		return filepath.Base(dir)
	}
	return filepath.ToSlash(r)
}

// Discover lists the lanes at path: a log directory (walked to any depth:
// every directory holding events files is one), or one events file (the
// lane of its directory; what a source's glob matches, e.g.
// /logs/**/events.out.tfevents.*).
//
// Run names are paths relative to the log directory given; a directory
// that itself holds events files is named by its own name. For a file, the
// log directory is the parent of the topmost directory holding events
// files in the 8 levels above it, so that the name is the run
// directory's name ({{.Dir}}) for the usual layout.
func (f *Format) Discover(path string) ([]parsers.StreamInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", path, err)
	}
	var lanes []*laneInfo
	if fi.IsDir() {
		lanes, err = discoverDir(abs)
		if err != nil {
			return nil, err
		}
	} else {
		if !isEventsFile(filepath.Base(abs)) {
			return nil, nil
		}
		if ln := f.discoverFile(abs); ln != nil {
			lanes = append(lanes, ln)
		}
	}
	out := make([]parsers.StreamInfo, 0, len(lanes))
	f.mu.Lock()
	for _, ln := range lanes {
		f.lanes[ln.key] = ln
	}
	f.mu.Unlock()
	for _, ln := range lanes {
		info := parsers.StreamInfo{Key: ln.key, Path: filepath.Join(ln.dir, ln.files[0]), Parent: ln.parentKey,
			Signature: signature(ln.dir, ln.files)}
		if ln.parentKey == "" {
			info.RunID = ln.runID
		}
		out = append(out, info)
	}
	return out, nil
}

// discoverDir walks a log directory.
func discoverDir(root string) ([]*laneInfo, error) {
	byDir := map[string][]string{}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // an unreadable sub-directory: skip it
		}
		if !d.IsDir() {
			return nil
		}
		if files := listEvents(p); len(files) > 0 {
			byDir[p] = files
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", root, err)
	}
	nameRoot := root
	if byDir[root] != nil {
		nameRoot = filepath.Dir(root)
	}
	// Parents before children, then by path.
	slices.SortFunc(dirs, func(a, b string) int {
		if da, db := strings.Count(a, string(filepath.Separator)), strings.Count(b, string(filepath.Separator)); da != db {
			return da - db
		}
		return strings.Compare(a, b)
	})
	var out []*laneInfo
	for _, d := range dirs {
		parent := ""
		for a, i := d, 0; i < maxFoldDepth && a != root; i++ {
			a = filepath.Dir(a)
			if byDir[a] != nil {
				parent = a
				break
			}
		}
		out = append(out, makeLane(d, byDir[d], nameRoot, parent, byDir[parent]))
	}
	return out, nil
}

// listing is a directory's events files as last listed.
type listing struct {
	mtime time.Time
	at    time.Time
	names []string
}

// listTTL bounds how long a listing is trusted while the directory's
// modification time stays the same (file systems with coarse times).
const listTTL = 5 * time.Second

// listCached is listEvents, reusing the last listing while the
// directory's modification time is unchanged: a source's glob calls
// Discover for every events file on every poll, and each call looks at
// the directories above the file.
func (f *Format) listCached(dir string) []string {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil
	}
	now := time.Now()
	f.mu.Lock()
	l, ok := f.dirs[dir]
	f.mu.Unlock()
	if ok && l.mtime.Equal(fi.ModTime()) && now.Sub(l.at) < listTTL {
		return l.names
	}
	names := listEvents(dir)
	f.mu.Lock()
	if len(f.dirs) > maxListings {
		clear(f.dirs)
	}
	f.dirs[dir] = listing{mtime: fi.ModTime(), at: now, names: names}
	f.mu.Unlock()
	return names
}

// maxListings bounds the listing cache.
const maxListings = 1 << 16

// discoverFile finds the lane of one events file.
func (f *Format) discoverFile(file string) *laneInfo {
	dir := filepath.Dir(file)
	files := f.listCached(dir)
	if len(files) == 0 {
		return nil
	}
	nameRoot := filepath.Dir(dir)
	parent := ""
	var parentFiles []string
	for a, i := filepath.Dir(dir), 0; i < maxUpward && a != filepath.Dir(a); a, i = filepath.Dir(a), i+1 {
		pf := f.listCached(a)
		if len(pf) == 0 {
			continue
		}
		if parent == "" && i < maxFoldDepth {
			parent, parentFiles = a, pf
		}
		nameRoot = filepath.Dir(a)
	}
	return makeLane(dir, files, nameRoot, parent, parentFiles)
}

func makeLane(dir string, files []string, nameRoot, parent string, parentFiles []string) *laneInfo {
	name := relName(nameRoot, dir)
	ln := &laneInfo{dir: dir, files: files, name: name}
	ln.key = keyPrefix + name + "/" + files[0]
	ln.runID = ln.key
	if parent != "" && len(parentFiles) > 0 {
		ln.parentName = relName(nameRoot, parent)
		ln.parentKey = keyPrefix + ln.parentName + "/" + parentFiles[0]
		ln.parentID = ln.parentKey
		ln.sub = relName(parent, dir)
	}
	return ln
}

// signature summarises the names, sizes and modification times of a
// lane's events files and its hparams.yaml: a stat each.
func signature(dir string, files []string) string {
	h := fnv.New64a()
	for _, name := range append(slices.Clone(files), hparamsYAMLName) {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", name, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return fmt.Sprintf("tb:%016x", h.Sum64())
}

// fileSig is the signature of one file (hparams.yaml), "" when absent.
func fileSig(p string) string {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
}
