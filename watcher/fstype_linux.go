package watcher

import "syscall"

// networkFS holds the statfs(2) magic numbers of filesystems where inotify
// does not see changes made by other machines.
var networkFS = map[int64]bool{
	0x6969:     true, // NFS
	0xff534d42: true, // CIFS
	0xfe534d42: true, // SMB2
	0x517b:     true, // SMB
	0x65735546: true, // FUSE
	0x47504653: true, // GPFS
	0x0bd00bd0: true, // Lustre
	0x00c36400: true, // CephFS
	0x5346414f: true, // AFS
}

// onNetworkFS reports whether dir lives on a network or FUSE filesystem.
func onNetworkFS(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return networkFS[int64(st.Type)]
}
