//go:build windows

package reclaim

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes an exclusive lock on file without waiting and reports whether it got it. The locked
// byte lies far past the holder record, because Windows locks keep other processes from reading the
// bytes they cover.
func tryLock(file *os.File) (bool, error) {
	overlapped := &windows.Overlapped{OffsetHigh: 1}
	err := windows.LockFileEx(windows.Handle(file.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, overlapped)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return false, nil
	}
	return err == nil, err
}

// syncDir does nothing on Windows, where os.File.Sync cannot flush a folder.
func syncDir(string) error { return nil }
