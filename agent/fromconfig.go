package agent

import (
	"log/slog"
	"time"

	"github.com/mlop-ai/mlop-agent/config"
)

// FromConfig turns a loaded configuration into agent options. Preset
// formats (lightning, keras, ...) are kept as named: the agent expands them
// when it builds its sources.
func FromConfig(cfg *config.Config, follow bool, log *slog.Logger) Options {
	o := Options{
		Project:            cfg.Project,
		StateDir:           cfg.StateDir,
		Follow:             follow,
		Batch:              BatchOptions{MaxLines: cfg.Batch.MaxLines, MaxBytes: int(cfg.Batch.MaxBytes), Linger: time.Duration(cfg.Batch.Linger)},
		MaxInFlight:        cfg.Server.MaxInFlight,
		BufferBytes:        int64(cfg.Buffer.MaxBytes),
		CheckpointInterval: time.Duration(cfg.Checkpoint.Interval),
		HeartbeatInterval:  time.Duration(cfg.HeartbeatInterval),
		ShutdownTimeout:    time.Duration(cfg.ShutdownTimeout),
		DeadLetterPath:     cfg.DeadLetter.Path,
		Watch: WatchOptions{
			PollInterval:     time.Duration(cfg.Watch.PollInterval),
			FingerprintBytes: int(cfg.Watch.FingerprintBytes),
			MaxLineBytes:     int(cfg.Watch.MaxLineBytes),
			MaxOpenFiles:     cfg.Watch.MaxOpenFiles,
		},
		UploadRoots:    cfg.Uploads.Roots,
		ReadConfigFile: config.ReadDocument,
		Logger:         log,
	}
	for _, s := range cfg.Sources {
		src := Source{
			Name: s.Name, Format: s.Format, Paths: s.Paths, Exclude: s.Exclude, Project: s.Project,
			StepField: s.StepField, TimeField: s.TimeField, RunField: s.RunField,
			StepMultiplier: s.StepMultiplier, MaxNamesPerRun: s.MaxNamesPerRun, Params: map[string]string{},
			RunName: s.Run.Name, RunID: s.Run.ID, Tags: s.Run.Tags, Config: s.Run.Config, ConfigFiles: s.Run.ConfigFiles,
		}
		switch {
		case s.IdleTimeout.IsNever():
			src.IdleTimeout = -1
		default:
			src.IdleTimeout = time.Duration(s.IdleTimeout)
		}
		for k, v := range s.Params {
			src.Params[k] = v
		}
		if s.CSV.Delimiter != "" {
			src.Params["delimiter"] = s.CSV.Delimiter
		}
		if s.Format == "csv" || s.CSV.Comment != "#" {
			src.Params["comment"] = s.CSV.Comment
		}
		o.Sources = append(o.Sources, src)
	}
	return o
}
