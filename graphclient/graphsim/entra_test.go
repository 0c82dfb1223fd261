package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestDiscoveryDocument(t *testing.T) {
	s := newTestServer(t, Options{})

	resp, err := s.Client().Get(s.URL() + "/" + s.TenantID() + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("GET discovery: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decode: %v", err)
	}

	base := s.URL() + "/" + s.TenantID()
	want := map[string]string{
		"issuer":                 base + "/v2.0",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"jwks_uri":               base + "/discovery/v2.0/keys",
	}
	for field, value := range want {
		if doc[field] != value {
			t.Errorf("%s = %v, want %q", field, doc[field], value)
		}
	}
	if _, ok := doc["response_types_supported"].([]any); !ok {
		t.Errorf("response_types_supported = %v, want a list", doc["response_types_supported"])
	}
}

func TestDiscoveryUnknownTenant(t *testing.T) {
	s := newTestServer(t, Options{})

	resp, err := s.Client().Get(s.URL() + "/other-tenant/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("GET discovery: %v", err)
	}
	defer resp.Body.Close()
	var body entraError
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
	if body.Error != "invalid_request" || len(body.ErrorCodes) != 1 || body.ErrorCodes[0] != 90002 {
		t.Errorf("error = %q %v, want invalid_request [90002]", body.Error, body.ErrorCodes)
	}
}

func TestTokenEndpoint(t *testing.T) {
	const federated = "eyJhbGciOiJSUzI1NiJ9.federated-token-content.signature"
	s := newTestServer(t, Options{ClientSecret: testSecret, FederatedToken: federated})

	with := func(changes map[string]string) url.Values {
		form := tokenForm(s)
		for key, value := range changes {
			if value == "" {
				form.Del(key)
			} else {
				form.Set(key, value)
			}
		}
		return form
	}
	assertion := map[string]string{
		"client_secret":         "",
		"client_assertion_type": jwtBearerAssertionType,
		"client_assertion":      federated,
	}
	wrongAssertion := map[string]string{
		"client_secret":         "",
		"client_assertion_type": jwtBearerAssertionType,
		"client_assertion":      "another-token",
	}

	tests := []struct {
		name       string
		tenant     string
		form       url.Values
		wantStatus int
		wantError  string
		wantCode   int
	}{
		{"secret", s.TenantID(), tokenForm(s), 200, "", 0},
		{"secret with upper-case tenant", strings.ToUpper(s.TenantID()), tokenForm(s), 200, "", 0},
		{"only the default scope", s.TenantID(), with(map[string]string{"scope": s.URL() + "/.default"}), 200, "", 0},
		{"assertion", s.TenantID(), with(assertion), 200, "", 0},
		{"wrong assertion", s.TenantID(), with(wrongAssertion), 401, "invalid_client", 70021},
		{"wrong secret", s.TenantID(), with(map[string]string{"client_secret": "wrong"}), 401, "invalid_client", 7000215},
		{"missing secret", s.TenantID(), with(map[string]string{"client_secret": ""}), 401, "invalid_client", 7000218},
		{"unknown client", s.TenantID(), with(map[string]string{"client_id": "c0c0c0c0-0000-4000-8000-000000000001"}), 401, "invalid_client", 700016},
		{"unknown tenant", "c0c0c0c0-0000-4000-8000-000000000002", tokenForm(s), 400, "invalid_request", 90002},
		{"graph scope", s.TenantID(), with(map[string]string{"scope": "https://graph.microsoft.com/.default"}), 400, "invalid_scope", 70011},
		{"two resources", s.TenantID(), with(map[string]string{"scope": s.URL() + "/.default https://graph.microsoft.com/.default"}), 400, "invalid_scope", 70011},
		{"no scope", s.TenantID(), with(map[string]string{"scope": ""}), 400, "invalid_scope", 70011},
		{"password grant", s.TenantID(), with(map[string]string{"grant_type": "password"}), 400, "unsupported_grant_type", 70003},
		{"no grant type", s.TenantID(), with(map[string]string{"grant_type": ""}), 400, "invalid_request", 900144},
		{"no client id", s.TenantID(), with(map[string]string{"client_id": ""}), 400, "invalid_request", 900144},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postToken(t, s, tt.tenant, tt.form)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %v", resp.StatusCode, tt.wantStatus, body)
			}

			if tt.wantStatus == http.StatusOK {
				if body["token_type"] != "Bearer" {
					t.Errorf("token_type = %v, want Bearer", body["token_type"])
				}
				if token, _ := body["access_token"].(string); len(token) < 32 {
					t.Errorf("access_token = %q, want an opaque string of 32 or more characters", token)
				}
				if body["expires_in"] != float64(3600) || body["ext_expires_in"] != float64(3600) {
					t.Errorf("expires_in, ext_expires_in = %v, %v, want 3600, 3600", body["expires_in"], body["ext_expires_in"])
				}
				return
			}

			if body["error"] != tt.wantError {
				t.Errorf("error = %v, want %q", body["error"], tt.wantError)
			}
			if codes, _ := body["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(tt.wantCode) {
				t.Errorf("error_codes = %v, want [%d]", body["error_codes"], tt.wantCode)
			}
			prefix := fmt.Sprintf("AADSTS%d: ", tt.wantCode)
			if description, _ := body["error_description"].(string); !strings.HasPrefix(description, prefix) {
				t.Errorf("error_description = %q, want prefix %q", description, prefix)
			}
			for _, field := range []string{"timestamp", "trace_id", "correlation_id"} {
				if value, _ := body[field].(string); value == "" {
					t.Errorf("%s is empty", field)
				}
			}
		})
	}
}

func TestTokenAssertionNotConfigured(t *testing.T) {
	s := newTestServer(t, Options{ClientSecret: testSecret})

	form := tokenForm(s)
	form.Del("client_secret")
	form.Set("client_assertion_type", jwtBearerAssertionType)
	form.Set("client_assertion", "any-assertion")
	resp, body := postToken(t, s, s.TenantID(), form)
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("response = %d %v, want 401 invalid_client", resp.StatusCode, body["error"])
	}
}

func TestTokenClientSecretBasic(t *testing.T) {
	s := newTestServer(t, Options{})

	form := tokenForm(s)
	form.Del("client_id")
	form.Del("client_secret")
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.ClientID(), testSecret)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
}

func TestTokenCounters(t *testing.T) {
	s := newTestServer(t, Options{})

	first := getToken(t, s)
	second := getToken(t, s)
	wrong := tokenForm(s)
	wrong.Set("client_secret", "wrong")
	postToken(t, s, s.TenantID(), wrong)

	if first == second {
		t.Errorf("two token requests got the same token")
	}
	stats := s.Stats()
	if stats.TokenRequests != 3 || stats.TokensIssued != 2 || stats.TokenErrors != 1 {
		t.Errorf("token requests, issued, errors = %d, %d, %d, want 3, 2, 1",
			stats.TokenRequests, stats.TokensIssued, stats.TokenErrors)
	}
	if got := s.IssuedTokens(); len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("IssuedTokens() = %q, want [%q %q]", got, first, second)
	}
}

func TestTokenExpiryEnforced(t *testing.T) {
	s := newTestServer(t, Options{Open: true, TokenLifetime: 300 * time.Millisecond, TokenExpiresIn: time.Hour})

	resp, body := postToken(t, s, s.TenantID(), tokenForm(s))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token status = %d, want 200", resp.StatusCode)
	}
	if body["expires_in"] != float64(3600) {
		t.Errorf("expires_in = %v, want the advertised 3600", body["expires_in"])
	}
	token := body["access_token"].(string)

	wantStatus(t, "fresh token", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")

	time.Sleep(400 * time.Millisecond)
	expired := revoke(t, s, token, FormCast, appVPP, deviceTwo)
	wantStatus(t, "expired token", expired, http.StatusUnauthorized, "InvalidAuthenticationToken")
	if !strings.Contains(expired.err.Error.Message, "expired") {
		t.Errorf("message = %q, want it to say expired", expired.err.Error.Message)
	}
}

func TestExpireTokens(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	s.ExpireTokens()

	got := revoke(t, s, token, FormCast, appVPP, deviceOne)
	wantStatus(t, "after ExpireTokens", got, http.StatusUnauthorized, "InvalidAuthenticationToken")
	wantStatus(t, "new token", revoke(t, s, getToken(t, s), FormCast, appVPP, deviceOne), http.StatusNoContent, "")
}

func TestNewRejectsAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "10.1.2.3:8443", "[::1]:0", "example.com:443", "127.0.0.1"} {
		if s, err := New(Options{Addr: addr, ClientSecret: testSecret}); err == nil {
			s.Close()
			t.Errorf("New(Addr %q) succeeded, want an error", addr)
		}
	}

	s := newTestServer(t, Options{Addr: "localhost:0"})
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Errorf("URL() = %q, want https://127.0.0.1:PORT", s.URL())
	}
}

func TestNewRejectsOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no credential", Options{}},
		{"negative token lifetime", Options{ClientSecret: "x", TokenLifetime: -time.Second}},
		{"unknown form", Options{ClientSecret: "x", Forms: 8}},
		{"none with a form", Options{ClientSecret: "x", Forms: FormNone | FormCast}},
		{"negative write limit", Options{ClientSecret: "x", WriteLimit: -1}},
		{"unknown Retry-After style", Options{ClientSecret: "x", RetryAfter: "minutes"}},
		{"fault rate above 1", Options{ClientSecret: "x", FaultRate: 1.5}},
		{"rates sum above 1", Options{ClientSecret: "x", FaultRate: 0.6, ResetRate: 0.6}},
		{"latency max below min", Options{ClientSecret: "x", LatencyMin: time.Second, LatencyMax: time.Millisecond}},
		{"empty outage", Options{ClientSecret: "x", Outages: []Outage{{Start: time.Second, End: time.Second}}}},
		{"negative read limit", Options{ClientSecret: "x", ReadLimit: -1}},
		{"negative read window", Options{ClientSecret: "x", ReadWindow: -time.Second}},
		{"negative page size", Options{ClientSecret: "x", LicensePageSize: -1}},
		{"app id not a GUID", Options{ClientSecret: "x", Apps: map[string]App{"app-1": {VPP: true}}}},
		{"licensed device not a GUID", Options{ClientSecret: "x", Apps: map[string]App{appVPP: {VPP: true, Licensed: []string{"device-1"}}}}},
		{"device not a GUID", Options{ClientSecret: "x", Devices: []string{deviceOne, "{" + deviceTwo + "}"}}},
		{"app twice in different case", Options{ClientSecret: "x", Apps: map[string]App{appVPP: {VPP: true}, strings.ToUpper(appVPP): {VPP: true}}}},
		{"negative user licenses", Options{ClientSecret: "x", Apps: map[string]App{appVPP: {VPP: true, UserLicenses: -1}}}},
		{"VPP app with another type", Options{ClientSecret: "x", Apps: map[string]App{appVPP: {VPP: true, ODataType: DefaultNonVPPType}}}},
		{"non-VPP app with the VPP type", Options{ClientSecret: "x", Apps: map[string]App{appVPP: {ODataType: "#microsoft.graph.iosVppApp"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := New(tt.opts); err == nil {
				s.Close()
				t.Errorf("New succeeded, want an error")
			}
		})
	}
}
