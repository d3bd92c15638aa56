package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// ReadAPI is all verification may ask of the server: reads. *mlop.Client
// implements it; nothing in it can write.
type ReadAPI interface {
	ListRuns(ctx context.Context, q mlop.RunListQuery) (mlop.RunList, error)
	RunDetails(ctx context.Context, runID int64) (mlop.RunDetails, error)
	StatusHistory(ctx context.Context, runID int64) ([]mlop.StatusEvent, error)
	MetricNames(ctx context.Context, project string, runIDs []int64) ([]string, error)
	MetricRows(ctx context.Context, runID int64, project, logName string, from uint64, limit int, fn func([]mlop.MetricRow) error) error
	Files(ctx context.Context, runID int64, project, logName string) ([]mlop.FileRow, error)
	Logs(ctx context.Context, runID int64, project string, limit, offset int) (mlop.LogsPage, error)
}

var _ ReadAPI = (*mlop.Client)(nil)

// ErrMismatch is returned by Run when the server differs from the source
// or something could not be checked; the report says what.
var ErrMismatch = errors.New("the server does not hold exactly what the source holds")

// Options configure a verification. Zero values take the defaults.
type Options struct {
	// RunMap maps project + "\x00" + externalId to the server's run id
	// (the state directory's run map); runs not in it are looked up by
	// list and details.
	RunMap map[string]int64
	// Parallel is how many runs are checked at once (default 4).
	Parallel int
	// Live says the sources may be followed by a live `run`: a run the
	// source finishes COMPLETED that is still RUNNING on the server is a
	// note, not a difference (see Rules).
	Live bool
	// TmpDir holds sort runs of large spools (default the capture's
	// directory).
	TmpDir string
	// ChunkPoints is how many expected points are sorted in memory at once
	// per run (default 1<<18: 8 MiB, and as much again while sorting).
	ChunkPoints int
	// PageRows is the limit of each metrics/raw request (default 50,000).
	PageRows int
	// MaxDifferences bounds the differences the report lists (default
	// 100,000); the counts are always exact.
	MaxDifferences int
	// Progress, when set, receives progress lines: rewritten in place when
	// ProgressTTY, otherwise one every ProgressEvery (default 10 s).
	Progress      io.Writer
	ProgressTTY   bool
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

func (o *Options) defaults(c *Capture) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.TmpDir == "" {
		o.TmpDir = c.dir
	}
	if o.ChunkPoints <= 0 {
		o.ChunkPoints = 1 << 18
	}
	if o.PageRows <= 0 {
		o.PageRows = mlop.MaxRawMetricsLimit
	}
	if o.MaxDifferences <= 0 {
		o.MaxDifferences = 100000
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
		if o.ProgressTTY {
			o.ProgressEvery = 500 * time.Millisecond
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// verifier is one Run.
type verifier struct {
	api   ReadAPI
	opts  Options
	cap   *Capture
	diffs *diffLog
	find  *finder

	// Progress counters.
	runsDone   atomic.Int64
	pointsDone atomic.Int64
	phase      atomic.Value // string

	resolved map[int64]*resolved // by capture id; written in phase 1 only

	fatal atomic.Pointer[error] // a refused API key: nothing more can be read

	// slots bounds the metrics read at once over all runs to Parallel
	// (each with one page fetched ahead), so one big run is read several
	// metrics at a time and many small runs do not multiply the load.
	slots chan struct{}
}

// problemOf turns a read error into a "could not check" text, and
// remembers a refused key, which stops the verification.
func (v *verifier) problemOf(what string, err error) string {
	if errors.Is(err, sink.ErrUnauthorized) {
		e := fmt.Errorf("the server refused the API key: %w", err)
		v.fatal.CompareAndSwap(nil, &e)
	}
	return fmt.Sprintf("%s: %v", what, err)
}

// stopErr is what ends the verification early: a refused key or a done
// context.
func (v *verifier) stopErr(ctx context.Context) error {
	if p := v.fatal.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// resolved is where one source run is on the server.
type resolved struct {
	id      int64
	details *mlop.RunDetails
	how     string
	problem string // the lookup could not finish: not checkable
}

// Run compares the capture with the server and returns the report. The
// error is ErrMismatch when anything differs or could not be checked, or
// what stopped the verification (a refused key, a cancelled context).
func Run(ctx context.Context, api ReadAPI, c *Capture, opts Options) (*Report, error) {
	opts.defaults(c)
	v := &verifier{api: api, opts: opts, cap: c, diffs: &diffLog{max: opts.MaxDifferences},
		find: newFinder(api), resolved: map[int64]*resolved{}, slots: make(chan struct{}, opts.Parallel)}
	v.phase.Store("finding runs")
	rep := &Report{Started: time.Now().UTC(), Rules: Rules, Runs: len(c.Runs)}
	stopProgress := v.startProgress()
	defer stopProgress()

	// Phase 1: find every run (forks need their parent's server id).
	var mu sync.Mutex
	err := v.each(ctx, func(ctx context.Context, er *ExpectedRun) error {
		res := v.resolve(ctx, er)
		mu.Lock()
		v.resolved[er.CaptureID] = res
		mu.Unlock()
		return v.stopErr(ctx)
	})
	if err != nil {
		return nil, err
	}
	// Phase 2: compare.
	v.phase.Store("checking")
	reports := make([]*RunReport, len(c.Runs))
	index := map[int64]int{}
	for i, er := range c.Runs {
		index[er.CaptureID] = i
	}
	err = v.each(ctx, func(ctx context.Context, er *ExpectedRun) error {
		rr := v.compareRun(ctx, er)
		reports[index[er.CaptureID]] = rr
		v.runsDone.Add(1)
		return v.stopErr(ctx)
	})
	if err != nil {
		return nil, err
	}
	rep.RunReports = reports
	var dataRows, dataRuns int64
	for _, rr := range reports {
		rep.Metrics += len(rr.Metrics)
		rep.Points += rr.Points
		rep.Missing += rr.Missing
		rep.Different += rr.Different
		rep.Extra += rr.Extra
		rep.Other += rr.Other
		rep.Unchecked += rr.Unchecked
		rep.Problems += len(rr.Problems)
		rep.Differences = append(rep.Differences, rr.Differences...)
		rep.Omitted += rr.Omitted
		for _, n := range rr.DataRows {
			dataRows += n
		}
		if len(rr.DataRows) > 0 {
			dataRuns++
		}
		for _, n := range rr.Notes {
			rep.Notes = append(rep.Notes, fmt.Sprintf("run %q: %s", rr.Name, n))
		}
	}
	if dataRows > 0 {
		rows, were := thousands(dataRows)+" string-series and histogram rows", "were"
		if dataRows == 1 {
			rows, were = "1 string-series and histogram row", "was"
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s in %s %s not checked: the read API has no endpoint for them",
			rows, plural(int(dataRuns), "run", "runs"), were))
	}
	for _, is := range c.Issues {
		rep.Problems++
		rep.Notes = append(rep.Notes, "the source produced a request the server would refuse: "+is)
	}
	rep.Complete = rep.Missing+rep.Different+rep.Extra+rep.Other+rep.Unchecked == 0 && rep.Problems == 0
	rep.Seconds = time.Since(rep.Started).Seconds()
	if !rep.Complete {
		return rep, ErrMismatch
	}
	return rep, nil
}

// each runs fn for every run, Parallel at a time, in capture order.
func (v *verifier) each(ctx context.Context, fn func(context.Context, *ExpectedRun) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *ExpectedRun)
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for range v.opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for er := range work {
				if err := fn(ctx, er); err != nil {
					first.CompareAndSwap(nil, &err)
					cancel()
				}
			}
		}()
	}
feed:
	for _, er := range v.cap.Runs {
		select {
		case work <- er:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// startProgress prints progress until the returned function is called.
func (v *verifier) startProgress() func() {
	if v.opts.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	print := func(final bool) {
		pts := v.pointsDone.Load()
		el := time.Since(start).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(pts) / el
		}
		line := fmt.Sprintf("verify: %s: %d/%d runs, %s points checked, %s points/s", v.phase.Load(), v.runsDone.Load(),
			len(v.cap.Runs), thousands(pts), thousands(int64(rate)))
		if v.opts.ProgressTTY {
			fmt.Fprintf(v.opts.Progress, "\r\033[K%s", line)
			if final {
				fmt.Fprintln(v.opts.Progress)
			}
		} else {
			fmt.Fprintln(v.opts.Progress, line)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(v.opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				print(true)
				return
			case <-t.C:
				print(false)
			}
		}
	}()
	return func() { close(stop); <-done }
}

// finder looks runs up on the server and caches what it learns. Safe for
// concurrent use.
type finder struct {
	api ReadAPI

	mu      sync.Mutex
	details map[int64]*mlop.RunDetails
	byExt   map[string]int64        // project + "\x00" + externalId -> id, from details seen
	scans   map[string]*projectScan // by project
}

// projectScan is one listing of every run of a project; done is closed
// when it has finished.
type projectScan struct {
	done    chan struct{}
	problem string // the listing could not be completed
}

func newFinder(api ReadAPI) *finder {
	return &finder{api: api, details: map[int64]*mlop.RunDetails{}, byExt: map[string]int64{}, scans: map[string]*projectScan{}}
}

// detailsOf fetches (once) the details of a run; nil when it does not
// exist.
func (f *finder) detailsOf(ctx context.Context, id int64) (*mlop.RunDetails, error) {
	f.mu.Lock()
	d, ok := f.details[id]
	f.mu.Unlock()
	if ok {
		return d, nil
	}
	got, err := f.api.RunDetails(ctx, id)
	if errors.Is(err, sink.ErrNotFound) {
		f.mu.Lock()
		f.details[id] = nil
		f.mu.Unlock()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.details[id] = &got
	if got.ExternalID != nil {
		f.byExt[got.ProjectName+"\x00"+*got.ExternalID] = id
	}
	f.mu.Unlock()
	return &got, nil
}

// known returns a run found by externalId in what was seen so far.
func (f *finder) known(project, ext string) *mlop.RunDetails {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.byExt[project+"\x00"+ext]; ok {
		return f.details[id]
	}
	return nil
}

// list reads every run of a project matching search, calling detailsOf
// for each run not seen yet; it stops early once stop reports true. It
// returns a problem when the listing could not be completed.
func (f *finder) list(ctx context.Context, project, search string, stop func() bool) (string, error) {
	var firstID int64
	seen := 0
	for offset := 0; ; {
		page, err := f.api.ListRuns(ctx, mlop.RunListQuery{Project: project, Search: search, Limit: mlop.MaxListLimit, Offset: offset})
		if err != nil {
			return "", err
		}
		if len(page.Runs) == 0 {
			if seen < page.Total {
				return fmt.Sprintf("listing stopped at %d of %d runs", seen, page.Total), nil
			}
			return "", nil
		}
		if offset == 0 {
			firstID = page.Runs[0].ID
		} else if page.Runs[0].ID == firstID {
			return fmt.Sprintf("the server ignores list offsets, so only %d of %d matching runs can be listed", seen, page.Total), nil
		}
		for _, r := range page.Runs {
			if _, err := f.detailsOf(ctx, r.ID); err != nil {
				return "", err
			}
			if stop() {
				return "", nil
			}
		}
		seen += len(page.Runs)
		offset += len(page.Runs)
		if seen >= page.Total {
			return "", nil
		}
	}
}

// ilikeEscape makes s a literal for an ILIKE pattern.
func ilikeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// resolve finds the server run of er: the state directory's id, else a
// search by name, else a scan of the project — by externalId, never by
// name alone, and never by creating anything.
func (v *verifier) resolve(ctx context.Context, er *ExpectedRun) *resolved {
	f := v.find
	match := func(d *mlop.RunDetails) bool {
		return d != nil && d.ProjectName == er.Project && d.ExternalID != nil && *d.ExternalID == er.ExternalID
	}
	if id, ok := v.opts.RunMap[er.Project+"\x00"+er.ExternalID]; ok && er.ExternalID != "" {
		d, err := f.detailsOf(ctx, id)
		if err != nil {
			return &resolved{problem: v.problemOf(fmt.Sprintf("read run %d of the state directory", id), err)}
		}
		if match(d) {
			return &resolved{id: id, details: d, how: "state directory"}
		}
		v.opts.Logger.Info("the state directory's run id is not this run on the server; looking it up",
			"run", er.Name, "state_run_id", id)
	}
	if er.ExternalID == "" {
		return &resolved{problem: "the run has no externalId, so it cannot be found reliably"}
	}
	if d := f.known(er.Project, er.ExternalID); d != nil {
		return &resolved{id: d.ID, details: d, how: "list"}
	}
	found := func() bool { return f.known(er.Project, er.ExternalID) != nil }
	if _, err := f.list(ctx, er.Project, ilikeEscape(er.Name), found); err != nil {
		return &resolved{problem: v.problemOf(fmt.Sprintf("list runs named %q", er.Name), err)}
	}
	if d := f.known(er.Project, er.ExternalID); d != nil {
		return &resolved{id: d.ID, details: d, how: "list by name"}
	}
	// Renamed on the server, perhaps: scan the whole project, once.
	f.mu.Lock()
	sc := f.scans[er.Project]
	first := sc == nil
	if first {
		sc = &projectScan{done: make(chan struct{})}
		f.scans[er.Project] = sc
	}
	f.mu.Unlock()
	if first {
		problem, err := f.list(ctx, er.Project, "", func() bool { return false })
		if err != nil {
			problem = v.problemOf(fmt.Sprintf("list the runs of project %q", er.Project), err)
		}
		sc.problem = problem
		close(sc.done)
	} else {
		select {
		case <-sc.done:
		case <-ctx.Done():
			return &resolved{problem: ctx.Err().Error()}
		}
	}
	if d := f.known(er.Project, er.ExternalID); d != nil {
		return &resolved{id: d.ID, details: d, how: "project scan"}
	}
	if sc.problem != "" {
		return &resolved{problem: "not found, and " + sc.problem}
	}
	return &resolved{} // not on the server
}

// removeSpool deletes a capture's spool files.
func (c *Capture) removeSpool() {
	for _, er := range c.Runs {
		if er.spool != "" {
			os.Remove(er.spool)
		}
	}
}

// Close removes the capture's files from disk.
func (c *Capture) Close() { c.removeSpool() }

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
