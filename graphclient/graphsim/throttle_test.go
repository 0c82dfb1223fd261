package graphsim

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestThrottleAdmitsWriteLimit(t *testing.T) {
	s := newTestServer(t, Options{Open: true, WriteLimit: 3, WriteWindow: time.Minute})
	token := getToken(t, s)

	for i := range 3 {
		wantStatus(t, "write "+strconv.Itoa(i+1), revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
	}
	for i := range 2 {
		got := revoke(t, s, token, FormCast, appVPP, deviceOne)
		wantStatus(t, "write over the limit "+strconv.Itoa(i+1), got, http.StatusTooManyRequests, "TooManyRequests")
		if got.resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 response has no Retry-After")
		}
	}

	stats := s.Stats()
	if stats.Throttled != 2 || stats.ByStatus[http.StatusTooManyRequests] != 2 {
		t.Errorf("Throttled, ByStatus[429] = %d, %d, want 2, 2", stats.Throttled, stats.ByStatus[http.StatusTooManyRequests])
	}
	// Throttled requests never reach the catalogue.
	if got := stats.RevokeCalls.Total(); got != 3 {
		t.Errorf("revoke calls that reached the catalogue = %d, want 3", got)
	}
}

func TestSetWriteLimit(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	for range 5 {
		wantStatus(t, "without a limit", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
	}
	if err := s.SetWriteLimit(5, time.Minute); err != nil {
		t.Fatalf("SetWriteLimit: %v", err)
	}
	// The five writes before the call stay in the window.
	wantStatus(t, "limit reached", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusTooManyRequests, "TooManyRequests")

	if err := s.SetWriteLimit(0, time.Minute); err != nil {
		t.Fatalf("SetWriteLimit: %v", err)
	}
	wantStatus(t, "limit off", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
	if err := s.SetWriteLimit(-1, time.Minute); err == nil {
		t.Errorf("SetWriteLimit(-1) succeeded, want an error")
	}
}

// TestRetryAfterStyles fills a window of two writes per second, reads the wait from the 429
// response in each style, waits that long and expects the next write to be admitted. The second
// write comes late in the window, so the next write is admitted only if the 429 response did not
// take a slot.
func TestRetryAfterStyles(t *testing.T) {
	const window = time.Second
	decimalPattern := regexp.MustCompile(`^\d+\.\d{3}$`)

	styles := []RetryAfterStyle{RetryAfterSeconds, RetryAfterDecimal, RetryAfterDate, RetryAfterList, RetryAfterNone}
	for _, style := range styles {
		t.Run(string(style), func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, Options{Open: true, WriteLimit: 2, WriteWindow: window, RetryAfter: style})
			token := getToken(t, s)

			// The true wait lies between window-(sent-start) and window.
			start := time.Now()
			revoke(t, s, token, FormCast, appVPP, deviceOne)
			time.Sleep(400 * time.Millisecond)
			revoke(t, s, token, FormCast, appVPP, deviceTwo)
			throttled := revoke(t, s, token, FormCast, appVPP, deviceNoLic)
			sent := time.Now()
			wantStatus(t, "third write", throttled, http.StatusTooManyRequests, "TooManyRequests")
			minWait := window - sent.Sub(start)

			header := throttled.resp.Header.Get("Retry-After")
			var wait time.Duration
			switch style {
			case RetryAfterSeconds:
				seconds, err := strconv.Atoi(header)
				if err != nil || seconds != 1 {
					t.Fatalf("Retry-After = %q, want 1", header)
				}
				wait = time.Duration(seconds) * time.Second
			case RetryAfterDecimal:
				if !decimalPattern.MatchString(header) {
					t.Fatalf("Retry-After = %q, want seconds with three decimals", header)
				}
				seconds, _ := strconv.ParseFloat(header, 64)
				wait = time.Duration(seconds * float64(time.Second))
				if wait <= 0 || wait > window {
					t.Errorf("Retry-After = %q, want above 0 and at most %v", header, window)
				}
				if wait < minWait-time.Millisecond {
					t.Errorf("Retry-After = %q, want at least %v", header, minWait)
				}
			case RetryAfterDate:
				at, err := http.ParseTime(header)
				if err != nil {
					t.Fatalf("Retry-After = %q, want an HTTP-date: %v", header, err)
				}
				if at.Before(start.Add(window)) || at.After(sent.Add(window+time.Second)) {
					t.Errorf("Retry-After = %v, want between %v and %v", at, start.Add(window), sent.Add(window+time.Second))
				}
				wait = time.Until(at)
			case RetryAfterList:
				first, second, ok := strings.Cut(header, ", ")
				if !ok || first != "1" || second != "1" {
					t.Fatalf("Retry-After = %q, want \"1, 1\"", header)
				}
				wait = time.Second
			case RetryAfterNone:
				if _, ok := throttled.resp.Header["Retry-After"]; ok {
					t.Fatalf("Retry-After = %q, want no header", header)
				}
				wait = window
			}

			time.Sleep(wait)
			wantStatus(t, "write after the wait", revoke(t, s, token, FormCast, appVPP, deviceNoLic), http.StatusNoContent, "")
		})
	}
}

func TestRetryAfterRotate(t *testing.T) {
	s := newTestServer(t, Options{Open: true, WriteLimit: 1, WriteWindow: time.Minute, RetryAfter: RetryAfterRotate})
	token := getToken(t, s)
	revoke(t, s, token, FormCast, appVPP, deviceOne)

	checks := []struct {
		style RetryAfterStyle
		valid func(string) bool
	}{
		{RetryAfterSeconds, regexp.MustCompile(`^\d+$`).MatchString},
		{RetryAfterDecimal, regexp.MustCompile(`^\d+\.\d{3}$`).MatchString},
		{RetryAfterDate, func(v string) bool { _, err := http.ParseTime(v); return err == nil }},
		{RetryAfterList, regexp.MustCompile(`^\d+, \d+$`).MatchString},
		{RetryAfterNone, func(v string) bool { return v == "" }},
		{RetryAfterSeconds, regexp.MustCompile(`^\d+$`).MatchString},
	}
	for i, check := range checks {
		got := revoke(t, s, token, FormCast, appVPP, deviceOne)
		wantStatus(t, "throttled write", got, http.StatusTooManyRequests, "TooManyRequests")
		if header := got.resp.Header.Get("Retry-After"); !check.valid(header) {
			t.Errorf("response %d: Retry-After = %q, want the %s style", i+1, header, check.style)
		}
	}
}

func TestSetRetryAfterHeader(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 400_000_000, time.UTC)
	tests := []struct {
		style RetryAfterStyle
		wait  time.Duration
		want  string
	}{
		{RetryAfterSeconds, 2100 * time.Millisecond, "3"},
		{RetryAfterSeconds, 10 * time.Millisecond, "1"},
		{RetryAfterSeconds, 2 * time.Second, "2"},
		{RetryAfterDecimal, 249 * time.Millisecond, "0.249"},
		{RetryAfterDecimal, 2127100 * time.Microsecond, "2.128"},
		{RetryAfterDecimal, time.Microsecond, "0.001"},
		{RetryAfterDate, 1500 * time.Millisecond, "Sat, 01 Mar 2025 12:00:02 GMT"},
		{RetryAfterDate, 600 * time.Millisecond, "Sat, 01 Mar 2025 12:00:01 GMT"},
		{RetryAfterList, 1500 * time.Millisecond, "2, 2"},
		{RetryAfterNone, time.Second, ""},
	}
	for _, tt := range tests {
		h := http.Header{}
		setRetryAfter(h, tt.style, tt.wait, now)
		if got := h.Get("Retry-After"); got != tt.want {
			t.Errorf("setRetryAfter(%s, %v) = %q, want %q", tt.style, tt.wait, got, tt.want)
		}
	}
}

func TestSlidingWindowPerClient(t *testing.T) {
	sw := slidingWindow{admitted: map[string][]time.Time{}}
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const window = 10 * time.Second

	steps := []struct {
		client   string
		at       time.Duration
		wantWait time.Duration
	}{
		{"a", 0, 0},
		{"a", time.Second, 0},
		{"a", 2 * time.Second, 8 * time.Second},
		{"b", 2 * time.Second, 0},
		{"a", 9 * time.Second, time.Second},
		{"a", 10 * time.Second, 0},
		{"a", 10 * time.Second, time.Second},
		{"a", 11 * time.Second, 0},
	}
	for i, step := range steps {
		if got := sw.admit(step.client, start.Add(step.at), 2, window); got != step.wantWait {
			t.Errorf("step %d: admit(%s at %v) = %v, want %v", i+1, step.client, step.at, got, step.wantWait)
		}
	}
}
