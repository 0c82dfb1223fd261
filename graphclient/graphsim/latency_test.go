package graphsim

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// licensedCatalogue returns Options with one VPP app whose license deviceOne holds.
func licensedCatalogue() Options {
	return Options{Apps: map[string]App{appVPP: {VPP: true, Licensed: []string{deviceOne}}}}
}

// TestProcessBeforeLatencyCanceled sends a revoke whose latency is a minute, cancels it once the
// server has counted it, and checks that the license is gone although the client got no response.
func TestProcessBeforeLatencyCanceled(t *testing.T) {
	tests := []struct {
		name   string
		option bool // set through Options, or else through SetProcessBeforeLatency
	}{
		{name: "option", option: true},
		{name: "setter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := licensedCatalogue()
			opts.LatencyMin = time.Minute
			opts.ProcessBeforeLatency = tt.option
			s := newTestServer(t, opts)
			if !tt.option {
				s.SetProcessBeforeLatency(true)
			}
			token := getToken(t, s)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+revokePath(FormCast, appVPP), strings.NewReader(revokeBody(deviceOne)))
				if err != nil {
					done <- err
					return
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := s.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()

			pair := newPair(appVPP, deviceOne)
			waitForStats(t, s, "the revoke counted", func(st Stats) bool { return st.RevokeCalls[pair] == 1 })
			cancel()
			if err := <-done; err == nil {
				t.Errorf("the canceled request got a response, want none")
			}
			waitForStats(t, s, "the request canceled", func(st Stats) bool { return st.Canceled == 1 })

			stats := s.Stats()
			if got := stats.LicensesRemoved[pair]; got != 1 {
				t.Errorf("LicensesRemoved[%v] = %d, want 1", pair, got)
			}
			if got := len(stats.ByStatus); got != 0 {
				t.Errorf("ByStatus = %v, want no response counted", stats.ByStatus)
			}

			// The license is gone, so the next revoke of the pair is a no-op.
			if err := s.SetLatency(0, 0); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, "revoke after the canceled one", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
			if got := s.Stats().NoOpRevokes[pair]; got != 1 {
				t.Errorf("NoOpRevokes[%v] = %d, want 1", pair, got)
			}
		})
	}
}

// TestProcessBeforeLatencyResponses checks that responses decided before the latency reach the client
// whole, and that throttling, outages and faults still come before the revoke.
func TestProcessBeforeLatencyResponses(t *testing.T) {
	opts := licensedCatalogue()
	opts.Devices = []string{deviceTwo}
	opts.ProcessBeforeLatency = true
	opts.LatencyMin = time.Millisecond
	opts.WriteLimit, opts.WriteWindow = 2, time.Hour
	s := newTestServer(t, opts)
	token := getToken(t, s)
	const clientRequestID = "c3c3c3c3-0000-4000-8000-000000000001"

	removed := graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne), clientRequestID: clientRequestID}.do(t, s)
	wantStatus(t, "revoke", removed, http.StatusNoContent, "")
	if got := removed.resp.Header.Get("client-request-id"); got != clientRequestID {
		t.Errorf("client-request-id = %q, want %q", got, clientRequestID)
	}
	if got := removed.resp.Header.Get("request-id"); !isGUID(got) {
		t.Errorf("request-id = %q, want a GUID", got)
	}

	notFound := revoke(t, s, token, FormCast, appVPP, deviceUnknown)
	wantStatus(t, "unknown device", notFound, http.StatusNotFound, "ResourceNotFound")
	if got, want := notFound.err.Error.InnerError.RequestID, notFound.resp.Header.Get("request-id"); got != want {
		t.Errorf("innerError request-id = %q, want the header value %q", got, want)
	}
	if got := notFound.resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}

	unauthorized := revoke(t, s, "", FormCast, appVPP, deviceTwo)
	wantStatus(t, "no token", unauthorized, http.StatusUnauthorized, "InvalidAuthenticationToken")
	if unauthorized.resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 response has no WWW-Authenticate header")
	}

	// The write limit of 2 is spent, so the throttle responds before the catalogue is reached.
	throttled := revoke(t, s, token, FormCast, appVPP, deviceTwo)
	wantStatus(t, "over the write limit", throttled, http.StatusTooManyRequests, "TooManyRequests")
	if throttled.resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 response has no Retry-After header")
	}

	if err := s.SetWriteLimit(0, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.SetOutage(true)
	wantStatus(t, "during an outage", revoke(t, s, token, FormCast, appVPP, deviceTwo), http.StatusServiceUnavailable, "ServiceUnavailable")
	s.SetOutage(false)

	if err := s.SetFaultRate(1); err != nil {
		t.Fatal(err)
	}
	if got := revoke(t, s, token, FormCast, appVPP, deviceTwo); got.resp.StatusCode < 500 {
		t.Errorf("status with fault rate 1 = %d, want 5xx", got.resp.StatusCode)
	}
	if err := s.SetFaultRate(0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetResetRate(1); err != nil {
		t.Fatal(err)
	}
	if _, err := (graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceTwo)}).send(s); err == nil {
		t.Errorf("request with reset rate 1 got a response, want a dropped connection")
	}

	stats := s.Stats()
	wantCalls := PairCounts{newPair(appVPP, deviceOne): 1, newPair(appVPP, deviceUnknown): 1}
	if len(stats.RevokeCalls) != len(wantCalls) || stats.RevokeCalls.Total() != wantCalls.Total() {
		t.Errorf("RevokeCalls = %v, want %v", stats.RevokeCalls, wantCalls)
	}
	for pair, want := range wantCalls {
		if got := stats.RevokeCalls[pair]; got != want {
			t.Errorf("RevokeCalls[%v] = %d, want %d", pair, got, want)
		}
	}
	serverErrors := 0
	for status, n := range stats.ByStatus {
		if status >= 500 {
			serverErrors += n
		}
	}
	for status, want := range map[int]int{204: 1, 404: 1, 401: 1, 429: 1} {
		if got := stats.ByStatus[status]; got != want {
			t.Errorf("ByStatus[%d] = %d, want %d", status, got, want)
		}
	}
	if serverErrors != 2 {
		t.Errorf("5xx responses in ByStatus = %d, want 2: the outage and the fault", serverErrors)
	}
	if stats.Throttled != 1 || stats.OutageResponses != 1 || stats.Faults != 1 || stats.Resets != 1 {
		t.Errorf("Throttled, OutageResponses, Faults, Resets = %d, %d, %d, %d, want 1 each",
			stats.Throttled, stats.OutageResponses, stats.Faults, stats.Resets)
	}
	if stats.Canceled != 0 {
		t.Errorf("Canceled = %d, want 0", stats.Canceled)
	}
}
