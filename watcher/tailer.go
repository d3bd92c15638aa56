// Package watcher finds the files a source's globs match, follows them as
// they grow, and recognises each file by its content, so rename rotation,
// copytruncate, truncation in place, delete-and-recreate, atomic replace,
// symlinked paths and inode reuse each keep or start the right stream. It
// hands complete lines to its owner in file order and never decides what
// has been delivered: the owner checkpoints acknowledged positions and
// passes them back as Known streams on restart.
package watcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mlop-ai/mlop-agent/event"
)

// Options configure a Tailer.
type Options struct {
	Source  string   // the configured source name, prefix of stream keys
	Include []string // absolute globs
	Exclude []string // absolute globs

	// Follow keeps watching for new data until the context ends; without
	// it every matched file is read to its end once and Run returns.
	Follow bool

	PollInterval     time.Duration // stat of open files and rescan of globs (default 1s)
	FingerprintBytes int           // bytes hashed for identity (default 1024)
	MaxLineBytes     int           // longer lines become too-long records (default 1 MiB)
	MaxOpenFiles     int           // descriptors kept open across idle periods (default 1024)
	ChunkBytes       int           // bytes read from one file before another gets a turn (default 256 KiB)

	// RewriteGrace is how long a file that shrank below the read position
	// but still starts with the same bytes may take to grow back (a logger
	// rewriting the whole file) before it counts as truncated (default 2s).
	RewriteGrace time.Duration

	// DisableNotify turns fsnotify off; polling alone then finds changes.
	// Tests use it to exercise the polling path.
	DisableNotify bool

	// Now is the clock (default time.Now); tests inject one to drive the
	// rewrite grace period without waiting for it.
	Now func() time.Time

	// OnWatching, if set, is called once when a following Run has
	// installed its directory watches and looked at every file matched at
	// start: from then on no write is missed.
	OnWatching func()

	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.FingerprintBytes <= 0 {
		o.FingerprintBytes = 1024
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 1 << 20
	}
	if o.MaxOpenFiles <= 0 {
		o.MaxOpenFiles = 1024
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 256 << 10
	}
	if o.RewriteGrace <= 0 {
		o.RewriteGrace = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Known is what the checkpoint remembers of a stream.
type Known struct {
	Key     string
	Path    string
	RunPath string
	File    event.FileMark // identity, and the marker before Offset
	Offset  int64
	Line    int64
	Done    bool

	// displaced is set once another file has been seen at Path: the
	// stream can then only continue under another name.
	displaced bool
}

// StreamInfo announces a stream before its first chunk.
type StreamInfo struct {
	Key     string
	Path    string
	RunPath string // the path run names and ids derive from
	Resumed bool   // continues a Known stream (restore its parser state)
	Offset  int64  // where reading starts
	Line    int64
}

// Chunk is a run of complete lines of one stream, in file order.
type Chunk struct {
	Key     string
	Path    string
	Records []event.Record // Data valid only during the StreamChunk call
	End     int64          // offset after the last record
	Line    int64          // lines up to End
	File    event.FileMark // the file's fingerprint, and the marker of the bytes before End
	Size    int64          // file size when read
}

// readErrorEvery is how often a read error that goes on is logged per file.
const readErrorEvery = time.Minute

// notifiedRescan is how many poll intervals pass between rescans while
// file notifications work.
const notifiedRescan = 10

// Close reasons.
const (
	ClosedRotated  = "rotated" // replaced at its path; read to its end
	ClosedDeleted  = "deleted" // removed; read to its end
	ClosedTruncate = "truncated"
	// ClosedRewritten: the bytes already read changed in place; the file is
	// read again from its start as a new stream.
	ClosedRewritten = "rewritten"
	ClosedDone      = "done" // backfill read it to the end
)

// Handler receives what a Tailer reads. Calls come from the Tailer's Run
// goroutine only, in order per stream; StreamChunk may block to apply
// backpressure.
type Handler interface {
	StreamOpened(ctx context.Context, info StreamInfo) error
	StreamChunk(ctx context.Context, c *Chunk) error
	StreamClosed(ctx context.Context, key, reason string) error
	// FileSkipped reports a path the globs match that is not read — a
	// directory, a FIFO, a dangling symlink, a file that cannot be opened,
	// a binary file — with a Skip* reason and the cause. It comes once per
	// path and reason; a path that becomes readable is read.
	FileSkipped(ctx context.Context, path, reason string, err error) error
}

type fileID struct{ dev, ino uint64 }

// stream is one file generation being read. Only Run's goroutine touches it.
type stream struct {
	key     string
	path    string
	runPath string
	f       *os.File
	id      fileID
	rd      *lineReader
	size    int64

	// mark is the file's identity (fingerprint of its first bytes) and the
	// marker of the bytes before the read position.
	mark event.FileMark

	mtime      time.Time // modification time at the last check
	readErrAt  time.Time // when a read error was last logged
	dirty      bool
	shrunkAt   time.Time // when a shrink below the read position was first seen
	lastActive time.Time
}

// Tailer follows the files of one source.
type Tailer struct {
	opts    Options
	log     *slog.Logger
	matcher *Matcher

	active  map[string]*stream // by path
	byID    map[fileID]*stream
	known   map[string]*Known // not-active known streams, by key
	skipped map[string]string // matched paths reported as not read, and why
	// links maps the target of a matched symlink to the link's path:
	// notifications name the file written, which is the target.
	links   map[string]string
	recs    []event.Record
	nopen   int
	h       Handler
	watcher *notifier
	now     func() time.Time

	remote     bool          // a root is on a network filesystem: inotify misses remote writes
	finish     chan struct{} // closed by Finish
	finishOnce sync.Once

	// nWatched and nOpen mirror len(active) and nopen for Stats, which
	// other goroutines call.
	nWatched atomic.Int64
	nOpen    atomic.Int64
}

// Finish makes a following Run read every file to its current end once
// more and return nil (a sidecar whose training job is done). Safe to call
// from any goroutine, more than once.
func (t *Tailer) Finish() {
	t.finishOnce.Do(func() { close(t.finish) })
}

// Stats returns how many files the tailer follows and how many descriptors
// it holds open. Safe to call from any goroutine.
func (t *Tailer) Stats() (watched, open int) {
	return int(t.nWatched.Load()), int(t.nOpen.Load())
}

// publish updates the counters Stats reads. Called by Run's goroutine.
func (t *Tailer) publish() {
	t.nWatched.Store(int64(len(t.active)))
	t.nOpen.Store(int64(t.nopen))
}

// New builds a Tailer; the globs are validated here.
func New(opts Options) (*Tailer, error) {
	opts.defaults()
	m, err := NewMatcher(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	return &Tailer{
		opts:    opts,
		log:     opts.Logger,
		matcher: m,
		active:  map[string]*stream{},
		byID:    map[fileID]*stream{},
		known:   map[string]*Known{},
		skipped: map[string]string{},
		links:   map[string]string{},
		now:     opts.Now,
		finish:  make(chan struct{}),
	}, nil
}

// Matcher returns the compiled globs.
func (t *Tailer) Matcher() *Matcher { return t.matcher }

// Run reads until ctx ends (Follow) or every file has been read to its end.
// It closes every file it opened before returning.
func (t *Tailer) Run(ctx context.Context, known []Known, h Handler) error {
	t.h = h
	for i := range known {
		k := known[i]
		t.known[k.Key] = &k
	}
	defer t.closeAll()
	if !t.opts.Follow {
		return t.backfill(ctx)
	}
	if !t.opts.DisableNotify {
		n, err := newNotifier(t.log)
		if err != nil {
			t.log.Warn("file notifications unavailable; polling only", "error", err)
		} else {
			t.watcher = n
			defer n.close()
		}
	}
	if err := t.rescan(ctx); err != nil {
		return err
	}
	for _, root := range t.matcher.Roots() {
		if onNetworkFS(root) {
			t.remote = true
			t.log.Info("files on a network filesystem: polling every poll_interval", "dir", root)
		}
	}
	if t.opts.OnWatching != nil {
		t.opts.OnWatching()
	}
	tick := time.NewTicker(t.opts.PollInterval)
	defer tick.Stop()
	ticks := 0
	for {
		if err := t.drainDirty(ctx); err != nil {
			return err
		}
		t.publish()
		var (
			events <-chan fsnotify.Event
			errs   <-chan error
		)
		if t.watcher != nil {
			events, errs = t.watcher.w.Events, t.watcher.w.Errors
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.finish:
			return t.finishAll(ctx)
		case <-tick.C:
			ticks++
			// With working notifications on local disks the rescan only
			// catches what notifications missed, so it runs every
			// notifiedRescan ticks; without them (no inotify, network
			// filesystems) every tick.
			if t.watcher != nil && !t.remote && ticks%notifiedRescan != 0 {
				continue
			}
			if err := t.rescan(ctx); err != nil {
				return err
			}
		case ev, ok := <-events:
			if !ok {
				t.watcher = nil // closed: polling alone from now on
				continue
			}
			if err := t.handleEvent(ctx, ev); err != nil {
				return err
			}
			// Take every event already queued before reading, so a burst
			// of writes costs one read.
			for more := true; more; {
				select {
				case ev, ok := <-events:
					if !ok {
						more = false
						break
					}
					if err := t.handleEvent(ctx, ev); err != nil {
						return err
					}
				default:
					more = false
				}
			}
		case err, ok := <-errs:
			if !ok {
				continue
			}
			if n, ok := t.watcher.translateErr(err); ok {
				if err := t.handleNotice(ctx, n); err != nil {
					return err
				}
			}
		}
	}
}

// handleEvent reacts to one file notification.
func (t *Tailer) handleEvent(ctx context.Context, ev fsnotify.Event) error {
	if t.watcher == nil {
		return nil
	}
	n, ok := t.watcher.translate(ev)
	if !ok {
		return nil
	}
	return t.handleNotice(ctx, n)
}

// finishAll picks up files that appeared last, reads every stream to the
// end of its file, the unterminated last line included, and closes them.
func (t *Tailer) finishAll(ctx context.Context) error {
	if err := t.rescan(ctx); err != nil {
		return err
	}
	paths := make([]string, 0, len(t.active))
	for p := range t.active {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		s := t.active[p]
		if err := t.readAll(ctx, s, true); err != nil {
			return err
		}
		if err := t.closeStream(ctx, s, ClosedDone); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tailer) backfill(ctx context.Context) error {
	scan := t.matcher.Scan()
	if err := t.reportSkipped(ctx, scan.Skipped); err != nil {
		return err
	}
	for _, path := range scan.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := t.discover(ctx, path)
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		if err := t.readAll(ctx, s, true); err != nil {
			return err
		}
		if err := t.closeStream(ctx, s, ClosedDone); err != nil {
			return err
		}
	}
	return nil
}

// rescan finds new files and checks every active one.
func (t *Tailer) rescan(ctx context.Context) error {
	scan := t.matcher.Scan()
	if scan.Err != nil {
		t.log.Debug("rescan could not read some directories", "error", scan.Err)
	}
	if t.watcher != nil {
		for _, d := range scan.Dirs {
			t.watcher.add(d)
		}
	}
	if err := t.reportSkipped(ctx, scan.Skipped); err != nil {
		return err
	}
	for _, path := range scan.Files {
		if _, ok := t.active[path]; ok {
			continue
		}
		if _, err := t.discover(ctx, path); err != nil {
			return err
		}
	}
	paths := make([]string, 0, len(t.active))
	for p := range t.active {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if s, ok := t.active[p]; ok {
			if err := t.check(ctx, s); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Tailer) handleNotice(ctx context.Context, n notice) error {
	switch {
	case n.overflow:
		return t.rescan(ctx)
	case n.dirCreated:
		if t.matcher.MayContain(n.path) && t.watcher != nil {
			t.watcher.add(n.path)
			return t.rescan(ctx) // files may have landed before the watch
		}
		return nil
	}
	if link, ok := t.links[n.path]; ok {
		// A write to the target of a matched symlink is a write to the
		// link: read it now, not at the next rescan.
		n.path = link
	}
	if s, ok := t.active[n.path]; ok {
		if n.write && s.f != nil && s.shrunkAt.IsZero() {
			// New data in a file we hold open: read it, unless it shrank
			// or what was read is no longer there (a rewrite in place with
			// other content, which can be longer than the read position:
			// PyTorch Lightning's CSVLogger rewrites metrics.csv with a new
			// header). One fstat and a pread of the bytes before the read
			// position; the path's identity is re-checked by the next
			// rescan and on every create, rename or removal notice.
			if fi, err := s.f.Stat(); err == nil && fi.Size() >= s.rd.readPos() {
				if same, err := s.rd.unchanged(s.mark.Marker, s.mark.MarkerLen); err == nil && same {
					s.size, s.mtime = fi.Size(), fi.ModTime()
					s.dirty = true
					return nil
				}
			}
		}
		return t.check(ctx, s)
	}
	if t.matcher.Match(n.path) {
		_, err := t.discover(ctx, n.path)
		return err
	}
	return nil
}

// drainDirty reads dirty streams round-robin until none has data left.
func (t *Tailer) drainDirty(ctx context.Context) error {
	for {
		var dirty []*stream
		for _, s := range t.active {
			if s.dirty {
				dirty = append(dirty, s)
			}
		}
		if len(dirty) == 0 {
			return nil
		}
		sort.Slice(dirty, func(i, j int) bool { return dirty[i].path < dirty[j].path })
		for _, s := range dirty {
			if err := t.readOnce(ctx, s, false); err != nil {
				return err
			}
		}
	}
}

// noteLink remembers where a matched symlink points, and watches that
// directory, so writes to the target (which notifications name) reach the
// link's stream — also while the target is still empty and not a stream
// yet. Without it a symlinked file is read only at rescans.
func (t *Tailer) noteLink(path string) {
	if t.watcher == nil {
		return
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil || real == path {
		return
	}
	t.links[real] = path
	t.watcher.add(filepath.Dir(real))
}

// reportSkipped tells the handler about matched paths that are not read.
func (t *Tailer) reportSkipped(ctx context.Context, skipped []Skipped) error {
	for _, sk := range skipped {
		if err := t.skip(ctx, sk.Path, sk.Reason, sk.Err); err != nil {
			return err
		}
	}
	return nil
}

// skip reports a path that is not read, once per path and reason.
func (t *Tailer) skip(ctx context.Context, path, reason string, err error) error {
	if t.skipped[path] == reason {
		return nil
	}
	t.skipped[path] = reason
	return t.h.FileSkipped(ctx, path, reason, err)
}

func statID(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}

func newKey(source, fp string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return source + ":" + fp + "-" + hex.EncodeToString(b[:])
}

// discover looks at a path without an active stream: an alias of an
// active file, a known stream (resumed where it was acknowledged), or a new
// file read from its start. It returns nil when there is nothing to read
// yet (an empty file) or the path is an alias.
func (t *Tailer) discover(ctx context.Context, path string) (*stream, error) {
	t.noteLink(path)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, t.skip(ctx, path, SkipUnreadable, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, t.skip(ctx, path, SkipUnreadable, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		reason, why := SkipNotRegular, fmt.Errorf("not a regular file but a %s", fileKind(fi.Mode()))
		if fi.IsDir() {
			reason, why = SkipDirectory, errors.New("a directory, not a file")
		}
		return nil, t.skip(ctx, path, reason, why)
	}
	if fi.Size() == 0 {
		f.Close()
		return nil, nil
	}
	id := statID(fi)
	if other, ok := t.byID[id]; ok {
		// The same file under another name: a symlink, a second glob, or
		// the new name of a renamed file whose old path we have not looked
		// at yet.
		if fi2, err := os.Stat(other.path); err == nil && statID(fi2) == id {
			f.Close()
			return nil, nil
		}
		f.Close()
		t.log.Info("file renamed", "source", t.opts.Source, "from", other.path, "to", path)
		delete(t.active, other.path)
		other.path = path
		t.active[path] = other
		other.dirty = true
		return other, nil
	}
	size := fi.Size()
	fpLen := min(int(size), t.opts.FingerprintBytes)
	fp, fpLen, err := fingerprint(f, fpLen)
	if err != nil {
		f.Close()
		t.log.Warn("cannot read file", "path", path, "error", err)
		return nil, nil
	}
	s := &stream{path: path, runPath: path, f: f, id: id, size: size, mtime: fi.ModTime(), mark: event.FileMark{Fingerprint: fp, FingerLen: fpLen}, lastActive: t.now()}
	t.nopen++
	var (
		offset, line int64
		resumed      bool
	)
	if k := t.matchKnown(f, path, size); k != nil {
		s.key, s.runPath = k.Key, k.RunPath
		if s.runPath == "" {
			s.runPath = k.Path
		}
		offset, line, resumed = k.Offset, k.Line, true
		s.mark.Marker, s.mark.MarkerLen = k.File.Marker, k.File.MarkerLen
		delete(t.known, k.Key)
		if k.Path != path {
			t.log.Info("resuming renamed file", "source", t.opts.Source, "path", path, "was", k.Path, "offset", offset)
		}
	} else {
		if why := binaryFile(f); why != "" {
			f.Close()
			t.nopen--
			return nil, t.skip(ctx, path, SkipBinary, fmt.Errorf("a binary file (%s), not lines of text", why))
		}
		s.key = newKey(t.opts.Source, fp)
	}
	delete(t.skipped, path)
	s.rd = newLineReader(f, offset, line, t.opts.MaxLineBytes)
	s.dirty = size > offset
	t.active[path] = s
	t.byID[id] = s
	if err := t.h.StreamOpened(ctx, StreamInfo{Key: s.key, Path: path, RunPath: s.runPath, Resumed: resumed, Offset: offset, Line: line}); err != nil {
		return nil, err
	}
	t.limitOpen()
	return s, nil
}

// matchKnown finds the not-active known stream this file continues: first
// one recorded at the same path, then one recorded elsewhere (renamed while
// the agent was not looking). A candidate matches when the file starts with
// its fingerprinted bytes, is at least as long as its offset, and the bytes
// before the offset are unchanged.
func (t *Tailer) matchKnown(f *os.File, path string, size int64) *Known {
	var samePath []*Known
	for _, k := range t.known {
		if k.Path == path {
			samePath = append(samePath, k)
		}
	}
	try := func(cands []*Known) *Known {
		sort.Slice(cands, func(i, j int) bool { return cands[i].Offset > cands[j].Offset })
		for _, k := range cands {
			if k.Offset > size {
				continue
			}
			if ok, _ := prefixMatches(f, k.File.Fingerprint, k.File.FingerLen); !ok {
				continue
			}
			if ok, _ := markerMatches(f, k.Offset, k.File.Marker, k.File.MarkerLen); !ok {
				continue
			}
			return k
		}
		return nil
	}
	if k := try(samePath); k != nil {
		return k
	}
	for _, k := range samePath {
		if !k.Done && !k.displaced {
			t.log.Info("file at a known path holds new content; reading it as a new file (the old content may show up under another name)",
				"source", t.opts.Source, "path", path, "offset", k.Offset, "size", size)
		}
		k.displaced = true
	}
	// Streams known elsewhere: only those whose fingerprint this file
	// starts with (one hash per distinct fingerprint length, not one read
	// per known stream), and only if they left their recorded path.
	hashes := map[int]string{}
	var moved []*Known
	for _, k := range t.known {
		if k.Path == path || k.File.Fingerprint == "" || k.File.FingerLen == 0 || k.File.FingerLen > int(size) || k.Offset > size {
			continue
		}
		h, ok := hashes[k.File.FingerLen]
		if !ok {
			buf := make([]byte, k.File.FingerLen)
			if n, err := f.ReadAt(buf, 0); n == k.File.FingerLen && (err == nil || errors.Is(err, io.EOF)) {
				h = hashHex(buf)
			}
			hashes[k.File.FingerLen] = h
		}
		if h != k.File.Fingerprint {
			continue
		}
		if k.displaced {
			moved = append(moved, k)
			continue
		}
		fi, err := os.Stat(k.Path)
		if errors.Is(err, fs.ErrNotExist) {
			moved = append(moved, k)
			continue
		}
		if err != nil {
			continue
		}
		if kf, err := os.Open(k.Path); err == nil {
			ok, _ := prefixMatches(kf, k.File.Fingerprint, k.File.FingerLen)
			kf.Close()
			if !ok || fi.Size() < k.Offset {
				moved = append(moved, k)
			}
		}
	}
	return try(moved)
}

// check stats an active stream's path and reacts to growth, truncation,
// replacement and deletion.
func (t *Tailer) check(ctx context.Context, s *stream) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return t.rotatedAway(ctx, s, ClosedDeleted)
		}
		return nil
	}
	if id := statID(fi); id != s.id {
		return t.replaced(ctx, s)
	}
	size := fi.Size()
	readPos := s.rd.readPos()
	if size < readPos {
		return t.shrunk(ctx, s, size, false)
	}
	if size != s.size || !fi.ModTime().Equal(s.mtime) || !s.shrunkAt.IsZero() {
		// The file changed: the bytes before the read position must be
		// the ones already read, or this is new content under the same
		// name (a rewrite with different rows), whatever its size.
		if f, _ := t.ensureOpen(s); f != nil {
			if ok, err := s.rd.unchanged(s.mark.Marker, s.mark.MarkerLen); err == nil && !ok {
				s.shrunkAt = time.Time{}
				return t.rewritten(ctx, s)
			}
		}
		s.dirty = true
	}
	s.shrunkAt = time.Time{}
	if size > readPos {
		s.dirty = true
	}
	s.size, s.mtime = size, fi.ModTime()
	if s.mark.FingerLen < t.opts.FingerprintBytes && int(size) > s.mark.FingerLen {
		return t.growFingerprint(ctx, s)
	}
	return nil
}

// growFingerprint extends the fingerprint of a file that was shorter than
// the fingerprint size, after checking that the bytes already hashed did
// not change.
func (t *Tailer) growFingerprint(ctx context.Context, s *stream) error {
	f, err := t.ensureOpen(s)
	if err != nil || f == nil {
		return err
	}
	ok, err := prefixMatches(f, s.mark.Fingerprint, s.mark.FingerLen)
	if err != nil {
		return nil
	}
	if !ok {
		return t.shrunk(ctx, s, 0, true) // rewritten from the start
	}
	n := min(int(s.size), t.opts.FingerprintBytes)
	if fp, l, err := fingerprint(f, n); err == nil {
		s.mark.Fingerprint, s.mark.FingerLen = fp, l
	}
	return nil
}

// shrunk handles a file now shorter than what was read from it: a rewrite
// in progress (same first bytes; wait for it to grow back), or truncation
// (copytruncate, or truncation in place).
func (t *Tailer) shrunk(ctx context.Context, s *stream, size int64, force bool) error {
	f, err := t.ensureOpen(s)
	if err != nil || f == nil {
		return err
	}
	// A file shorter than its fingerprint cannot be compared byte for
	// byte; give it the benefit of the doubt and wait out the grace period.
	samePrefix := !force
	if !force && int(size) >= s.mark.FingerLen {
		samePrefix, _ = prefixMatches(f, s.mark.Fingerprint, s.mark.FingerLen)
	}
	now := t.now()
	if samePrefix && (s.shrunkAt.IsZero() || now.Sub(s.shrunkAt) < t.opts.RewriteGrace) {
		if s.shrunkAt.IsZero() {
			s.shrunkAt = now
			t.log.Debug("file shrank; waiting for a rewrite to finish", "path", s.path, "size", size, "read", s.rd.readPos())
		}
		return nil
	}
	t.log.Info("file truncated; reading it from the start as a new file", "source", t.opts.Source, "path", s.path,
		"size", size, "read", s.rd.readPos())
	// copytruncate: the bytes we had not read yet are in the copy.
	t.drainSibling(ctx, s)
	path := s.path
	if err := t.closeStream(ctx, s, ClosedTruncate); err != nil {
		return err
	}
	_, err = t.discover(ctx, path)
	return err
}

// rewritten handles a file whose bytes before the read position changed
// under the same inode: new content was written in place (open with 'w'
// and write, a logger rewriting the whole file with a new header). What was
// read no longer exists, so the file is read again from its start as a new
// generation; rows at steps already sent replace them in the server's
// deduplicated view.
func (t *Tailer) rewritten(ctx context.Context, s *stream) error {
	t.log.Info("file rewritten in place with other content; reading it again from the start",
		"source", t.opts.Source, "path", s.path, "read", s.rd.readPos())
	// A copytruncate whose file grew back past the read position before
	// the agent looked looks like this too: the bytes not read yet are
	// in the copy beside it (none matches a genuine rewrite).
	t.drainSibling(ctx, s)
	path := s.path
	if err := t.closeStream(ctx, s, ClosedRewritten); err != nil {
		return err
	}
	_, err := t.discover(ctx, path)
	return err
}

// replaced handles a path that now names a different file: rename
// rotation, atomic replace, delete and recreate, a symlink pointed
// elsewhere.
func (t *Tailer) replaced(ctx context.Context, s *stream) error {
	path := s.path
	if nf, err := os.Open(path); err == nil {
		fi, err := nf.Stat()
		readPos := s.rd.readPos()
		if err == nil && fi.Mode().IsRegular() && fi.Size() >= readPos && !s.rd.pending() {
			okPrefix, _ := prefixMatches(nf, s.mark.Fingerprint, s.mark.FingerLen)
			okMarker, _ := markerMatches(nf, readPos, s.mark.Marker, s.mark.MarkerLen)
			if okPrefix && okMarker && readPos > 0 {
				// Atomic replace with the same content plus more: keep
				// reading the new file where the old one left off.
				t.log.Info("file replaced by a copy with more data; continuing", "path", path, "offset", readPos)
				delete(t.byID, s.id)
				if s.f != nil {
					s.f.Close()
				} else {
					t.nopen++
				}
				s.f, s.id, s.size, s.mtime = nf, statID(fi), fi.Size(), fi.ModTime()
				s.rd = newLineReader(nf, readPos, s.rd.line, t.opts.MaxLineBytes)
				t.byID[s.id] = s
				s.dirty = true
				return nil
			}
		}
		nf.Close()
	}
	if err := t.rotatedAway(ctx, s, ClosedRotated); err != nil {
		return err
	}
	_, err := t.discover(ctx, path)
	return err
}

// rotatedAway reads a stream that left its path to its end — through the
// descriptor still open on it, or by finding it beside its old path — and
// closes it.
func (t *Tailer) rotatedAway(ctx context.Context, s *stream, reason string) error {
	if s.f != nil {
		if err := t.readAll(ctx, s, true); err != nil {
			return err
		}
	} else {
		t.drainSibling(ctx, s)
	}
	return t.closeStream(ctx, s, reason)
}

// drainSibling looks beside the stream's path for the file holding its
// content (the copy of copytruncate, the renamed file of a rotation) and
// reads it from the stream's position to its end.
func (t *Tailer) drainSibling(ctx context.Context, s *stream) {
	readPos := s.rd.readPos()
	if s.rd.pending() {
		readPos = s.rd.pos
	}
	dir := filepath.Dir(s.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p == s.path || !e.Type().IsRegular() {
			continue
		}
		if _, isActive := t.active[p]; isActive {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() <= readPos {
			f.Close()
			continue
		}
		okPrefix, _ := prefixMatches(f, s.mark.Fingerprint, s.mark.FingerLen)
		okMarker, _ := markerMatches(f, s.rd.pos, s.mark.Marker, s.mark.MarkerLen)
		if !okPrefix || !okMarker {
			f.Close()
			continue
		}
		t.log.Info("reading the rest of a rotated file", "source", t.opts.Source, "path", s.path, "rotated_to", p, "offset", s.rd.pos)
		if s.f != nil {
			s.f.Close()
		} else {
			t.nopen++
		}
		s.f = f
		s.rd = newLineReader(f, s.rd.pos, s.rd.line, t.opts.MaxLineBytes)
		if err := t.readAll(ctx, s, true); err != nil {
			t.log.Warn("cannot read rotated file", "path", p, "error", err)
		}
		return
	}
}

// readAll reads a stream to the current end of its file.
func (t *Tailer) readAll(ctx context.Context, s *stream, final bool) error {
	for {
		n, err := t.readChunk(ctx, s, final)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// readOnce gives a dirty stream one turn.
func (t *Tailer) readOnce(ctx context.Context, s *stream, final bool) error {
	n, err := t.readChunk(ctx, s, final)
	if err != nil {
		return err
	}
	if n == 0 {
		s.dirty = false
		s.rd.release()
		t.limitOpen()
	}
	return nil
}

// readChunk reads and hands over one chunk; it returns the bytes consumed.
func (t *Tailer) readChunk(ctx context.Context, s *stream, final bool) (int64, error) {
	f, err := t.ensureOpen(s)
	if err != nil {
		return 0, err
	}
	if f == nil {
		return 0, nil
	}
	from, fromLine, marker, markerLen := s.rd.pos, s.rd.line, s.mark.Marker, s.mark.MarkerLen
	res, err := s.rd.next(t.recs[:0], t.opts.ChunkBytes, final)
	if err == nil && res.consumed > 0 && from > 0 && markerLen > 0 {
		// The bytes before where this read began must still be the ones
		// read before it: a writer that truncated and rewrote the file
		// since the last check (or during this read) would otherwise have
		// its new content handed over from the old offset — a duplicate,
		// or half a line. One pread of at most markerLen bytes a chunk.
		if ok, merr := markerMatches(f, from, marker, markerLen); merr == nil && !ok {
			// What this read got is not the file's any more: back to
			// where it began (a copy beside it may hold the rest).
			s.rd = newLineReader(f, from, fromLine, t.opts.MaxLineBytes)
			return 0, t.rewritten(ctx, s)
		}
	}
	if err != nil {
		// Every pass retries; the log says so once a minute per file.
		if now := t.now(); now.Sub(s.readErrAt) >= readErrorEvery {
			s.readErrAt = now
			t.log.Warn("read error; retrying", "path", s.path, "error", err)
		}
		return 0, nil
	}
	t.recs = res.recs
	if res.eof && !final && s.rd.pending() {
		t.log.Debug("partial line held until its newline arrives", "path", s.path, "read", s.rd.readPos())
	}
	if res.consumed == 0 {
		return 0, nil
	}
	s.lastActive = t.now()
	if res.markerLen > 0 {
		s.mark.Marker, s.mark.MarkerLen = res.marker, res.markerLen
	}
	// The size is refreshed by checks and rescans; a read cannot end
	// beyond it.
	s.size = max(s.size, res.end)
	c := &Chunk{
		Key: s.key, Path: s.path, Records: res.recs, End: res.end, Line: res.line,
		File: s.mark, Size: s.size,
	}
	if err := t.h.StreamChunk(ctx, c); err != nil {
		return 0, err
	}
	if res.eof {
		// Everything there was is read and handed over (records alias the
		// buffer only during StreamChunk): give the buffer back now, so
		// reading ten thousand files needs one buffer, not ten thousand.
		s.rd.release()
	}
	return res.consumed, nil
}

// ensureOpen reopens a stream whose descriptor was closed while idle; nil
// means the path no longer holds the stream's file (check handles that).
func (t *Tailer) ensureOpen(s *stream) (*os.File, error) {
	if s.f != nil {
		return s.f, nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, nil
	}
	fi, err := f.Stat()
	if err != nil || statID(fi) != s.id {
		f.Close()
		return nil, nil
	}
	s.f = f
	s.rd.f = f
	t.nopen++
	// Never close the file just opened for a read (it would be the first
	// choice: it was idle the longest).
	t.limitOpenExcept(s)
	return f, nil
}

// limitOpen closes the descriptors of the least recently active idle
// streams beyond MaxOpenFiles.
func (t *Tailer) limitOpen() { t.limitOpenExcept(nil) }

// limitOpenExcept is limitOpen that keeps keep open.
func (t *Tailer) limitOpenExcept(keep *stream) {
	if t.nopen <= t.opts.MaxOpenFiles {
		return
	}
	var idle []*stream
	for _, s := range t.active {
		if s != keep && s.f != nil && !s.dirty && !s.rd.pending() {
			idle = append(idle, s)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastActive.Before(idle[j].lastActive) })
	for _, s := range idle {
		if t.nopen <= t.opts.MaxOpenFiles {
			return
		}
		s.f.Close()
		s.f, s.rd.f = nil, nil
		s.rd.release()
		t.nopen--
	}
}

func (t *Tailer) closeStream(ctx context.Context, s *stream, reason string) error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
		t.nopen--
	}
	if t.active[s.path] == s {
		delete(t.active, s.path)
	}
	if t.byID[s.id] == s {
		delete(t.byID, s.id)
	}
	if reason == ClosedRotated || reason == ClosedDeleted || reason == ClosedTruncate || reason == ClosedRewritten {
		t.log.Info("stream finished", "source", t.opts.Source, "path", s.path, "reason", reason, "offset", s.rd.pos)
	}
	// Keep its identity so the file is recognised if it shows up again
	// under a matched name (a rotated file matching the glob). A backfill
	// reads each file once and needs no memory of them.
	if t.opts.Follow {
		t.known[s.key] = &Known{
			Key: s.key, Path: s.path, RunPath: s.runPath, File: s.mark,
			Offset: s.rd.pos, Line: s.rd.line, Done: true,
		}
	}
	return t.h.StreamClosed(ctx, s.key, reason)
}

func (t *Tailer) closeAll() {
	for _, s := range t.active {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	t.nopen = 0
}
