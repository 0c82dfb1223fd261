//go:build unix

package reclaim

import (
	"errors"
	"os"
	"syscall"
)

// processAlive reports whether a process with id pid exists in this pid namespace. A process that
// has exited but is not yet reaped by its parent still counts, until its lease goes stale.
func processAlive(pid int) bool {
	if pid <= 0 {
		// kill would address a process group here. A lease record never has such a pid.
		return true
	}
	// Signal 0 only checks: EPERM means the process exists but belongs to another user.
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// syncDir flushes a folder's entries to disk, so that a rename in it survives a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
