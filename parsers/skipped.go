package parsers

// Skipped is something a stream format found at a discovered path and does
// not turn into a stream: a Neptune model registry container (mlop has no
// model registry), a directory that cannot be read, a run still being
// exported. The agent lists every one in its summary and report, so that
// nothing found is left behind without a word.
type Skipped struct {
	Reason string // a short label from SkippedReasons
	Kind   string // what it is: "model", "model_version", "project", "run", "directory", ...
	ID     string // its identity in the source (a container uuid, a run id), or ""
	Path   string // the file or directory
	Detail string // a sentence for a human

	// Attributes and Series count what it holds (attribute paths with a
	// value, series with points), when the format can tell cheaply; for a
	// container, its final state.
	Attributes, Series int64

	// LeftBehind says that it holds data that was not imported. An import
	// ends with exit 3 for such items unless the user said to expect them
	// (--skip-containers accepts Reason SkippedContainer).
	LeftBehind bool
}

// Reasons of Skipped, a closed set shared by the formats.
const (
	// SkippedContainer: data of a kind mlop has no place for
	// (neptune-client model, model_version and project containers).
	SkippedContainer = "container"
	// SkippedUnreadable: a directory or file below the discovered path
	// that could not be read (permissions, I/O).
	SkippedUnreadable = "unreadable"
	// SkippedIncomplete: data still being written (a neptune-exporter run
	// without its part_0 yet); a later import picks it up.
	SkippedIncomplete = "incomplete"
)

// SkippedReasons lists every Skipped reason.
var SkippedReasons = []string{SkippedContainer, SkippedUnreadable, SkippedIncomplete}

// SkipReporter is implemented by stream formats whose discovery can find
// data it does not import. DiscoverSkipped is Discover plus that list; the
// agent calls it instead of Discover when a format has it, on every
// discovery pass (so the same item may be returned again).
type SkipReporter interface {
	DiscoverSkipped(path string) ([]StreamInfo, []Skipped, error)
}
