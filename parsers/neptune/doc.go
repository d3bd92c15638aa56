// Package neptune reads Neptune offline data and maps it to mlop events. It
// registers the stream format "neptune" (parsers.StreamFormat).
//
// # Inputs
//
//   - neptune-client 0.9–1.14 disk queues under .neptune/async/ and
//     .neptune/offline/, in all three directory layouts (<uuid>/exec-*/,
//     <type>__<uuid>[/exec-*]/, <type>__<uuid>__<pid>__<rand>/): data-N.log
//     segments of JSON lines, metadata.json (1.9+), upload_path/.
//   - neptune-scale 0.11–0.29 run_operations.sqlite3 databases (DB v1–v5),
//     rows still in the -wal file included.
//
// Discover accepts any path at or above the data (a project directory, a
// .neptune directory, a run or execution directory, a queue file, a
// database file) and walks up to 6 levels down. One stream is one Neptune
// run: the execution directories of one neptune-client run (several when
// the run was resumed, merged oldest first), or the databases that share a
// neptune-scale project and run id in one log directory. What it finds
// and does not import is returned by DiscoverSkipped
// (parsers.SkipReporter): neptune-client model, model_version and project
// containers (reason container: mlop has no model registry), each with
// its uuid, directory and the attributes and series it holds at the end
// of its queue, and directories below the path that cannot be listed
// (reason unreadable). Open refuses a container's key.
//
// # Mapping
//
//	Neptune                                     mlop event (endpoint)
//	------------------------------------------  ---------------------------------------------------------------
//	run (1.x uuid / scale metadata.run_id)      KindRun first: ExternalID = uuid (1.x) or custom run id (scale)
//	1.x model / model_version / project         not imported: parsers.Skipped (container) from DiscoverSkipped
//	sys/name (1.x, final value) / experiment_id Info.Name; default "Untitled" (1.x) or the run id (scale)
//	metadata.json createdAt / Run.creation_time Info.CreatedAt (fallback: exec-dir time, first record, first row)
//	Run.fork_point                              Info.ForkParent = parent run id, Info.ForkStep = step × multiplier;
//	                                            with inherit_configs, Info.Config also holds the ancestors' final
//	                                            configs (mlop copies only what the parent had sent when the fork
//	                                            is created); neptune/group_tags starts as [] (not inherited)
//	bookkeeping                                 Info.Config: neptune/source, neptune/step_multiplier,
//	                                            neptune/run_uuid|run_id, neptune/project, neptune/mode,
//	                                            neptune/fork/{parent_run_id,parent_project,step,inherit_configs}
//	float series point (LogFloats, append f64)  KindMetrics (/ingest/metrics): name = path verbatim, original
//	                                            timestamp; points of one operation at one step share an event
//	int64 series point (scale)                  KindMetrics, as a float
//	string series (LogStrings, append string)   KindData type "string-series" (/ingest/data), Name = path
//	monitoring/[<hash>/]stdout|stderr,          KindLog (/ingest/logs): INFO for stdout, ERROR for stderr,
//	runtime/stdout|stderr                       Step = line number (1, 2, ... per run), one trailing newline cut
//	histogram (scale append)                    KindData type "HISTOGRAM": {"freq":[...],"bins":[edges],
//	                                            "shape":"generic","type":"Histogram","v":1,"maxFreq":N};
//	                                            freq = counts, or the densities when there are no counts
//	file (UploadFile, UploadFileContent,        KindFile (/files + PUT): Name = path, Step 0 for a single file,
//	UploadFileSet matches, assign file_ref)     the series step for LogImages / append file_ref; Type from MIME,
//	file series (LogImages, append file_ref)    then extension: IMAGE, AUDIO, VIDEO, TEXT, else ARTIFACT;
//	                                            Text (caption) = image description/name or source file name;
//	                                            a LogImages image is uploaded as <its name>.<ext>
//	file that does not exist here               skipped; Warning missing_file and config
//	                                            neptune/missing_files/<path>[/<step>] = the recorded path
//	atom float/int/bool/string                  KindConfig {path: value} (flat keys with '/'); NaN/±Inf become
//	                                            the strings "NaN", "Infinity", "-Infinity"
//	atom datetime                               KindConfig, RFC 3339 string (UTC)
//	string set (not tags)                       KindConfig, sorted list ([] when empty: never null);
//	                                            add/remove/clear replayed in order
//	sys/* atoms                                 KindConfig under neptune/sys/* (e.g. neptune/sys/hostname)
//	overwrite                                   KindConfig again (the last value wins, server deep-merge)
//	DeleteAttribute, value written before it    nothing: Open pre-scans the run, so what a later deletion
//	                                            removes is never sent and the key is absent (a value written
//	                                            after the deletion is sent as usual; step-less points restart)
//	DeleteAttribute after the value was sent    KindConfig {path: null} (all a config update can do), tags
//	(a run followed live)                       removed; Warning deleted (points and files sent stay)
//	sys/tags add/remove/clear/assign            KindTags (Tags added, Untags removed), replayed in order
//	sys/group_tags                              KindTags too (mlop allows one group:* tag, so plain tags),
//	                                            and KindConfig neptune/group_tags = sorted group tags
//	sys/failed = true                           KindStatus FAILED at that operation (COMPLETED is the agent's)
//	ClearFloatLog/ClearStringLog/ClearImageLog  sent points stay; step-less points restart at 0 (and replace
//	                                            them by step); Warning cleared_series if points were sent
//	ConfigFloatSeries                           nothing (chart hints)
//	CopyAttribute, AssignArtifact,              skipped, Warning needs_server
//	TrackFilesToArtifact, ClearArtifact
//	DeleteFiles                                 skipped, Warning unsupported
//	unknown operation type / operation_type     skipped, Warning unknown_op
//	undecodable line / row, repeated version    skipped, Warning corrupt
//
// Every event carries Pos = {Offset: index of the execution directory or
// database within the run (0 for almost every run), Seq: the record's
// version (1.x) or sequence_id (scale)}; the events of one operation share
// it and are contiguous. Time is the operation's time (1.x "at", else its
// first point's ts, else the previous operation's; scale: the snapshot
// timestamp, else the row's enqueue time), so the last event's Time is the
// run's last activity.
//
// # Steps
//
// Neptune steps are decimals (1.x floats, read exactly from their JSON
// text; scale whole + micro/1e6). Open pre-scans the run and picks the
// smallest power of ten ≤ 10^6 that makes every step integral (series,
// string series, histograms and file series; console lines, whose steps
// are replaced by line numbers, do not count), unless
// parsers.Options.StepMultiplier forces one. The multiplier is recorded as
// neptune/step_multiplier and kept in the checkpoint state: a later point
// that does not fit is reported (Warning bad_step) and dropped, never
// rounded onto a neighbour. neptune-client "step": null takes the series'
// last step + 1, starting at 0. A neptune-scale append without a step
// takes the next whole step after the run's highest.
//
// A fork family (runs linked by fork points in the same log directory)
// shares one multiplier, so ForkStep is in the parent's units: Open
// pre-scans the family's other databases too.
//
// # Previews
//
// A neptune-scale preview point is dropped when a committed point of the
// same series exists at the same or a later step (pre-scanned at Open).
// Previews no committed point supersedes ("trailing" previews) are sent as
// ordinary points — mlop keeps one value per (metric, step), so a committed
// value logged later at that step replaces them — unless the source sets
// previews=drop, which drops every preview. While following a live
// database, previews are judged against what was committed when the stream
// was opened and what has been read since.
//
// # Files and paths
//
// Absolute paths recorded on the producing machine (UploadFile.file_path,
// UploadFileSet globs, file_upload_requests.source_path) are used as they
// are, or re-rooted with the path_map parameter ("from=to;..."). A
// neptune-scale temporary copy (is_temporary) that is not at its recorded
// path is looked up by name in the run directory. Inline content
// (LogImages, UploadFileContent base64) is written to the spool_dir
// parameter (default <tmp>/mlop-agent-neptune) under a name derived from
// the operation, so reading again reuses the same file; the spool is not
// cleaned up by this package.
//
// # Reading SQLite without touching it
//
// See package internal/sqlitedb: no -wal: immutable=1; -wal and -shm:
// mode=ro&readonly_shm=1 (no checkpoint, no write, WAL-only rows seen); a
// -wal without -shm: a private copy, re-made when the originals change. A
// follower's open connection keeps SQLite's last-connection cleanup from
// running when the writer exits, so the writer's -wal and -shm stay on
// disk (intact) until the next connection; that is SQLite's normal
// behaviour with concurrent readers.
//
// # Checkpoint state
//
// Chunk.State is JSON: {"v":1, "m": mapping state, "seg"/"off": the 1.x
// segment and byte offset to continue at (a hint, verified), "mem": the
// execution directory or database being read}. The mapping state holds the
// multiplier, whether the run event was sent, the last time, the console
// line counter, the run's highest step, the tag and group-tag sets, other
// string sets, and (1.x only) each series' last step. With no state and a
// non-zero resume position the run is mapped again from the start and the
// events up to the position are dropped, which rebuilds the state.
//
// # Warnings
//
// Skipped operations are returned by the stream's Warnings method (the
// Warner interface: File, Pos, Reason from a closed set, Detail; at most
// 1000 kept between calls) and counted through Options.OnSkip with
// parsers.SkipOther.
//
// # Known limits
//
//   - The project is not stored by neptune-client; neptune-scale's is only
//     recorded in config (Info.Project is left to the source's setting).
//   - Points inherited by a fork live in the parent run; mlop links the
//     fork by ForkParent/ForkStep. inherit_configs is only recorded.
//   - neptune-client model, model_version and project containers are
//     not imported (mlop has no model registry); Discover lists them.
//   - A neptune-client run written by two processes at once (two 1.9+
//     directories growing together) is read directory after directory:
//     records appended to an earlier directory after the stream moved on
//     are not read.
package neptune
