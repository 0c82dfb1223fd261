package reclaim

import (
	"sync"
	"time"
)

// minOutageFaults is the number of faults in a row, besides their span, that an outage takes.
const minOutageFaults = 5

// health distinguishes a Graph outage from a row that fails on its own. A response that settles a row
// (2xx, 404, another 4xx) shows that the service works, and a retryable fault (5xx, 408, timeout, lost
// connection) counts against it. A 429 counts neither way, because the service is up but busy.
// It is safe for concurrent use.
type health struct {
	outageAfter time.Duration

	mu sync.Mutex
	// lastAnswer is the time of the last response that settled a row.
	lastAnswer time.Time
	// faultsSince is the time of the first fault after lastAnswer; zero when there was none.
	faultsSince time.Time
	faults      int
}

// answered records that a response settled a row.
func (h *health) answered() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastAnswer = time.Now()
	h.faultsSince = time.Time{}
	h.faults = 0
}

// fault records a retryable fault.
func (h *health) fault() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.faults == 0 {
		h.faultsSince = time.Now()
	}
	h.faults++
}

// answeredSince reports whether a response after t settled a row.
func (h *health) answeredSince(t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastAnswer.After(t)
}

// outage reports whether every request has failed with a retryable fault for outageAfter or longer.
func (h *health) outage() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faults >= minOutageFaults && time.Since(h.faultsSince) >= h.outageAfter
}
