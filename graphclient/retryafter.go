package graphclient

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// MaxRetryAfter caps any wait the service requests. Graph's throttling windows are 20 s long, so a
	// larger value comes from a clock error or a typo, and a batch job should not sleep on it.
	MaxRetryAfter = 2 * time.Minute
	// minRetryAfter is the shortest wait honoured, so that "0" or a date in the past still slows down.
	minRetryAfter = 100 * time.Millisecond
)

// ParseRetryAfter reads a Retry-After value in every form Graph has been seen to send. These are whole
// seconds ("3"), decimal seconds ("0.249", rounded up to the millisecond), an HTTP-date measured from now,
// and a comma list of seconds ("2, 3", whose largest entry wins). The result is at least minRetryAfter and
// at most MaxRetryAfter. ok is false when the value is empty or unreadable, and then the caller should
// fall back to its own backoff.
func ParseRetryAfter(value string, now time.Time) (wait time.Duration, ok bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}

	// An HTTP-date has a comma of its own, so try it before splitting a list.
	if date, err := http.ParseTime(value); err == nil {
		return clampRetryAfter(date.Sub(now)), true
	}

	for part := range strings.SplitSeq(value, ",") {
		seconds, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds < 0 {
			continue
		}
		// Round up, so that "0.249" never waits less than 249 ms.
		d := time.Duration(math.Ceil(min(seconds, MaxRetryAfter.Seconds())*1000)) * time.Millisecond
		if !ok || d > wait {
			wait = d
		}
		ok = true
	}
	if !ok {
		return 0, false
	}
	return clampRetryAfter(wait), true
}

func clampRetryAfter(d time.Duration) time.Duration {
	return min(max(d, minRetryAfter), MaxRetryAfter)
}
