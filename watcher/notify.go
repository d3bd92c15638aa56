package watcher

import (
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// notice is what a change notification means to the tailer: a path that
// changed, a directory that appeared, or an overflow (events were lost;
// rescan everything).
type notice struct {
	path       string
	dirCreated bool
	overflow   bool
	write      bool // only data was written: no new name, no removal
}

// notifier watches directories (never files: one watch per directory keeps
// the inotify budget small and sees files created later). The tailer's
// goroutine receives its events directly — no goroutine of its own in
// between, which saves a wake-up per event — and is the only one to call
// add.
type notifier struct {
	w       *fsnotify.Watcher
	log     *slog.Logger
	watched map[string]bool
	once    sync.Once
}

func newNotifier(log *slog.Logger) (*notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &notifier{w: w, log: log, watched: map[string]bool{}}, nil
}

func (n *notifier) add(dir string) {
	if n.watched[dir] {
		return
	}
	if err := n.w.Add(dir); err != nil {
		n.log.Debug("cannot watch directory; relying on polling", "dir", dir, "error", err)
		return
	}
	n.watched[dir] = true
}

// translate turns an fsnotify event into a notice; ok is false for events
// that mean nothing to the tailer.
func (n *notifier) translate(ev fsnotify.Event) (notice, bool) {
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
			return notice{path: ev.Name, dirCreated: true}, true
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		delete(n.watched, ev.Name) // a watched directory went away
	}
	if ev.Op == fsnotify.Chmod {
		return notice{}, false
	}
	return notice{path: ev.Name, write: ev.Op == fsnotify.Write}, true
}

// translateErr turns an fsnotify error into a notice.
func (n *notifier) translateErr(err error) (notice, bool) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		return notice{overflow: true}, true
	}
	n.log.Debug("file notification error", "error", err)
	return notice{}, false
}

// close releases the inotify descriptor; it is safe to call twice.
func (n *notifier) close() {
	n.once.Do(func() { n.w.Close() })
}
