package graphclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"reclaim/graphclient"
	"reclaim/graphclient/graphsim"
)

const (
	vppApp    = "6513270e-269e-4d37-b2a7-4de452e6b438"
	otherApp  = "d23f0824-128b-4f33-8c5c-7fd0a6a3a450"
	device1   = "36f675cc-81e7-4ef5-a8e2-5d940ed90475"
	device2   = "6cad4a26-8d11-4ece-9738-f7d93d9c1724"
	noDevice  = "9f3d1c2b-0a4e-4b6f-8d7c-5e6a7b8c9d0e"
	noApp     = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	simSecret = "test-secret-value-1234"
)

// startSim starts a simulator with a catalogue of one VPP app licensed to device1 and device2, and one
// app that is not a VPP app.
func startSim(t *testing.T, opts graphsim.Options) *graphsim.Server {
	t.Helper()
	opts.ClientSecret = simSecret
	if opts.Apps == nil {
		opts.Apps = map[string]graphsim.App{
			vppApp:   {VPP: true, Licensed: []string{device1, device2}},
			otherApp: {VPP: false},
		}
	}
	sim, err := graphsim.New(opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// simCredential returns a client secret credential for sim, built the way reclaim --simulate does.
func simCredential(sim *graphsim.Server, secret string) func() (azcore.TokenCredential, error) {
	return func() (azcore.TokenCredential, error) {
		return azidentity.NewClientSecretCredential(sim.TenantID(), sim.ClientID(), secret,
			&azidentity.ClientSecretCredentialOptions{
				ClientOptions: azcore.ClientOptions{
					Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
					Transport: sim.Client(),
				},
				DisableInstanceDiscovery: true,
			})
	}
}

func newClient(t *testing.T, sim *graphsim.Server, change func(*graphclient.Options)) *graphclient.Client {
	t.Helper()
	graphURL, err := graphclient.ParseGraphURL(sim.GraphURL())
	if err != nil {
		t.Fatal(err)
	}
	newCredential := simCredential(sim, simSecret)
	credential, err := newCredential()
	if err != nil {
		t.Fatal(err)
	}
	opts := graphclient.Options{
		GraphURL:      graphURL,
		Credential:    credential,
		NewCredential: newCredential,
		HTTPClient:    sim.Client(),
		Timeout:       5 * time.Second,
		UserAgent:     "reclaim-test",
	}
	if change != nil {
		change(&opts)
	}
	client, err := graphclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func asGraphError(t *testing.T, err error) *graphclient.Error {
	t.Helper()
	var graphErr *graphclient.Error
	if !errors.As(err, &graphErr) {
		t.Fatalf("error = %v (%T), want a *graphclient.Error", err, err)
	}
	return graphErr
}

func TestRevokeDeviceLicenseAccepted(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)

	answer, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, true)
	if err != nil {
		t.Fatalf("RevokeDeviceLicense: %v", err)
	}
	if answer.StatusCode != http.StatusNoContent {
		t.Errorf("StatusCode = %d, want 204", answer.StatusCode)
	}
	if answer.RequestID == "" || answer.ClientRequestID == "" {
		t.Errorf("answer = %+v, want request-id and client-request-id", answer)
	}

	stats := sim.Stats()
	pair := graphsim.Pair{AppID: vppApp, DeviceID: device1}
	if got := stats.LicensesRemoved[pair]; got != 1 {
		t.Errorf("licenses removed for %v = %d, want 1", pair, got)
	}
	if stats.WrongContentType != 0 || stats.MissingClientRequestID != 0 {
		t.Errorf("wrong content type %d, missing client-request-id %d; want 0 and 0", stats.WrongContentType, stats.MissingClientRequestID)
	}
	if got := client.Sent(); got != 1 {
		t.Errorf("Sent() = %d, want 1", got)
	}
}

func TestRevokeDeviceLicenseClientRequestIDsUnique(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	for range 20 {
		client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
	}
	if got := sim.Stats().DuplicateClientRequestIDs; got != 0 {
		t.Errorf("duplicate client-request-id values = %d, want 0", got)
	}
}

func TestRevokeDeviceLicenseAnswers(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	tests := []struct {
		name      string
		app, dev  string
		wantClass graphclient.Class
		wantCode  string
	}{
		{"unknown app", noApp, device1, graphclient.NotFound, "ResourceNotFound"},
		{"unknown device", vppApp, noDevice, graphclient.NotFound, "ResourceNotFound"},
		{"not a VPP app", otherApp, device1, graphclient.Permanent, "BadRequest"},
		{"bad device id", vppApp, "not-a-guid", graphclient.Permanent, "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.RevokeDeviceLicense(context.Background(), tt.app, tt.dev, false)
			graphErr := asGraphError(t, err)
			if graphErr.Class() != tt.wantClass || graphErr.Code != tt.wantCode {
				t.Errorf("error = %v (class %v), want class %v code %s", graphErr, graphErr.Class(), tt.wantClass, tt.wantCode)
			}
			if graphErr.RequestID == "" {
				t.Errorf("error %v has no request-id", graphErr)
			}
		})
	}
}

func TestRevokeDeviceLicenseThrottled(t *testing.T) {
	styles := []graphsim.RetryAfterStyle{graphsim.RetryAfterSeconds, graphsim.RetryAfterDecimal,
		graphsim.RetryAfterDate, graphsim.RetryAfterList, graphsim.RetryAfterNone}
	for _, style := range styles {
		t.Run(string(style), func(t *testing.T) {
			sim := startSim(t, graphsim.Options{WriteLimit: 1, WriteWindow: 3 * time.Second, RetryAfter: style})
			client := newClient(t, sim, nil)
			if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
				t.Fatalf("first request: %v", err)
			}

			_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device2, false)
			graphErr := asGraphError(t, err)
			if graphErr.Class() != graphclient.Throttled {
				t.Fatalf("second request: class %v, want throttled", graphErr.Class())
			}
			if style == graphsim.RetryAfterNone {
				if graphErr.RetryAfter != 0 {
					t.Errorf("RetryAfter = %v without a header, want 0", graphErr.RetryAfter)
				}
				return
			}
			// The window frees its slot about 3 s after the first request; whole-second styles round up.
			if graphErr.RetryAfter < time.Second || graphErr.RetryAfter > 5*time.Second {
				t.Errorf("RetryAfter = %v, want between 1s and 5s", graphErr.RetryAfter)
			}
		})
	}
}

func TestRevokeDeviceLicenseSwitchesToUncastForm(t *testing.T) {
	sim := startSim(t, graphsim.Options{Forms: graphsim.FormUncast})
	client := newClient(t, sim, nil)

	for _, device := range []string{device1, device2} {
		if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device, false); err != nil {
			t.Fatalf("RevokeDeviceLicense(%s): %v", device, err)
		}
	}
	if got := client.Form(); got != graphclient.FormUncast {
		t.Errorf("Form() = %v, want uncast", got)
	}
	stats := sim.Stats()
	if stats.ByForm["cast"] != 1 || stats.ByForm["uncast"] != 2 {
		t.Errorf("requests by form = %v, want cast 1 (the probe) and uncast 2", stats.ByForm)
	}
	if got := client.Sent(); got != 3 {
		t.Errorf("Sent() = %d, want 3", got)
	}
}

func TestRevokeDeviceLicenseStartsWithRecordedForm(t *testing.T) {
	sim := startSim(t, graphsim.Options{Forms: graphsim.FormUncast})
	client := newClient(t, sim, func(o *graphclient.Options) { o.Form = graphclient.FormUncast })
	if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().ByForm["cast"]; got != 0 {
		t.Errorf("cast requests = %d, want 0", got)
	}
}

func TestRevokeDeviceLicenseKeepsConfirmedForm(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
		t.Fatal(err)
	}

	// Once the cast form worked, a segment error is the row's problem, not the form's.
	if err := sim.SetForms(graphsim.FormUncast); err != nil {
		t.Fatal(err)
	}
	_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device2, false)
	graphErr := asGraphError(t, err)
	if graphErr.Class() != graphclient.Permanent {
		t.Errorf("class = %v, want permanent", graphErr.Class())
	}
	if got := client.Form(); got != graphclient.FormCast {
		t.Errorf("Form() = %v, want cast", got)
	}
}

func TestRevokeDeviceLicenseRefreshesRejectedToken(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
		t.Fatal(err)
	}

	// The server expires its tokens while the credential's cache keeps one for another hour.
	sim.ExpireTokens()
	if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device2, false); err != nil {
		t.Fatalf("after the server expired tokens: %v", err)
	}
	stats := sim.Stats()
	if stats.Unauthorized != 1 || stats.TokensIssued != 2 {
		t.Errorf("unauthorized %d, tokens issued %d; want 1 and 2", stats.Unauthorized, stats.TokensIssued)
	}
}

func TestRevokeDeviceLicenseRenewsShortLivedTokens(t *testing.T) {
	sim := startSim(t, graphsim.Options{TokenLifetime: 2 * time.Second, TokenExpiresIn: 2 * time.Second})
	client := newClient(t, sim, nil)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
			t.Fatalf("RevokeDeviceLicense: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stats := sim.Stats()
	if stats.Unauthorized != 0 {
		t.Errorf("unauthorized answers = %d, want 0: tokens should be renewed before they expire", stats.Unauthorized)
	}
	if stats.TokensIssued < 3 {
		t.Errorf("tokens issued = %d over 5 s of 2 s tokens, want at least 3", stats.TokensIssued)
	}
}

// fixedCredential hands out one token, which the simulator never issued.
type fixedCredential struct{ token string }

func (c fixedCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestRevokeDeviceLicenseSecondUnauthorizedIsAuthError(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, func(o *graphclient.Options) {
		o.Credential = fixedCredential{token: "token-from-another-tenant"}
		o.NewCredential = nil
	})
	_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
	var authErr *graphclient.AuthError
	if !errors.As(err, &authErr) || authErr.Rejected == nil {
		t.Fatalf("error = %v, want an AuthError with Graph's rejection", err)
	}
	if got := sim.Stats().Unauthorized; got != 2 {
		t.Errorf("unauthorized answers = %d, want 2 (first try and one retry)", got)
	}
}

func TestRevokeDeviceLicenseForbidden(t *testing.T) {
	sim := startSim(t, graphsim.Options{Forbidden: true})
	client := newClient(t, sim, nil)
	_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
	if !errors.Is(err, graphclient.ErrForbidden) {
		t.Fatalf("error = %v, want ErrForbidden", err)
	}
	if !strings.Contains(err.Error(), "DeviceManagementApps.ReadWrite.All") {
		t.Errorf("error %q does not name the permission", err)
	}
}

func TestCheckTokenWrongSecret(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, func(o *graphclient.Options) {
		o.Credential, _ = simCredential(sim, "wrong-secret-value")()
	})
	err := client.CheckToken(context.Background())
	var authErr *graphclient.AuthError
	if !errors.As(err, &authErr) {
		t.Fatalf("CheckToken() = %v, want an AuthError", err)
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("error %q does not carry Entra's code", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("error %q contains the secret", err)
	}
	if got := sim.Stats().GraphRequests; got != 0 {
		t.Errorf("Graph requests = %d, want 0", got)
	}
}

func TestRevokeDeviceLicenseTransportErrors(t *testing.T) {
	t.Run("connection reset", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{ResetRate: 1})
		client := newClient(t, sim, nil)
		_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
		var transportErr *graphclient.TransportError
		if !errors.As(err, &transportErr) || !transportErr.Retryable() || transportErr.Timeout {
			t.Errorf("error = %v, want a retryable TransportError that is not a timeout", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{LatencyMin: 2 * time.Second})
		client := newClient(t, sim, func(o *graphclient.Options) { o.Timeout = 200 * time.Millisecond })
		_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
		var transportErr *graphclient.TransportError
		if !errors.As(err, &transportErr) || !transportErr.Timeout || !transportErr.Retryable() {
			t.Errorf("error = %v, want a retryable TransportError with Timeout", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{})
		client := newClient(t, sim, func(o *graphclient.Options) { o.HTTPClient = &http.Client{} })
		_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
		var transportErr *graphclient.TransportError
		if !errors.As(err, &transportErr) || transportErr.Retryable() {
			t.Errorf("error = %v, want a TransportError that is not retryable", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{LatencyMin: 2 * time.Second})
		client := newClient(t, sim, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := client.CheckToken(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := client.RevokeDeviceLicense(ctx, vppApp, device1, false)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want the caller's context error", err)
		}
	})
}

func TestErrorsCarryNoSecrets(t *testing.T) {
	sim := startSim(t, graphsim.Options{WriteLimit: 1, FaultRate: 0.3, Seed: 3})
	client := newClient(t, sim, nil)
	var messages []string
	for i := range 30 {
		device := []string{device1, device2, noDevice}[i%3]
		if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device, false); err != nil {
			messages = append(messages, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	sim.ExpireTokens()
	client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
	bad := newClient(t, sim, func(o *graphclient.Options) {
		o.Credential = fixedCredential{token: "never-issued-token"}
		o.NewCredential = nil
	})
	if _, err := bad.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
		messages = append(messages, err.Error(), fmt.Sprintf("%+v", err))
	}

	if len(messages) == 0 {
		t.Fatal("no errors were produced, so nothing was checked")
	}
	secrets := append(sim.IssuedTokens(), simSecret, "never-issued-token", "Bearer ")
	for _, message := range messages {
		for _, secret := range secrets {
			if strings.Contains(message, secret) {
				t.Errorf("error message %q contains a secret or token", message)
			}
		}
	}
}
