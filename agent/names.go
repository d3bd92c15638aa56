package agent

import "hash/maphash"

// nameSeed keys the hashes of nameSet; per process, since the set lives
// only in memory.
var nameSeed = maphash.MakeSeed()

// reportNames is how many names of a run keep their own point count in the
// report; the points of the others are summed.
const reportNames = 1000

// nameSet is what a run remembers of its log names: which it has seen (so
// each is registered with the server once) and how many points or rows
// each got (the report). It holds a 64-bit hash per name rather than the
// name — ~20 bytes a name instead of ~110 — so a backfill with a million
// distinct names stays small; the names themselves are kept only for the
// first reportNames (the report's per-metric counts). A hash collision
// (about 1 in 10^11 for a run with 10,000 names) would leave one name
// unregistered; its points still arrive. Guarded by the run's mu.
type nameSet struct {
	seen   map[uint64]struct{}
	counts map[string]int64 // the first reportNames names
	other  int64            // points of the names beyond them
	nOther int              // how many names those are
	limit  int              // distinct names accepted; 0: no limit
	keep   int              // names whose counts are kept (reportNames, or 0)
}

// newNameSet makes a run's set; with counts, the first reportNames names
// keep their own counts for the report.
func newNameSet(limit int, counts bool) nameSet {
	n := nameSet{seen: map[uint64]struct{}{}, limit: limit}
	if counts {
		n.keep = reportNames
	}
	return n
}

// note counts one point or row of name. It reports whether the name is new
// (it must be registered) and whether it is accepted: a name beyond the
// run's limit is refused, so one runaway file cannot give a run millions
// of metrics.
func (n *nameSet) note(name string) (isNew, ok bool) {
	h := maphash.String(nameSeed, name)
	_, seen := n.seen[h]
	if !seen {
		if n.limit > 0 && len(n.seen) >= n.limit {
			return false, false
		}
		n.seen[h] = struct{}{}
	}
	if c, kept := n.counts[name]; kept {
		n.counts[name] = c + 1
		return !seen, true
	}
	if !seen && len(n.counts) < n.keep {
		if n.counts == nil {
			n.counts = map[string]int64{}
		}
		n.counts[name] = 1
		return true, true
	}
	if !seen {
		n.nOther++
	}
	n.other++
	return !seen, true
}

// forget drops what the set remembers, when no more data is expected for
// the run (its file was read to the end). Registering a name again later is
// harmless (logName/add is idempotent); without the counts the set has
// nothing to keep for the report.
func (n *nameSet) forget() {
	if n.keep > 0 {
		return
	}
	n.seen = map[uint64]struct{}{}
}

// has reports whether name was accepted before.
func (n *nameSet) has(name string) bool {
	_, ok := n.seen[maphash.String(nameSeed, name)]
	return ok
}

// len is the number of distinct names.
func (n *nameSet) len() int { return len(n.seen) }
