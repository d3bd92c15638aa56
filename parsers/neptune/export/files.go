package export

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// maxSetFiles bounds the files uploaded for one file set.
const maxSetFiles = 10_000

// local resolves a file_value.path, relative to the project's files
// directory; ok is false for a path that would leave it.
func (s *stream) local(rel string) (string, bool) {
	p := filepath.FromSlash(rel)
	if !filepath.IsLocal(p) {
		return "", false
	}
	return filepath.Join(s.filesRoot, p), true
}

// file maps a file, artifact (its files_list.json) or file-series row.
func (s *stream) file(r *rowData, series bool) {
	m := s.mapper
	var step mapping.Step
	if series {
		var ok bool
		if step, ok = s.step(r); !ok {
			return
		}
	}
	if !r.hasFile || len(r.file) == 0 {
		m.Skip(ReasonBadValue, r.path+": a file row without a path")
		return
	}
	rel := string(r.file)
	local, ok := s.local(rel)
	if !ok {
		m.Skip(ReasonBadValue, r.path+": file path "+rel+" leaves the files directory")
		return
	}
	f := mapping.File{Origin: rel, Caption: path.Base(rel)}
	fi, err := os.Stat(local)
	switch {
	case err == nil && fi.Mode().IsRegular():
		f.Local = local
		if filepath.Ext(local) == "" {
			// neptune2 exports write single files without an extension:
			// the content tells what they are.
			f.Mime = sniff(local)
		}
	case err == nil && fi.IsDir() && !series:
		s.fileSet(r)
		return
	}
	m.File(r.path, step, series, s.seriesTime(r), f)
}

// fileSet maps a neptune2 file set (a directory holding the server's zip)
// to every file in it.
func (s *stream) fileSet(r *rowData) {
	m := s.mapper
	if !r.hasFile || len(r.file) == 0 {
		m.Skip(ReasonBadValue, r.path+": a file set row without a path")
		return
	}
	rel := string(r.file)
	dir, ok := s.local(rel)
	if !ok {
		m.Skip(ReasonBadValue, r.path+": file path "+rel+" leaves the files directory")
		return
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		if len(files) >= maxSetFiles {
			return fs.SkipAll
		}
		return nil
	})
	if len(files) == 0 {
		m.File(r.path, mapping.Step{}, false, 0, mapping.File{Origin: rel})
		return
	}
	slices.Sort(files)
	for _, p := range files {
		name, _ := filepath.Rel(dir, p)
		m.File(r.path, mapping.Step{}, false, 0, mapping.File{Local: p, Origin: rel, Caption: filepath.ToSlash(name)})
	}
}

// sniff guesses a file's MIME type from its first bytes.
func sniff(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	var buf [512]byte
	n, _ := io.ReadFull(f, buf[:])
	if n == 0 {
		return ""
	}
	mt := http.DetectContentType(buf[:n])
	if mt == "application/octet-stream" {
		return ""
	}
	return mt
}
