// Package export reads the parquet exports of the official
// neptune-exporter tool (neptune-formats.md §2.3) and maps them to mlop
// events with the same mapping as the offline Neptune readers (package
// parsers/neptune/internal/mapping; see parsers/neptune's doc.go for the
// table). It registers the stream format "neptune-export".
//
// # Layout
//
//	<data dir>/<S(project_id)>/<S(run_id)>_part_<n>.parquet   rows of one run, part_0 renamed last
//	<data dir>/<S(project_id)>/<S(run_id)>_part_<n>.parquet.tmp  being written
//	<models dir>/<S(project_id)>/models/<S(model_id)>_part_<n>.parquet, .../model_versions/...  (export-models)
//	<files dir>/<S(project_id)>/<file_value.path>            downloaded files
//
// Discover accepts the data directory, a directory up to two levels
// above it (the exports directory holding data/ and files/), a project
// directory, or one part file of a run. One stream is one run whose
// part_0.parquet exists. What is found and not imported is returned by
// DiscoverSkipped (parsers.SkipReporter) and logged once by Discover:
// a run without part_0 (still being exported, or the export stopped;
// reason incomplete, left for a later import), export-models' models and
// model versions (reason container, with their attributes and series
// counted: mlop has no model registry), and a directory that cannot be
// read (reason unreadable). The key is
// neptune-export:<project dir>/<run file prefix> (the exporter's sanitized
// names: stable, unique, readable without opening the file). Discover
// reads part_0's first row and its leading row groups of parameters (the
// exporter writes parameters first) for the fork parent, and caches what
// it read while the file is unchanged; StreamInfo.Parent names the parent
// run's key when the parent is in the same project directory (matched by
// run_id, else by custom run id or sys/id), so parents open first.
// StreamInfo.Signature summarises the part files' sizes and times.
//
// # Mapping specific to the export
//
//	export row                                  mlop
//	------------------------------------------  ----------------------------------------------------------
//	run (part_0)                                KindRun: ExternalID = run_id (3.x custom run id, 2.x sys/id;
//	                                            "<project_id>/<run_id>" with external_id=project_run_id),
//	                                            Name = sys/name (else run_id), CreatedAt = sys/creation_time,
//	                                            ForkParent/ForkStep from sys/forking/parent and
//	                                            sys/forking/step (× multiplier); Config neptune/source =
//	                                            "neptune-exporter", neptune/project, neptune/run_id,
//	                                            neptune/step_multiplier, neptune/export/variant,
//	                                            neptune/fork/{parent_run_id,step}
//	float/int/bool/string/datetime/string_set   Assign: config (sys/* under neptune/sys/), sys/tags and
//	                                            sys/group_tags → tags, sys/failed = true → FAILED; an empty
//	                                            string_set_value list is [] (a null one is no value)
//	a parameter row with a null value           skipped (parsers.SkipNull): the neptune3 exporter melts a
//	                                            runs table, giving each run null rows for the parameters of
//	                                            the other runs exported in the same batch
//	float_series                                metrics at step × multiplier with the row's timestamp;
//	                                            consecutive rows at one step and time (neptune3 lists a
//	                                            step's metrics together) share one metrics event; a null
//	                                            value with a time is a NaN point (pandas writes NaN as null)
//	string_series                               string-series data, or console log lines for
//	                                            runtime/stdout|stderr and monitoring/[<hash>/]stdout|stderr
//	histogram_series                            HISTOGRAM data (values as frequencies, whatever the type)
//	file, artifact                              file upload from the files directory (artifact: its
//	                                            files_list.json; the artifact's content was never exported)
//	file_series                                 file upload at step × multiplier
//	file_set (2.x)                              one upload per file in the directory (the server's zip)
//	a file not in the files directory           Warning missing_file and config neptune/missing_files/...
//	a path leaving the files directory          Warning bad_value
//	unknown attribute_type                      Warning unknown_op
//
// Rows are read in part order and, within a part, in the order the
// exporter wrote them: parameters, metrics, series, files. No point is
// ever dropped for volume (the exporter's own pluto loader keeps one
// step in 50 by default).
//
// # The two exporters
//
// The variant of a run is decided by the exporter parameter, else by its
// identity: run_id equal to sys/custom_run_id is neptune3, equal to sys/id
// neptune2; else by attributes only one generation has (sys/family,
// sys/experiment/*, histograms: neptune3; sys/failed, sys/hostname, file
// sets, artifacts: neptune2). Where they differ:
//
//   - neptune2 file series: the exporter downloads the series as files
//     named by their index and puts that index in the step column; the
//     original steps are not in the export. The index is used as the step
//     (so a series logged at steps 0, 1, 2, ... lines up with its metrics)
//     and the run's config says neptune/export/file_series_steps =
//     "index". Without a variant, the files' layout
//     (<project>/<run>/<attribute>/<index>.<ext>) decides.
//   - neptune2 single files have no extension: their content is sniffed
//     for the upload type.
//   - neptune2 series timestamps were naive local times of the machine
//     that ran the export, stored as if UTC. The timezone parameter
//     (IANA name) corrects them; by default they are taken as UTC.
//   - neptune2 metrics are stored series by series, so each point is an
//     event of its own; neptune3 metrics are grouped by step.
//   - neptune3 parameters hold null rows for other runs' parameters
//     (skipped, see above); fork attributes exist only there.
//
// # Steps
//
// Steps are DECIMAL(18,6), read exactly from FIXED_LEN_BYTE_ARRAY (any
// width), BYTE_ARRAY, INT64 or INT32 storage at the column's scale (a
// double step column is accepted too). Open pre-scans every part's step,
// type and path columns and picks the smallest power of ten ≤ 10^6 that
// makes every float, string (console lines excepted), histogram and file
// series step integral, unless parsers.Options.StepMultiplier forces
// one. A fork family found in the same project directory shares one
// multiplier (its members' steps and fork steps are pre-scanned too), so
// ForkStep is in the parent's units. A step that does not fit the
// multiplier is reported (bad_step) and its point dropped, never rounded.
//
// # Positions and checkpoint state
//
// An event's Pos is {Offset: part number, Seq: 1 + the row's index in the
// part} of the last row of its operation. Operations (at most 1024 rows:
// a step's metrics, a run of parameters, or one row) depend only on the
// data, never on where a chunk ended, so a resumed run maps exactly as one
// pass does. A chunk holds about 64k rows, so memory stays flat however
// large a run is. Chunk.State is JSON {"v":1, "m":
// the mapper state (multiplier, run sent, last time, console line
// counter, tags, group tags, string sets)}. Resuming skips whole row
// groups without decoding them. Without a state, a non-zero resume
// position maps the run again from the start and drops the events up to
// it, which rebuilds the state.
//
// # Failures
//
// A part_0 that cannot be read makes Open fail for that run only. A later
// part that cannot be read (bad footer, corrupt page) is reported as a
// corrupt warning and the rest of it skipped; the run goes on with the
// next part. Read errors of the machine (not of the file) are returned, so
// the agent retries the run from its checkpoint later. A gap in the part
// numbers is reported as missing_part.
//
// # Parameters
//
// files_dir (default ../files, relative to the data directory), exporter
// (auto, neptune2, neptune3), timezone (neptune2 only), external_id
// (run_id, project_run_id); see the Param constants.
package export
