package main

import (
	"os"
	"syscall"
)

// maxRSSKiB is ru_maxrss of the rusage wait4(2) returned for the exited
// process (KiB on Linux): the peak resident set, measured by the kernel.
func maxRSSKiB(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, false
	}
	return int64(ru.Maxrss), true
}
