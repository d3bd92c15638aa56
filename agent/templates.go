package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
	"unicode/utf8"
)

// nameData is what run name and id templates see.
type nameData struct {
	Source string // the source name
	Path   string // the file's path
	Dir    string // the name of the directory holding the file
	Stem   string // the file name without its extension
	Run    string // the run_field value ("" for a file's single run)
	// Short is the shortest trailing part of the path that tells the
	// source's files apart (shortNames): the default run name.
	Short string
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
	// short: a template uses .Short, which compares the source's files.
	short bool
}

// DefaultRunName is the run name template of a source that sets none and
// whose format brings none: the shortest trailing part of the path that
// tells the source's files apart (runs/a/metrics.jsonl, runs/b/metrics.jsonl:
// a, b), or the run_field value for files holding several runs.
const DefaultRunName = "{{.Short}}"

func newRunNamer(s Source) (*runNamer, error) {
	nameT := s.RunName
	if nameT == "" {
		nameT = DefaultRunName
		if s.RunField != "" {
			nameT = "{{.Run}}"
		}
	}
	n := &runNamer{short: strings.Contains(nameT, ".Short") || strings.Contains(s.RunID, ".Short")}
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
// Both are kept within maxLen bytes (the tracker's limit).
func (n *runNamer) names(d nameData, maxLen int) (name, id string, err error) {
	if name, err = execTemplate(n.name, d); err != nil {
		return "", "", fmt.Errorf("run name template: %w", err)
	}
	if name == "" {
		name = d.Stem
	}
	name = truncateName(name, maxLen)
	if n.id != nil {
		if id, err = execTemplate(n.id, d); err != nil {
			return "", "", fmt.Errorf("run id template: %w", err)
		}
	}
	if id == "" {
		id = defaultExternalID(d.Source, d.Path, d.Run)
	}
	return name, shortenID(id, maxLen), nil
}

// truncateName cuts a run name to maxLen bytes (0: no limit), on a rune
// boundary.
func truncateName(name string, maxLen int) string {
	if maxLen <= 0 || len(name) <= maxLen {
		return name
	}
	cut := maxLen
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut]
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

// shortenID keeps an external id within maxLen bytes (0: no limit): a long
// one is replaced by a readable prefix and a hash of the whole.
func shortenID(id string, maxLen int) string {
	if maxLen <= 0 || len(id) <= maxLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	// A byte cut, as ever: the id is the run's identity on the tracker and
	// must not change between versions.
	return id[:maxLen-65] + "~" + hex.EncodeToString(sum[:])
}
