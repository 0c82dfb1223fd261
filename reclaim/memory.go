package reclaim

import (
	"os"
	"runtime/debug"
)

// memoryAllowance is the memory that a run may use beyond the wave index before the soft limit that
// memoryLimit sets makes the garbage collector run more often. It covers the input reader's buffers,
// the ledger's window of finished rows, the workers' HTTP connections, pages of license holders being
// read, and the Go runtime's own memory, which the limit counts too.
//
// Measured with go1.26.8 on linux/amd64 (2 vCPUs, AMD EPYC) in runs of 96 workers against graphsim:
// the live heap beyond the index stayed near 1 MiB, and the runtime kept about 12 MiB beyond its heap
// goal with a 24 MiB index and about 14 MiB with a 96 MiB index. With 16 MiB in place of the allowance
// and of the sixteenth that reserve adds, the run with the 96 MiB index collected without pause and
// took 3.5 times the CPU time.
const memoryAllowance = 24 << 20

// memoryLimit sets the soft memory limit of the Go runtime for the size of a wave index, and puts the
// earlier limit back at the end of a run. Its zero value is ready to use.
//
// The index is one large allocation that lives as long as the run. With the default GOGC of 100, the
// garbage collector lets the heap grow to about twice the live heap before it collects, so the garbage
// of reading rows and writing outcomes could take as much memory again as the index. The limit makes
// it collect before that. Collecting more often costs little, because the index holds no pointers and
// the collector does not scan it. The limit is soft: a run that needs more memory gets it, at the cost
// of more collections.
type memoryLimit struct {
	earlier int64
	changed bool
}

// reserve sets the limit for an index of indexBytes, unless the GOMEMLIMIT environment variable is set:
// a limit the user chose wins. The limit is the index, a sixteenth of it for the runtime's overhead,
// which grows with the heap, and memoryAllowance.
func (m *memoryLimit) reserve(indexBytes int64) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	earlier := debug.SetMemoryLimit(memoryLimitFor(indexBytes))
	if !m.changed {
		m.earlier, m.changed = earlier, true
	}
}

// memoryLimitFor returns the soft memory limit that reserve sets for an index of indexBytes.
func memoryLimitFor(indexBytes int64) int64 {
	return indexBytes + indexBytes/16 + memoryAllowance
}

// restore puts back the limit that was in force before the first reserve.
func (m *memoryLimit) restore() {
	if m.changed {
		debug.SetMemoryLimit(m.earlier)
		m.changed = false
	}
}
