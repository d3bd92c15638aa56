// Package tensorboard reads TensorBoard log directories — the
// events.out.tfevents.* files that PyTorch Lightning, torch's and
// tensorboardX's SummaryWriter, Keras, the Hugging Face Trainer,
// Stable-Baselines3 and TensorFlow write — and maps them to mlop events. It
// registers the stream format "tensorboard" (parsers.StreamFormat).
//
// It owns: TFRecord framing (masked CRC32C on length and data) and the
// wire decoding of Event, Summary, TensorProto, HistogramProto and the
// hparams plugin's HParamsPluginData, by field number
// (google.golang.org/protobuf/encoding/protowire only; no generated
// TensorFlow code, and no protowire type in an exported signature); which
// directories are runs and which fold into one; TensorBoard's purge; a
// small reader for Lightning's hparams.yaml. It must never: load a whole
// file (memory is one buffer and at most one record per stream), skip
// bytes of a record that is still being written, move a position past a
// record it did not map, or drop anything without a warning.
//
// # Runs and streams
//
// Every directory that holds events files is one stream (a "lane"); its
// files are read in name order (the names start with the writer's start
// time) as one stream, and files that appear later are appended. Files
// TensorBoard does not read are left out: the profiler's *.profile-empty,
// SageMaker's *.sagemaker-uploaded/-uploading markers, hidden files.
// Position{Offset: the file's index in the lane, Seq: the byte offset
// after the record}; the lane's file list is kept in the state so indexes
// stay stable.
//
// A lane's run is named by the directory's path relative to the log
// directory given (lightning_logs/version_3 → version_3 when
// lightning_logs is given; a directory given that itself holds events files
// is named by its own name). For a single file (what a glob such as
// /logs/**/events.out.tfevents.* matches) the log directory is the parent
// of the topmost directory with events files within 8 levels, so the name
// is the run directory's name ({{.Dir}}) in the usual layout. The run's
// externalId is "tensorboard:<name>/<first events file>": the first file's
// name carries the writer's start time, host and pid, so a re-import — also
// of a copy at another path — re-attaches, and two experiments that both
// have a version_0 stay two runs. The stream key is the same string.
//
// A lane up to 4 levels below another lane is one of its sub-directories
// when its first tag says so (decided on reading, saved in the state):
//
//   - add_scalars (torch: <run>/<main_tag with / as _>_<key>; tensorboardX:
//     <run>/<main_tag>/<key>, each holding tag <main_tag>): its points
//     become metric <main_tag>/<key> of the parent run (another tag U in
//     such a directory becomes <sub-directory>/U);
//   - add_hparams (a sub-directory whose first tag is _hparams_/...): its
//     hparams become the parent run's config, its scalars the parent's
//     metrics.
//
// A folded lane emits a run event with the parent's externalId and no
// name: it attaches to the run the parent names. Each folding can be
// switched off (parameters fold_scalars, fold_hparams); anything else
// below a run is a run of its own.
//
// # Mapping
//
//	TensorBoard                                   mlop event (endpoint)
//	--------------------------------------------  ---------------------------------------------------------------
//	a lane that is a run                          KindRun first (after every Open): Name = relative path,
//	                                              ExternalID = tensorboard:<name>/<first file>
//	Event.wall_time (seconds)                     Time, unix ms (rounded); missing: the previous event's
//	Event.step                                    Step (int64, exact; a negative step: skipped, bad_step)
//	Event.file_version, source_metadata           nothing
//	simple_value (float32)                        KindMetrics (/ingest/metrics), name = tag, widened exactly;
//	                                              NaN and ±Inf kept; consecutive records at the same step and
//	                                              millisecond share one line
//	tensor, plugin "scalars" or none, one element KindMetrics: float_val, double_val, int_val (int8/16/32,
//	                                              uint8/16), int64_val, uint32_val, uint64_val, bool_val (0/1),
//	                                              half_val (DT_HALF, DT_BFLOAT16) or raw little-endian
//	                                              tensor_content of any of those dtypes, packed or not
//	tensor, plugin "text" (DT_STRING)             KindData "string-series" (/ingest/data), name = tag without
//	                                              tensorboardX's "/text_summary"; rank 0/1: the strings joined
//	                                              by newlines; rank 2: rows of "a | b"
//	histo (HistogramProto)                        KindData "HISTOGRAM": {"freq":[...],"bins":[edges],"shape":
//	                                              "generic","type":"Histogram","v":1,"maxFreq":N} (the same
//	                                              object parsers/neptune sends); bucket i spans limit[i-1]..
//	                                              limit[i], the first starts at min, the last ends at max (as
//	                                              TensorBoard shows them); empty zero-width buckets left out
//	tensor, plugin "histograms" (k×3)             KindData "HISTOGRAM", edges = lefts and the last right
//	image (Summary.Image)                         KindFile (/files + PUT), Type IMAGE, name = tag, at the step;
//	tensor, plugin "images" ([w, h, png...])      the bytes are written to spool_dir first (one file each)
//	_hparams_/session_start_info (plugin          KindConfig: the hparams (google.protobuf.Value: numbers,
//	"hparams", data in the metadata)              strings, bools, null, structs, lists; non-finite numbers as
//	                                              "NaN"/"Infinity"/"-Infinity")
//	_hparams_/experiment, session_end_info        nothing (the search space and the session's status)
//	hparams.yaml beside the events files          KindConfig (parameter hparams_yaml); sent again when it
//	                                              changes; its top-level keys win over the plugin's copies
//	SessionLog START at step S                    TensorBoard's purge marker, see Purge
//	audio, plugin "audio"                         skipped, Warning audio
//	plugin "pr_curves" / "mesh"                   skipped, Warning pr_curves / mesh
//	graph_def, meta_graph_def, run metadata,      skipped, Warning graph (a large one is not even read)
//	graph plugins
//	plugin "custom_scalars" (the layout)          skipped, Warning custom_scalars
//	any other plugin                              skipped, Warning unknown_plugin
//	non-scalar numeric tensors, string tensors    skipped, Warning unsupported
//	without a plugin, log_message, obsolete
//	histograms
//
// Each tag's plugin comes from its first metadata and is remembered (first
// one wins, per lane, as TensorBoard does): TensorFlow writes the metadata
// only on a tag's first value. The map is part of the checkpoint state, so
// a restart maps the later values the same way.
//
// # Purge
//
// When a writer restarts from a checkpoint (torch's and tensorboardX's
// purge_step, TF1's supervisor) it writes SessionLog START at step S, and
// TensorBoard hides the points read before it whose step is >= S. The heads
// of the lane's later files are searched for START before an earlier file
// is read, so an import does not send what TensorBoard hides (Warning
// purged, with the count, when leaving the file). A START found after the
// points it hides were sent — in the middle of a file, or in a file that
// appeared later while following — is reported with the number of points
// sent that TensorBoard now hides (Warning purge_after_send; counted by
// reading the lane again, not kept in memory); mlop cannot take them back.
// Parameter purge=false sends everything. Newer TensorBoard versions do not
// purge on the first START of a run; this reader follows the writers'
// documented meaning (every START purges what came before it).
//
// # Reading, corruption and live files
//
// A record that is not complete yet is held: the stream's position stays
// before it and it is read again, from the file, on the next Next. At the
// end of a backfill or import (parsers.Options.Follow false) it is reported
// as a truncated tail (Warning truncated), not an error; the next import
// reads it once the file has grown. A record whose data checksum fails is
// skipped; one whose length checksum fails is skipped up to the next
// offset where a frame with good checksums starts (so the good records
// after a bad one are still read); both are reported with file:offset
// (Warning corrupt). While following, both are first read again for
// corrupt_wait (default 30s): a writer may still be flushing. An
// incomplete record at the end of a file that a newer file follows (a
// writer killed mid-record) is given up after corrupt_wait without change.
// A record over 64 MiB is skipped without being read (too_large).
//
// # Checkpoint state
//
// Chunk.State is JSON: {"v":1, "files": the lane's files in reading
// order, "meta": tag → plugin, "role" with "fold_tag"/"fold_name" for
// add_scalars, "purges": the START markers seen (where, step, when seen),
// "hidden": points of the current file the purge hid, "yaml": the
// signature of the hparams.yaml last sent}. With no state and a non-zero
// position the lane is read again up to the position without sending, to
// rebuild it.
//
// # Files and spool
//
// Images are written to the spool_dir parameter (the agent sets it under
// its state directory; default <tmp>/mlop-agent-tensorboard) under a name
// derived from the lane, file, offset, tag and sample, so reading a record
// again reuses its file. The spool is not cleaned up by this package.
//
// # Parameters
//
// spool_dir, fold_scalars, fold_hparams, hparams_yaml, purge (true|false,
// default true), corrupt_wait (a duration). Unknown parameters make Open
// fail (CheckParams reports them earlier).
//
// # Warnings
//
// Skipped values are returned by the stream's Warnings method
// (parsers.Warner; File, Pos{Offset: file index, Seq: byte offset}, Reason
// from the closed set of Reason* constants, Detail; at most 1000 kept
// between calls) and counted through Options.OnSkip.
//
// # Known limits
//
//   - Several images of one TF2 image summary (max_outputs > 1) are sent as
//     files of the same name and step; the agent does not set sampleIndex.
//   - An earlier file of a lane that grows after a later one exists is not
//     read again (TensorBoard does not either); a file that appears after
//     later ones were read is read after them (reported, out_of_order).
//   - The run's identity uses the lane's first file: if a file with an
//     earlier name appears later (a copy in progress), the lane becomes a
//     new stream and run.
//   - A folding sub-directory is recognised by its first tag; nested runs
//     below a folded directory are not folded further.
//   - hparams.yaml: the YAML subset PyYAML's yaml.dump writes (see
//     parseHParamsYAML); anything else is reported (hparams_yaml) and not
//     sent. Only top-level keys take precedence over the plugin's values.
package tensorboard
