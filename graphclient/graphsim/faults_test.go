package graphsim

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaultAndResetRates(t *testing.T) {
	const requests = 400
	s := newTestServer(t, Options{Open: true, FaultRate: 0.2, ResetRate: 0.1, Seed: 42})
	token := getToken(t, s)

	faultCodes := []string{"InternalServerError", "BadGateway", "ServiceUnavailable", "GatewayTimeout"}
	var faults, resets, successes int
	for range requests {
		got, err := graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne)}.send(s)
		switch {
		case err != nil:
			resets++
		case got.resp.StatusCode == http.StatusNoContent:
			successes++
		case got.resp.StatusCode >= 500:
			faults++
			if !slices.Contains(faultCodes, got.code()) {
				t.Errorf("fault code = %q, want one of %v", got.code(), faultCodes)
			}
		default:
			t.Errorf("status = %d, want 204, 5xx or a dropped connection", got.resp.StatusCode)
		}
	}

	t.Logf("%d requests: %d answered 204, %d faults, %d dropped connections", requests, successes, faults, resets)

	// Loose bounds: each lies four or more standard deviations of 400 draws from the configured share.
	if faults < requests*10/100 || faults > requests*30/100 {
		t.Errorf("faults = %d of %d, want about 20%%", faults, requests)
	}
	if resets < requests*4/100 || resets > requests*18/100 {
		t.Errorf("dropped connections = %d of %d, want about 10%%", resets, requests)
	}
	stats := s.Stats()
	if stats.Faults != faults || stats.Resets != resets {
		t.Errorf("Stats() faults, resets = %d, %d, want the client's counts %d, %d", stats.Faults, stats.Resets, faults, resets)
	}
	if stats.ByStatus[http.StatusNoContent] != successes {
		t.Errorf("ByStatus[204] = %d, want %d", stats.ByStatus[http.StatusNoContent], successes)
	}
}

func TestSetFaultRate(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	if err := s.SetFaultRate(1); err != nil {
		t.Fatalf("SetFaultRate(1): %v", err)
	}
	if got := revoke(t, s, token, FormCast, appVPP, deviceOne); got.resp.StatusCode < 500 {
		t.Errorf("status with fault rate 1 = %d, want 5xx", got.resp.StatusCode)
	}
	if err := s.SetResetRate(0.5); err == nil {
		t.Errorf("SetResetRate(0.5) with fault rate 1 succeeded, want an error")
	}

	if err := s.SetFaultRate(0); err != nil {
		t.Fatalf("SetFaultRate(0): %v", err)
	}
	if err := s.SetResetRate(1); err != nil {
		t.Fatalf("SetResetRate(1): %v", err)
	}
	for _, client := range []*http.Client{s.Client(), newHTTP1Client(t, s)} {
		call := graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne), client: client}
		if got, err := call.send(s); err == nil {
			t.Errorf("request over HTTP/%d with reset rate 1 got a response, want a dropped connection", got.resp.ProtoMajor)
		}
	}
	if got := s.Stats().Resets; got != 2 {
		t.Errorf("Stats().Resets = %d, want 2", got)
	}
}

func TestOutageWindows(t *testing.T) {
	tests := []struct {
		name       string
		outages    []Outage
		wantStatus int
	}{
		{"inside a window", []Outage{{Start: 0, End: time.Hour}}, http.StatusServiceUnavailable},
		{"before a window", []Outage{{Start: time.Hour, End: 2 * time.Hour}}, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Options{Open: true, Outages: tt.outages})

			got := revoke(t, s, getToken(t, s), FormCast, appVPP, deviceOne)
			if got.resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", got.resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusServiceUnavailable {
				checkOutageResponse(t, s, got)
			}
		})
	}
}

func TestSetOutage(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	s.SetOutage(true)
	checkOutageResponse(t, s, revoke(t, s, token, FormCast, appVPP, deviceOne))
	// An outage response comes before the token check.
	checkOutageResponse(t, s, revoke(t, s, "", FormCast, appVPP, deviceOne))

	s.SetOutage(false)
	wantStatus(t, "after the outage", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
	if got := s.Stats().OutageResponses; got != 2 {
		t.Errorf("Stats().OutageResponses = %d, want 2", got)
	}
}

func checkOutageResponse(t *testing.T, s *Server, got graphResponse) {
	t.Helper()
	wantStatus(t, "during an outage", got, http.StatusServiceUnavailable, "ServiceUnavailable")
	if _, ok := got.resp.Header["Retry-After"]; ok {
		t.Errorf("outage response has Retry-After %q, want none", got.resp.Header.Get("Retry-After"))
	}
	if s.Stats().Faults != 0 {
		t.Errorf("outage counted as an injected fault")
	}
}

func TestLatencyLowerBound(t *testing.T) {
	const minimum = 150 * time.Millisecond
	s := newTestServer(t, Options{Open: true, LatencyMin: minimum, LatencyMax: 200 * time.Millisecond})
	token := getToken(t, s)

	calls := []graphCall{
		{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne)},
		{path: revokePath(FormCast, appVPP), body: revokeBody(deviceOne)},
		{path: "/beta/me", token: token},
	}
	for _, call := range calls {
		start := time.Now()
		call.do(t, s)
		if elapsed := time.Since(start); elapsed < minimum {
			t.Errorf("%s answered after %v, want at least %v", call.path, elapsed, minimum)
		}
	}
}

// TestInFlightAndCancel holds five requests in a long delay, checks that all five were in flight
// at once, then cancels them and checks that they count as canceled.
func TestInFlightAndCancel(t *testing.T) {
	const requests = 5
	s := newTestServer(t, Options{Open: true, LatencyMin: time.Minute})
	token := getToken(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, requests)
	for i := range requests {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+revokePath(FormCast, appVPP), strings.NewReader(revokeBody(deviceOne)))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := s.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errs[i] = err
		})
	}

	waitForStats(t, s, "all requests received", func(st Stats) bool { return st.GraphRequests == requests })
	if got := s.Stats().MaxInFlight; got != requests {
		t.Errorf("MaxInFlight = %d, want %d", got, requests)
	}

	cancel()
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Errorf("request %d got a response, want a canceled request", i+1)
		}
	}
	waitForStats(t, s, "all requests canceled", func(st Stats) bool { return st.Canceled == requests })
	if got := s.Stats().RevokeCalls.Total(); got != 0 {
		t.Errorf("canceled requests reached the catalogue %d times, want 0", got)
	}
}

// waitForStats polls the server's Stats until done returns true, for at most five seconds.
func waitForStats(t *testing.T, s *Server, what string, done func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !done(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: stats %+v", what, s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
