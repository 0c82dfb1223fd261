package graphsim

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const testSecret = "test-secret-value-7f3a"

// GUIDs used across the tests. The unknown ones start with DefaultUnknownPrefix.
const (
	appVPP        = "a1a1a1a1-0000-4000-8000-000000000001"
	appVPP2       = "a1a1a1a1-0000-4000-8000-000000000002"
	appNotVPP     = "b2b2b2b2-0000-4000-8000-000000000001"
	appUnknown    = "00000000-0000-4000-8000-0000000000aa"
	deviceOne     = "d1d1d1d1-0000-4000-8000-000000000001"
	deviceTwo     = "d1d1d1d1-0000-4000-8000-000000000002"
	deviceNoLic   = "d1d1d1d1-0000-4000-8000-000000000003"
	deviceUnknown = "00000000-0000-4000-8000-0000000000dd"
)

// newTestServer starts a server with testSecret unless opts names a credential, and closes it
// when the test ends.
func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.ClientSecret == "" && opts.FederatedToken == "" {
		opts.ClientSecret = testSecret
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tokenForm returns a valid client-credentials form for s, with the OpenID scopes MSAL appends.
func tokenForm(s *Server) url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {s.ClientID()},
		"client_secret": {testSecret},
		"scope":         {s.URL() + "/.default openid offline_access profile"},
	}
}

// postToken posts form to the token endpoint of tenant and decodes the JSON response.
func postToken(t testing.TB, s *Server, tenant string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := s.Client().PostForm(s.URL()+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatalf("POST token: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode token response: %v", err)
	}
	return resp, body
}

// getToken returns a new access token issued for testSecret.
func getToken(t testing.TB, s *Server) string {
	t.Helper()
	resp, body := postToken(t, s, s.TenantID(), tokenForm(s))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token status = %d, want 200; body %v", resp.StatusCode, body)
	}
	token, _ := body["access_token"].(string)
	if token == "" {
		t.Fatalf("token response has no access_token: %v", body)
	}
	return token
}

// newHTTP1Client returns a client that trusts s and speaks HTTP/1.1 only.
func newHTTP1Client(t *testing.T, s *Server) *http.Client {
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CertPool()},
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

func revokePath(form Form, appID string) string {
	if form == FormCast {
		return "/beta/deviceAppManagement/mobileApps/" + appID + "/microsoft.graph.iosVppApp/revokeDeviceLicense"
	}
	return "/beta/deviceAppManagement/mobileApps/" + appID + "/revokeDeviceLicense"
}

func revokeBody(deviceID string) string {
	return `{"managedDeviceId":"` + deviceID + `","notifyManagedDevices":false}`
}

// graphCall is one request to the Graph side. Empty fields take the defaults of do.
type graphCall struct {
	method          string // POST by default
	path            string
	token           string // no Authorization header when empty
	contentType     string // application/json by default; "none" sends no Content-Type
	body            string
	clientRequestID string // none when empty
	client          *http.Client
}

// graphResponse is a Graph response with its body read and, for errors, decoded.
type graphResponse struct {
	resp *http.Response
	body []byte
	err  graphError
}

func (a graphResponse) code() string { return a.err.Error.Code }

// do sends the call and returns the response, or fails the test on a transport error.
func (c graphCall) do(t *testing.T, s *Server) graphResponse {
	t.Helper()
	response, err := c.send(s)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	return response
}

// send sends the call and returns the transport error, if any.
func (c graphCall) send(s *Server) (graphResponse, error) {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, s.URL()+c.path, strings.NewReader(c.body))
	if err != nil {
		return graphResponse{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	switch c.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "none":
	default:
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.clientRequestID != "" {
		req.Header.Set("client-request-id", c.clientRequestID)
	}

	client := c.client
	if client == nil {
		client = s.Client()
	}
	resp, err := client.Do(req)
	if err != nil {
		return graphResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return graphResponse{}, err
	}

	response := graphResponse{resp: resp, body: body}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(body, &response.err); err != nil {
			return response, err
		}
	}
	return response, nil
}

// revoke sends a valid revoke request in the given form.
func revoke(t *testing.T, s *Server, token string, form Form, appID, deviceID string) graphResponse {
	t.Helper()
	return graphCall{path: revokePath(form, appID), token: token, body: revokeBody(deviceID)}.do(t, s)
}

// wantStatus fails the test unless the response has the status and, when code is not empty, the
// Graph error code.
func wantStatus(t *testing.T, label string, got graphResponse, status int, code string) {
	t.Helper()
	if got.resp.StatusCode != status {
		t.Errorf("%s: status = %d, want %d; body %s", label, got.resp.StatusCode, status, got.body)
	}
	if got.code() != code {
		t.Errorf("%s: error code = %q, want %q", label, got.code(), code)
	}
}

func appPath(appID string) string {
	return "/beta/deviceAppManagement/mobileApps/" + appID
}

func licensesPath(appID string) string {
	return "/beta/deviceAppManagement/mobileApps/" + appID + "/microsoft.graph.iosVppApp/assignedLicenses"
}

// get sends a GET request for path, which is relative to the server's origin.
func get(t *testing.T, s *Server, token, path string) graphResponse {
	t.Helper()
	return graphCall{method: http.MethodGet, path: path, token: token, contentType: "none"}.do(t, s)
}
