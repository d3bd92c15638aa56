// Package verify proves a migration complete by reading it back from the
// server: it compares what a source holds — captured by Recorder from the
// requests the agent would send for it — with what the mlop server's read
// API returns, run by run and metric point by metric point.
//
// It owns the recorder of the write protocol (an http.RoundTripper for a
// sink/mlop client), the disk spool of expected metric rows and its
// external sort, the lookup of each run on the server (the state
// directory's run map, else list and details by externalId), the
// comparison rules (rules.go lists what does not count as a difference)
// and the report.
//
// It must never write to the server: it sees the server only through
// ReadAPI, which has no method that sends anything but a GET (and
// mlop-agent verify gives it a sink/mlop client built ReadOnly). It never
// creates a run — a create would set a finished run RUNNING again. It never
// holds a project's points in memory: expected rows are spooled per run on
// disk and read back sorted in bounded chunks; server rows are read one
// page (at most 50,000 rows) at a time. It does not know the agent: the
// command runs the agent and hands over the Capture.
package verify
