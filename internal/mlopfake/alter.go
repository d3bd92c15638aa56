package mlopfake

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Deliberate damage, for tests of tools that check what the server holds
// (mlop-agent verify): drop metric rows, change a value, turn a NaN into a
// number, add a stray or duplicate row, remove a tag, change a config key,
// unregister a log name. Go methods for in-process tests, and POST
// /_standin/alter for the binary. NOT part of the mlop API: the real server
// has no way to do any of this.

// ErrNoSeries is returned for a metric the run has no rows of.
var ErrNoSeries = errors.New("no such metric")

// alterSeries rewrites the raw rows of one metric of a run with fn, which
// gets them in arrival order and returns the new rows and how many it
// changed.
func (s *Server) alterSeries(runID int64, logName string, fn func([]Point) ([]Point, int)) (int, error) {
	st := s.runStream(runID)
	if st == nil {
		if _, ok := s.Run(runID); !ok {
			return 0, fmt.Errorf("run %d: %w", runID, ErrNoRun)
		}
		return 0, fmt.Errorf("run %d, metric %q: %w", runID, logName, ErrNoSeries)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	ser := st.series[logName]
	if ser == nil {
		return 0, fmt.Errorf("run %d, metric %q: %w", runID, logName, ErrNoSeries)
	}
	before := ser.n
	pts, changed := fn(ser.raw())
	ser.replace(pts)
	st.rawPoints += ser.n - before
	st.maxStep, st.maxTime, st.hasMetric = 0, 0, false
	for _, other := range st.order {
		other.each(func(p Point) {
			if !st.hasMetric || p.Step > st.maxStep {
				st.maxStep = p.Step
			}
			st.maxTime = max(st.maxTime, p.Time)
			st.hasMetric = true
		})
	}
	return changed, nil
}

// DropMetricSteps deletes every raw row of a run's metric at the given
// steps and returns how many rows went.
func (s *Server) DropMetricSteps(runID int64, logName string, steps ...uint64) (int, error) {
	return s.alterSeries(runID, logName, func(pts []Point) ([]Point, int) {
		kept := pts[:0]
		for _, p := range pts {
			if !slices.Contains(steps, p.Step) {
				kept = append(kept, p)
			}
		}
		return kept, len(pts) - len(kept)
	})
}

// SetMetricValue sets the value of every raw row of a run's metric at step
// (NaN and ±Inf allowed) and returns how many rows changed.
func (s *Server) SetMetricValue(runID int64, logName string, step uint64, v float64) (int, error) {
	return s.alterSeries(runID, logName, func(pts []Point) ([]Point, int) {
		n := 0
		for i := range pts {
			if pts[i].Step == step {
				pts[i].Value = v
				n++
			}
		}
		return pts, n
	})
}

// AddMetricRow appends one raw row to a run's metric, as a re-sent or a
// stray line would; a row with a larger time than the others at its step
// replaces them in the deduplicated view.
func (s *Server) AddMetricRow(runID int64, logName string, p Point) error {
	_, err := s.alterSeries(runID, logName, func(pts []Point) ([]Point, int) { return append(pts, p), 1 })
	return err
}

// alterRun changes a run's Postgres row with fn under s.mu.
func (s *Server) alterRun(runID int64, fn func(rn *run) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runs[runID]
	if rn == nil {
		return fmt.Errorf("run %d: %w", runID, ErrNoRun)
	}
	if err := fn(rn); err != nil {
		return err
	}
	rn.updatedAt = time.Now()
	return nil
}

// RemoveTag removes a tag from a run.
func (s *Server) RemoveTag(runID int64, tag string) error {
	return s.alterRun(runID, func(rn *run) error {
		i := slices.Index(rn.tags, tag)
		if i < 0 {
			return fmt.Errorf("run %d has no tag %q", runID, tag)
		}
		rn.tags = slices.Delete(slices.Clone(rn.tags), i, i+1)
		return nil
	})
}

// SetConfigValue sets a top-level key of a run's config to v (a JSON value:
// nil, bool, float64, string, []any, map[string]any), or deletes it when
// del is true.
func (s *Server) SetConfigValue(runID int64, key string, v any, del bool) error {
	return s.alterRun(runID, func(rn *run) error {
		cfg, _ := deepCopy(rn.config).(map[string]any)
		if cfg == nil {
			cfg = map[string]any{}
		}
		if del {
			if _, ok := cfg[key]; !ok {
				return fmt.Errorf("run %d has no config key %q", runID, key)
			}
			delete(cfg, key)
		} else {
			cfg[key] = v
		}
		if len(cfg) == 0 {
			rn.config = nil
		} else {
			rn.config = cfg
		}
		return nil
	})
}

// RemoveLogName unregisters a log name (a run_logs row) of a run.
func (s *Server) RemoveLogName(runID int64, name string) error {
	return s.alterRun(runID, func(rn *run) error {
		if _, ok := rn.logNames[name]; !ok {
			return fmt.Errorf("run %d has no log name %q", runID, name)
		}
		delete(rn.logNames, name)
		rn.logOrder = slices.DeleteFunc(slices.Clone(rn.logOrder), func(n string) bool { return n == name })
		return nil
	})
}

// AlterRequest is the body of POST /_standin/alter. Op is one of
// drop-steps (LogName, Steps), set-value (LogName, Step, Value: a number
// or "NaN", "Infinity", "-Infinity"), add-row (LogName, Step, Time, Value),
// remove-tag (Tag), set-config (Key, ConfigValue), delete-config (Key),
// remove-log-name (LogName).
type AlterRequest struct {
	RunID       int64    `json:"runId"`
	Op          string   `json:"op"`
	LogName     string   `json:"logName,omitempty"`
	Steps       []uint64 `json:"steps,omitempty"`
	Step        uint64   `json:"step,omitempty"`
	Time        uint64   `json:"time,omitempty"`
	Value       any      `json:"value,omitempty"`
	Tag         string   `json:"tag,omitempty"`
	Key         string   `json:"key,omitempty"`
	ConfigValue any      `json:"configValue,omitempty"`
}

func alterValue(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
	}
	return 0, fmt.Errorf("value %v: want a number, \"NaN\", \"Infinity\" or \"-Infinity\"", v)
}

// Alter applies one AlterRequest and returns how many rows or entries it
// changed.
func (s *Server) Alter(req AlterRequest) (int, error) {
	switch req.Op {
	case "drop-steps":
		return s.DropMetricSteps(req.RunID, req.LogName, req.Steps...)
	case "set-value":
		v, err := alterValue(req.Value)
		if err != nil {
			return 0, err
		}
		return s.SetMetricValue(req.RunID, req.LogName, req.Step, v)
	case "add-row":
		v, err := alterValue(req.Value)
		if err != nil {
			return 0, err
		}
		return one(s.AddMetricRow(req.RunID, req.LogName, Point{Step: req.Step, Time: req.Time, Value: v}))
	case "remove-tag":
		return one(s.RemoveTag(req.RunID, req.Tag))
	case "set-config":
		return one(s.SetConfigValue(req.RunID, req.Key, req.ConfigValue, false))
	case "delete-config":
		return one(s.SetConfigValue(req.RunID, req.Key, nil, true))
	case "remove-log-name":
		return one(s.RemoveLogName(req.RunID, req.LogName))
	}
	return 0, fmt.Errorf("op %q: want drop-steps, set-value, add-row, remove-tag, set-config, delete-config or remove-log-name", req.Op)
}

func one(err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return 1, nil
}
