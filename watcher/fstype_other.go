//go:build !linux

package watcher

// onNetworkFS is only implemented on Linux; elsewhere notifications are
// trusted and the rescan still runs every notifiedRescan intervals.
func onNetworkFS(string) bool { return false }
