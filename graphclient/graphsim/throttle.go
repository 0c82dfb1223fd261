package graphsim

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// slidingWindow is a sliding-window limiter per client id, like Intune's request limits. The
// server keeps one for writes and one for reads. It is not safe for concurrent use: the Server's
// mutex guards it.
type slidingWindow struct {
	// admitted contains, per client id, the times of the requests admitted within the last
	// window, oldest first.
	admitted map[string][]time.Time
}

// admit records a request of clientID at now and returns 0, or returns the time until the window
// frees a slot and records nothing. A limit of 0 admits every request.
func (sw *slidingWindow) admit(clientID string, now time.Time, limit int, window time.Duration) time.Duration {
	times := sw.admitted[clientID]
	expired := 0
	for expired < len(times) && !times[expired].After(now.Add(-window)) {
		expired++
	}
	times = times[expired:]

	// The window can hold more than limit entries after the limit was lowered at run time. The
	// next slot frees when all but limit-1 of them have left the window.
	if limit > 0 && len(times) >= limit {
		sw.admitted[clientID] = times
		return times[len(times)-limit].Add(window).Sub(now)
	}
	sw.admitted[clientID] = append(times, now)
	return 0
}

// setRetryAfter sets the Retry-After header for a wait in the given style, which must not be
// RetryAfterRotate. now is the time of the response, used by the date style.
func setRetryAfter(h http.Header, style RetryAfterStyle, wait time.Duration, now time.Time) {
	seconds := int64((wait + time.Second - 1) / time.Second)
	seconds = max(seconds, 1)

	switch style {
	case RetryAfterSeconds:
		h.Set("Retry-After", strconv.FormatInt(seconds, 10))
	case RetryAfterDecimal:
		millis := int64((wait + time.Millisecond - 1) / time.Millisecond)
		millis = max(millis, 1)
		h.Set("Retry-After", fmt.Sprintf("%d.%03d", millis/1000, millis%1000))
	case RetryAfterDate:
		// An HTTP-date has whole seconds, so round up to never promise a slot too early.
		at := now.Add(wait)
		if truncated := at.Truncate(time.Second); truncated.Before(at) {
			at = truncated.Add(time.Second)
		}
		h.Set("Retry-After", at.UTC().Format(http.TimeFormat))
	case RetryAfterList:
		h.Set("Retry-After", fmt.Sprintf("%d, %d", seconds, seconds))
	case RetryAfterNone:
	}
}
