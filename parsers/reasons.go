package parsers

// The reasons a record is bad: one table for every layer. A parser's
// error maps to one by Reason; the agent adds its own (a record whose
// event the tracker's limits refuse, an unreadable input); the statistics,
// the dead-letter file, the log and the telemetry label
// (mlop_agent_records_rejected_total{reason}) all use these strings.
const (
	ReasonSyntax       = "syntax"         // not valid JSON / CSV
	ReasonNotObject    = "not_object"     // a JSON line that is not an object
	ReasonTooLong      = "too_long"       // beyond watch.max_line_bytes
	ReasonBadStep      = "bad_step"       // a fractional, negative or too large step
	ReasonBadTime      = "bad_time"       // a time that cannot be read
	ReasonBadValue     = "bad_value"      // a value the format does not allow
	ReasonBadRun       = "bad_run"        // no usable run name or id
	ReasonBadTags      = "bad_tags"       // tags beyond the server's limits (those that fit are kept)
	ReasonTooManyNames = "too_many_names" // names beyond sources[].max_names_per_run
	ReasonInvalidEvent = "invalid_event"  // an event the request encoder refuses
	ReasonUnreadable   = "unreadable"     // an input that could not be read at all
	ReasonStreamFailed = "stream_failed"  // a stream that stopped on an error
	ReasonOther        = "other"          // anything else (a stream format's own warnings)
)

// BadReasons lists the reasons above, "other" last.
var BadReasons = []string{ReasonSyntax, ReasonNotObject, ReasonTooLong, ReasonBadStep, ReasonBadTime,
	ReasonBadValue, ReasonBadRun, ReasonBadTags, ReasonTooManyNames, ReasonInvalidEvent, ReasonUnreadable,
	ReasonStreamFailed, ReasonOther}
