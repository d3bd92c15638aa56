package neptune

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mlop-ai/mlop-agent/parsers"
)

// neptune-client 1.x queues hold four kinds of container: run, model,
// model_version and project (docs/neptune-formats.md §2.1.1). Only runs
// become mlop runs; mlop has no model registry, so the others are listed
// as left behind, with what they hold, and never opened as streams.

// containerSkipped describes a non-run container found by Discover: its
// type and uuid, its directory, and how many attributes and series it
// holds at the end of its queues.
func containerSkipped(id n1ID, members []n1Member) parsers.Skipped {
	dir := members[0].dir
	if strings.HasPrefix(filepath.Base(dir), "exec-") {
		dir = filepath.Dir(dir)
	}
	sk := parsers.Skipped{Reason: parsers.SkippedContainer, Kind: id.ctype, ID: id.uuid, Path: dir, LeftBehind: true}
	c, err := containerContents(members)
	sk.Attributes, sk.Series = c.attrs, c.series
	sk.Detail = fmt.Sprintf("a neptune-client %s container (%d attributes, %d series, %d records): mlop has no model registry, so it is not imported",
		id.ctype, c.attrs, c.series, c.records)
	if err != nil {
		sk.Detail += fmt.Sprintf("; its queue could not be read to the end: %v", err)
	}
	return sk
}

// contents is what a container holds.
type contents struct {
	attrs, series, records int64
}

// containerContents replays a container's queues, cheaply, for its final
// set of attributes: paths with a value (atoms, files, file sets, string
// sets, artifacts) and series with points; a DeleteAttribute removes a
// path. Undecodable lines are not counted.
func containerContents(members []n1Member) (contents, error) {
	const (
		kindAttr = iota + 1
		kindSeries
	)
	kinds := map[string]int{}
	var c contents
	var d n1Decoder
	for _, m := range members {
		segs, err := listSegments(m.dir)
		if err != nil {
			return c, err
		}
		for _, seg := range segs {
			lr, err := openLineReader(seg.path, 0, maxLineBytes)
			if err != nil {
				return c, err
			}
			for {
				line, _, st, err := lr.next()
				if err != nil {
					lr.close()
					return c, err
				}
				if st == lineNone {
					break
				}
				if st != lineOK {
					continue
				}
				rec, err := d.decode(line)
				if err != nil || !rec.hasObj || !rec.op.hasPath {
					continue
				}
				c.records++
				path := string(rec.op.path)
				switch typ := string(rec.op.typ); {
				case typ == "DeleteAttribute":
					delete(kinds, path)
				case strings.HasPrefix(typ, "Log"):
					if len(rec.op.points) > 0 {
						kinds[path] = kindSeries
					}
				case strings.HasPrefix(typ, "Assign"), strings.HasPrefix(typ, "Upload"),
					typ == "AddStrings", typ == "RemoveStrings", typ == "ClearStringSet",
					typ == "TrackFilesToArtifact", typ == "CopyAttribute":
					if kinds[path] == 0 {
						kinds[path] = kindAttr
					}
				}
			}
			lr.close()
		}
	}
	for _, k := range kinds {
		switch k {
		case kindAttr:
			c.attrs++
		case kindSeries:
			c.series++
		}
	}
	return c, nil
}
