package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// routeChunk hands the events of one chunk to their runs. It is called by
// the stream's reader goroutine; the caller holds a reference on c for the
// duration.
func (a *Agent) routeChunk(src *sourceRT, ss *streamState, c *chunk, evs []event.Event) {
	var (
		lastPos event.Position
		idx     int
		r       *runState
		lastRun = "\x00"
		jobs    []job
	)
	flush := func() {
		if r != nil {
			jobs = a.schedule(r)
			r.mu.Unlock()
			a.jobs.push(jobs...)
			r = nil
		}
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Time > c.newest && ev.Kind != event.KindRun {
			c.newest = ev.Time
		}
		if i > 0 && ev.Pos == lastPos {
			idx++
		} else {
			lastPos, idx = ev.Pos, 0
		}
		if r == nil || ev.Run != lastRun {
			flush()
			r = a.runFor(src, ss, ev)
			if r == nil {
				continue
			}
			lastRun = ev.Run
			r.mu.Lock()
		}
		a.addEvent(src, ss, r, c, ev, idx)
	}
	flush()
}

// runFor finds or creates the run an event belongs to.
func (a *Agent) runFor(src *sourceRT, ss *streamState, ev *event.Event) *runState {
	if ev.Run == "" && ss.defaultRun != nil && ev.Kind != event.KindRun {
		return ss.defaultRun
	}
	if r, ok := ss.runs[ev.Run]; ok && ev.Kind != event.KindRun {
		return r
	}
	project := src.cfg.Project
	var info event.RunInfo
	if ev.Kind == event.KindRun && ev.Info != nil {
		info = *ev.Info
		if info.Project != "" {
			project = info.Project
		}
	} else if prev, ok := ss.runs[ev.Run]; ok {
		return prev
	}
	name, id, err := src.namer.names(newNameData(src.cfg.Name, ss.runPath, ev.Run))
	if err != nil {
		src.badRecord(ss, 0, "bad_run", err, nil)
		return nil
	}
	if info.ExternalID != "" {
		id = shortenID(info.ExternalID)
	}
	if info.Name != "" && src.cfg.RunName == "" {
		// The format names the run, unless the source's run.name template
		// says otherwise.
		name = info.Name
		if len(name) > maxIDLen {
			name = name[:maxIDLen]
		}
	}
	r := a.getRun(src, project, id, name, ss)
	if ev.Kind == event.KindRun && ev.Info != nil {
		r.mu.Lock()
		if !r.created {
			if info.Name != "" {
				// A run event without a name attaches to a run another
				// stream names (TensorBoard's folded sub-directories).
				r.name = name
				r.info = info
			}
			if info.CreatedAt > 0 {
				r.createdAt = info.CreatedAt
			}
			r.addTags(info.Tags, nil)
			r.cfgInitial = deepMerge(r.cfgInitial, info.Config)
		}
		r.mu.Unlock()
	}
	if ss.runs == nil {
		ss.runs = map[string]*runState{}
	}
	ss.runs[ev.Run] = r
	ss.noteRun(checkpoint.RunRef{Project: r.project, ExternalID: r.key})
	if ev.Run == "" {
		ss.defaultRun = r
	}
	return r
}

// getRun returns the run with this identity, creating its state (not the
// server's run) on first use.
func (a *Agent) getRun(src *sourceRT, project, id, name string, ss *streamState) *runState {
	k := runKey(project, id)
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.runs[k]; ok {
		return r
	}
	r := &runState{key: id, project: project, source: src.cfg.Name, name: name,
		names: map[string]int64{}, idleTimeout: src.cfg.IdleTimeout}
	if known, ok := a.knownRuns[k]; ok {
		r.runID, r.url = known.RunID, known.URL
		r.tags = append(r.tags, known.Tags...)
		r.lastTime = known.LastTime
	}
	r.addTags(src.cfg.Tags, nil)
	r.cfgInitial = deepMerge(nil, src.cfg.Config)
	if len(src.cfg.ConfigFiles) > 0 {
		doc, sig := src.readConfigFiles(ss.runPath)
		r.cfgInitial = deepMerge(r.cfgInitial, doc)
		r.cfgSource, r.cfgPath, r.cfgSig = src, ss.runPath, sig
	}
	a.runs[k] = r
	return r
}

// addEvent adds one event to its run. Called with r.mu held.
func (a *Agent) addEvent(src *sourceRT, ss *streamState, r *runState, c *chunk, ev *event.Event, idx int) {
	if r.broken != nil {
		return
	}
	now := a.now()
	if ev.Kind != event.KindRun {
		r.touched = true
		r.lastActivity = now
		if r.finished != "" && ev.Kind != event.KindStatus {
			// New data for a run the agent finished: resume it (the create
			// call with its external id sets it RUNNING again).
			r.finished, r.created = "", false
			src.log.Info("run resumed", "run", r.name, "external_id", r.key)
		}
		if r.createdAt == 0 && ev.Time > 0 {
			r.createdAt = ev.Time
		}
		if ev.Time > r.lastTime {
			r.lastTime = ev.Time
		}
		r.encDirty = true
	}
	mark := checkpoint.Mark{Pos: ev.Pos, Index: idx}
	switch ev.Kind {
	case event.KindRun:
		// Handled by runFor.
	case event.KindMetrics:
		if err := mlop.ValidateMetric(ev); err != nil {
			src.badEvent(ss, ev, err)
			return
		}
		for i := range ev.Points {
			a.noteName(r, ev.Points[i].Name, mlop.LogTypeMetric)
		}
		b := a.openBatch(r, kMetrics, now)
		n := len(b.body)
		b.body = mlop.AppendMetricLine(b.body, ev.Time, ev.Step, ev.Points)
		a.account(r, b, c, int64(len(b.body)-n), ev.Time)
		b.points += len(ev.Points)
		r.points += int64(len(ev.Points))
	case event.KindData:
		if ss.alreadySent(r.key, mark) {
			return
		}
		if err := mlop.ValidateData(ev); err != nil {
			src.badEvent(ss, ev, err)
			return
		}
		logType := mlop.LogTypeData
		if ev.Type == event.DataHistogram {
			logType = mlop.LogTypeHistogram
		}
		a.noteName(r, ev.Name, logType)
		b := a.openBatch(r, kData, now)
		n := len(b.body)
		b.body = mlop.AppendDataLine(b.body, ev.Time, ev.Step, ev.Type, ev.Name, ev.Text)
		b.addMark(ss, mark)
		a.account(r, b, c, int64(len(b.body)-n), ev.Time)
	case event.KindLog:
		if ss.alreadySent(r.key, mark) {
			return
		}
		if err := mlop.ValidateLog(ev); err != nil {
			src.badEvent(ss, ev, err)
			return
		}
		b := a.openBatch(r, kLogs, now)
		n := len(b.body)
		b.body = mlop.AppendLogLine(b.body, ev.Time, ev.Text, ev.Step, ev.Type)
		b.addMark(ss, mark)
		a.account(r, b, c, int64(len(b.body)-n), ev.Time)
	case event.KindFile:
		if ss.alreadySent(r.key, mark) {
			return
		}
		if err := a.checkUpload(src, ev); err != nil {
			src.badEvent(ss, ev, err)
			return
		}
		logType := ev.Type
		if logType == "" {
			logType = mlop.LogTypeFile
		}
		a.noteName(r, ev.Name, logType)
		r.files++
		b := a.openBatch(r, kFiles, now)
		b.files = append(b.files, fileItem{path: ev.Path, logName: ev.Name, logType: logType, step: ev.Step, time: ev.Time, caption: ev.Text})
		b.addMark(ss, mark)
		a.account(r, b, c, int64(len(ev.Path)+len(ev.Name)+64), ev.Time)
	case event.KindTags:
		if r.addTags(ev.Tags, ev.Untags) {
			r.tagsDirty = true
			r.tagRefs.add(c)
		}
	case event.KindConfig:
		if len(ev.Config) > 0 {
			r.cfgDelta = deepMerge(r.cfgDelta, ev.Config)
			r.cfgRefs.add(c)
		}
	case event.KindStatus:
		switch ev.Status {
		case event.StatusRunning, "":
		default:
			r.finish, r.finishAt, r.explicit = ev.Status, ev.Time, true
			r.finishRefs.add(c)
		}
	}
}

// noteName records a log name so it is registered before the batch that
// carries it is sent. Called with r.mu held.
func (a *Agent) noteName(r *runState, name, logType string) {
	if n, ok := r.names[name]; ok {
		r.names[name] = n + 1
		return
	}
	r.names[name] = 1
	if r.unreg == nil {
		r.unreg = map[string][]string{}
	}
	r.unreg[logType] = append(r.unreg[logType], name)
	r.nameGen++
}

// openBatch returns the run's partial batch of kind k, starting one if
// needed. Called with r.mu held.
func (a *Agent) openBatch(r *runState, k kind, now time.Time) *batch {
	if b := r.open[k]; b != nil {
		return b
	}
	b := &batch{kind: k, run: r}
	if k != kFiles {
		b.body = getBody()
	}
	r.open[k] = b
	if !r.lingered {
		r.lingered = true
		a.linger.add(r, now)
	}
	return b
}

// account charges a line to the batch and the budget, takes a reference on
// its chunk, and cuts the batch when it is full. Called with r.mu held.
func (a *Agent) account(r *runState, b *batch, c *chunk, n int64, t int64) {
	b.lines++
	b.charged += n
	a.budget.charge(n)
	b.refs.add(c)
	if t > b.newest {
		b.newest = t
	}
	b.nameGen = r.nameGen
	if b.lines >= a.opts.Batch.MaxLines || len(b.body) >= a.opts.Batch.MaxBytes || len(b.files) >= maxFilesPerBatch {
		a.cut(r, b.kind)
	}
}

// maxFilesPerBatch matches what one /files request accepts.
const maxFilesPerBatch = 100

// cut moves the partial batch of kind k to the send queue. Called with r.mu
// held.
func (a *Agent) cut(r *runState, k kind) {
	b := r.open[k]
	if b == nil {
		return
	}
	r.open[k] = nil
	r.queue[k] = append(r.queue[k], b)
}

// checkUpload refuses files outside the upload roots.
func (a *Agent) checkUpload(src *sourceRT, ev *event.Event) error {
	if ev.Path == "" || ev.Name == "" {
		return fmt.Errorf("file event without path or name")
	}
	abs, err := filepath.Abs(ev.Path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("file %s: %w", ev.Path, err)
	}
	for _, root := range src.uploadRoots {
		if real == root || strings.HasPrefix(real, root+string(os.PathSeparator)) {
			return nil
		}
	}
	return fmt.Errorf("file %s is outside the upload roots %v", ev.Path, src.uploadRoots)
}
