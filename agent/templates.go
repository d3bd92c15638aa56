package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
)

// maxIDLen is the server's limit on run names and external ids.
const maxIDLen = 255

// nameData is what run name and id templates see.
type nameData struct {
	Source string // the source name
	Path   string // the file's path
	Dir    string // the name of the directory holding the file
	Stem   string // the file name without its extension
	Run    string // the run_field value ("" for a file's single run)
}

func newNameData(source, path, run string) nameData {
	base := filepath.Base(path)
	return nameData{
		Source: source,
		Path:   path,
		Dir:    filepath.Base(filepath.Dir(path)),
		Stem:   strings.TrimSuffix(base, filepath.Ext(base)),
		Run:    run,
	}
}

// runNamer derives a run's display name and external id from a source's
// templates.
type runNamer struct {
	name *template.Template
	id   *template.Template // nil: derived from source and path
}

func newRunNamer(s Source) (*runNamer, error) {
	nameT := s.RunName
	if nameT == "" {
		nameT = "{{.Stem}}"
		if s.RunField != "" {
			nameT = "{{.Run}}"
		}
	}
	n := &runNamer{}
	var err error
	if n.name, err = template.New("name").Option("missingkey=error").Parse(nameT); err != nil {
		return nil, fmt.Errorf("source %q: run.name: %w", s.Name, err)
	}
	if s.RunID != "" {
		if n.id, err = template.New("id").Option("missingkey=error").Parse(s.RunID); err != nil {
			return nil, fmt.Errorf("source %q: run.id: %w", s.Name, err)
		}
	}
	return n, nil
}

func execTemplate(t *template.Template, d nameData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// names returns the display name and external id of the run a file (and
// run_field value) feeds.
func (n *runNamer) names(d nameData) (name, id string, err error) {
	if name, err = execTemplate(n.name, d); err != nil {
		return "", "", fmt.Errorf("run name template: %w", err)
	}
	if name == "" {
		name = d.Stem
	}
	if len(name) > maxIDLen {
		name = name[:maxIDLen]
	}
	if n.id != nil {
		if id, err = execTemplate(n.id, d); err != nil {
			return "", "", fmt.Errorf("run id template: %w", err)
		}
	}
	if id == "" {
		id = defaultExternalID(d.Source, d.Path, d.Run)
	}
	return name, shortenID(id), nil
}

// defaultExternalID identifies a run by the source and the file it comes
// from, so re-running the agent over the same files re-attaches to the same
// runs.
func defaultExternalID(source, path, run string) string {
	id := "mlop-agent:" + source + ":" + path
	if run != "" {
		id += "#" + run
	}
	return id
}

// shortenID keeps an external id within the server's limit: a long one is
// replaced by a readable prefix and a hash of the whole.
func shortenID(id string) string {
	if len(id) <= maxIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return id[:maxIDLen-65] + "~" + hex.EncodeToString(sum[:])
}
