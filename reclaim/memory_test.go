package reclaim

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitReserveAndRestore(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	before := debug.SetMemoryLimit(-1)

	var m memoryLimit
	m.reserve(100 << 20)
	if got, want := debug.SetMemoryLimit(-1), int64(100<<20+100<<16+memoryAllowance); got != want {
		t.Errorf("limit after reserve = %d, want %d", got, want)
	}
	m.reserve(200 << 20)
	if got, want := debug.SetMemoryLimit(-1), int64(200<<20+200<<16+memoryAllowance); got != want {
		t.Errorf("limit after a second reserve = %d, want %d", got, want)
	}
	m.restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after restore = %d, want the earlier %d", got, before)
	}
}

func TestMemoryLimitLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	before := debug.SetMemoryLimit(-1)

	var m memoryLimit
	m.reserve(100 << 20)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after reserve with GOMEMLIMIT set = %d, want it unchanged at %d", got, before)
	}
	m.restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after restore = %d, want %d", got, before)
	}
}
