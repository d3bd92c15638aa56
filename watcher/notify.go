package watcher

import (
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// notice is what the notifier reports: a path that changed, a directory
// that appeared, or an overflow (events were lost; rescan everything).
type notice struct {
	path       string
	dirCreated bool
	overflow   bool
}

// notifier watches directories (never files: one watch per directory keeps
// the inotify budget small and sees files created later) and forwards
// events. It owns one goroutine, stopped by close.
type notifier struct {
	w       *fsnotify.Watcher
	log     *slog.Logger
	events  chan notice
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	watched map[string]bool
	once    sync.Once
}

func newNotifier(log *slog.Logger) (*notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	n := &notifier{w: w, log: log, events: make(chan notice, 4096), done: make(chan struct{}), watched: map[string]bool{}}
	n.wg.Add(1)
	go n.loop()
	return n, nil
}

func (n *notifier) add(dir string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.watched[dir] {
		return
	}
	if err := n.w.Add(dir); err != nil {
		n.log.Debug("cannot watch directory; relying on polling", "dir", dir, "error", err)
		return
	}
	n.watched[dir] = true
}

func (n *notifier) send(v notice) {
	select {
	case n.events <- v:
	case <-n.done:
	default:
		// The queue is full: the tailer is behind. Ask for a rescan,
		// which finds everything the dropped notices would have.
		select {
		case n.events <- notice{overflow: true}:
		default:
		}
	}
}

func (n *notifier) loop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case ev, ok := <-n.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					n.send(notice{path: ev.Name, dirCreated: true})
					continue
				}
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				n.mu.Lock()
				delete(n.watched, ev.Name) // a watched directory went away
				n.mu.Unlock()
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			n.send(notice{path: ev.Name})
		case err, ok := <-n.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				n.send(notice{overflow: true})
				continue
			}
			n.log.Debug("file notification error", "error", err)
		}
	}
}

// close stops the goroutine and releases the inotify descriptor; it is safe
// to call twice.
func (n *notifier) close() {
	n.once.Do(func() {
		close(n.done)
		n.w.Close()
		n.wg.Wait()
	})
}
