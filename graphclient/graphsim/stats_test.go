package graphsim

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStatsCounters(t *testing.T) {
	s := newTestServer(t, explicitCatalogue())
	token := getToken(t, s)
	const repeated = "c2c2c2c2-0000-4000-8000-000000000001"

	calls := []graphCall{
		{path: revokePath(FormCast, appVPP), body: revokeBody(deviceOne), clientRequestID: repeated},
		{path: revokePath(FormCast, appVPP), body: revokeBody(deviceOne), clientRequestID: repeated},
		{path: revokePath(FormUncast, appVPP), body: revokeBody(deviceOne), clientRequestID: repeated},
		{path: revokePath(FormUncast, appNotVPP), body: revokeBody(deviceOne), clientRequestID: "c2c2c2c2-0000-4000-8000-000000000002"},
		{path: revokePath(FormCast, appVPP), body: revokeBody(deviceTwo)},
		{path: revokePath(FormCast, appVPP), body: revokeBody(deviceTwo), contentType: "text/plain", clientRequestID: "c2c2c2c2-0000-4000-8000-000000000003"},
		{path: "/beta/users", clientRequestID: "c2c2c2c2-0000-4000-8000-000000000004"},
		{method: http.MethodGet, path: licensesPath(appVPP), clientRequestID: "c2c2c2c2-0000-4000-8000-000000000005"},
		{method: http.MethodGet, path: appPath(appNotVPP), clientRequestID: "c2c2c2c2-0000-4000-8000-000000000006"},
	}
	for _, call := range calls {
		call.token = token
		call.do(t, s)
	}

	got := s.Stats()
	want := Stats{
		TokenRequests:             1,
		TokensIssued:              1,
		GraphRequests:             len(calls),
		ReadRequests:              2,
		ByStatus:                  map[int]int{200: 2, 204: 4, 400: 3},
		ByForm:                    map[string]int{"cast": 4, "uncast": 2},
		UnknownPaths:              1,
		LicensePages:              1,
		RevokeCalls:               PairCounts{{appVPP, deviceOne}: 3, {appNotVPP, deviceOne}: 1, {appVPP, deviceTwo}: 1},
		LicensesRemoved:           PairCounts{{appVPP, deviceOne}: 1, {appVPP, deviceTwo}: 1},
		NoOpRevokes:               PairCounts{{appVPP, deviceOne}: 2},
		RevokeCallsTotal:          5,
		LicensesRemovedTotal:      2,
		NoOpRevokesTotal:          2,
		DuplicateClientRequestIDs: 2,
		MissingClientRequestID:    1,
		WrongContentType:          1,
		MaxInFlight:               1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Stats() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestStatsReturnsCopy(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	revoke(t, s, getToken(t, s), FormCast, appVPP, deviceOne)

	first := s.Stats()
	first.ByStatus[http.StatusNoContent] = 99
	first.RevokeCalls[Pair{appVPP, deviceOne}] = 99

	second := s.Stats()
	if second.ByStatus[http.StatusNoContent] != 1 || second.RevokeCalls[Pair{appVPP, deviceOne}] != 1 {
		t.Errorf("changing a returned Stats changed the server's counters: %+v", second)
	}
}

func TestStatsEndpoint(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)
	revoke(t, s, token, FormCast, appVPP, deviceOne)
	revoke(t, s, token, FormUncast, appVPP, deviceOne)

	// No token: the endpoint is open.
	resp, err := s.Client().Get(s.URL() + StatsPath)
	if err != nil {
		t.Fatalf("GET stats: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var got Stats
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("decode stats: %v", err)
	}

	if want := s.Stats(); !reflect.DeepEqual(got, want) {
		t.Errorf("stats endpoint =\n%+v\nwant Stats() =\n%+v", got, want)
	}
	if got.GraphRequests != 2 {
		t.Errorf("GraphRequests = %d, want 2: the stats request must not count", got.GraphRequests)
	}
}

func TestPairText(t *testing.T) {
	pair := Pair{AppID: appVPP, DeviceID: deviceOne}
	text, _ := pair.MarshalText()
	if want := appVPP + "/" + deviceOne; string(text) != want {
		t.Errorf("MarshalText = %q, want %q", text, want)
	}
	var back Pair
	if err := back.UnmarshalText(text); err != nil || back != pair {
		t.Errorf("UnmarshalText(%q) = %v, %v, want %v", text, back, err, pair)
	}
	if err := back.UnmarshalText([]byte("no-slash")); err == nil {
		t.Errorf("UnmarshalText(no-slash) succeeded, want an error")
	}
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogHasNoSecrets(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const federated = "federated-assertion-content-5d1e"
	s := newTestServer(t, Options{Open: true, ClientSecret: testSecret, FederatedToken: federated,
		Logger: logger, WriteLimit: 1, WriteWindow: time.Minute, FaultRate: 0.3, Seed: 3})

	token := getToken(t, s)
	wrong := tokenForm(s)
	wrong.Set("client_secret", testSecret+"-wrong")
	postToken(t, s, s.TenantID(), wrong)
	assertion := tokenForm(s)
	assertion.Del("client_secret")
	assertion.Set("client_assertion_type", jwtBearerAssertionType)
	assertion.Set("client_assertion", federated)
	postToken(t, s, s.TenantID(), assertion)
	for range 5 {
		revoke(t, s, token, FormCast, appVPP, deviceOne)
	}
	revoke(t, s, "unknown-token-value", FormCast, appVPP, deviceOne)

	output := logs.String()
	if !strings.Contains(output, "graphsim responded") {
		t.Fatalf("log has no response records:\n%s", output)
	}
	secrets := append([]string{testSecret, federated, "unknown-token-value"}, s.IssuedTokens()...)
	for _, secret := range secrets {
		if strings.Contains(output, secret) {
			t.Errorf("log contains the secret or token %q", secret)
		}
	}
}

func TestDemoOptions(t *testing.T) {
	opts := Demo()
	if opts.ClientSecret == "" || opts.ClientSecret == Demo().ClientSecret {
		t.Errorf("Demo() secret = %q, want a new random value per call", opts.ClientSecret)
	}
	if perSecond := float64(opts.WriteLimit) / opts.WriteWindow.Seconds(); perSecond <= 0 || perSecond >= 5 {
		t.Errorf("Demo() write rate = %v per second, want above 0 and below 5", perSecond)
	}

	opts.ClientSecret = testSecret
	s := newTestServer(t, opts)
	if got := s.Stats().GraphRequests; got != 0 {
		t.Errorf("GraphRequests on a new server = %d, want 0", got)
	}
	token := getToken(t, s)
	if err := s.SetFaultRate(0); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "demo revoke", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
}

func TestStatsFixedSize(t *testing.T) {
	opts := explicitCatalogue()
	opts.FixedSizeStats = true
	s := newTestServer(t, opts)
	token := getToken(t, s)
	const repeated = "c2c2c2c2-0000-4000-8000-000000000001"

	for range 2 {
		graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne), clientRequestID: repeated}.do(t, s)
	}
	revoke(t, s, token, FormCast, appVPP, deviceNoLic)

	got := s.Stats()
	if len(got.RevokeCalls) != 0 || len(got.LicensesRemoved) != 0 || len(got.NoOpRevokes) != 0 {
		t.Errorf("per-pair maps = %v, %v, %v, want all empty", got.RevokeCalls, got.LicensesRemoved, got.NoOpRevokes)
	}
	if got.RevokeCallsTotal != 3 || got.LicensesRemovedTotal != 1 || got.NoOpRevokesTotal != 2 {
		t.Errorf("totals of calls, removed, no-ops = %d, %d, %d, want 3, 1, 2",
			got.RevokeCallsTotal, got.LicensesRemovedTotal, got.NoOpRevokesTotal)
	}
	if got.DuplicateClientRequestIDs != 0 {
		t.Errorf("DuplicateClientRequestIDs = %d, want 0: no set of ids is kept", got.DuplicateClientRequestIDs)
	}
	if got.MissingClientRequestID != 1 {
		t.Errorf("MissingClientRequestID = %d, want 1", got.MissingClientRequestID)
	}
}
