//go:build !linux

package main

import "os"

// maxRSSKiB is not available off Linux (ru_maxrss units differ); the
// harness falls back to its /proc samples, which are Linux-only as well.
func maxRSSKiB(*os.ProcessState) (int64, bool) { return 0, false }
