package graphsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// explicitCatalogue has a VPP app licensed to deviceOne and deviceTwo, a second VPP app licensed
// to nobody, a non-VPP app and a known device without licenses.
func explicitCatalogue() Options {
	return Options{
		Apps: map[string]App{
			appVPP:    {VPP: true, Licensed: []string{deviceOne, strings.ToUpper(deviceTwo)}},
			appVPP2:   {VPP: true},
			appNotVPP: {VPP: false},
		},
		Devices: []string{deviceNoLic},
	}
}

func TestGraphUnauthorized(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	valid := getToken(t, s)

	tests := []struct {
		name          string
		authorization string
		wantWord      string
	}{
		{"no header", "", "missing"},
		{"unknown token", "Bearer not-a-token", "invalid"},
		{"basic scheme", "Basic " + valid, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL()+revokePath(FormCast, appVPP), strings.NewReader(revokeBody(deviceOne)))
			req.Header.Set("Content-Type", "application/json")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body graphError
			json.NewDecoder(resp.Body).Decode(&body)

			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", resp.StatusCode)
			}
			if body.Error.Code != "InvalidAuthenticationToken" {
				t.Errorf("code = %q, want InvalidAuthenticationToken", body.Error.Code)
			}
			if !strings.Contains(body.Error.Message, tt.wantWord) {
				t.Errorf("message = %q, want it to contain %q", body.Error.Message, tt.wantWord)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("WWW-Authenticate header is missing")
			}
		})
	}

	if got := s.Stats().Unauthorized; got != len(tests) {
		t.Errorf("Stats().Unauthorized = %d, want %d", got, len(tests))
	}
	if got := s.Stats().RevokeCalls.Total(); got != 0 {
		t.Errorf("revoke calls that reached the catalogue = %d, want 0", got)
	}
}

func TestGraphForbidden(t *testing.T) {
	s := newTestServer(t, Options{Open: true, Forbidden: true})
	token := getToken(t, s)

	got := revoke(t, s, token, FormCast, appVPP, deviceOne)
	wantStatus(t, "forbidden", got, http.StatusForbidden, "Forbidden")
	if !strings.Contains(got.err.Error.Message, "DeviceManagementApps.ReadWrite.All") {
		t.Errorf("message = %q, want it to name DeviceManagementApps.ReadWrite.All", got.err.Error.Message)
	}
	if s.Stats().Forbidden != 1 {
		t.Errorf("Stats().Forbidden = %d, want 1", s.Stats().Forbidden)
	}

	s.SetForbidden(false)
	wantStatus(t, "after SetForbidden(false)", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
}

func TestGraphURLForms(t *testing.T) {
	const castSegment = "Resource not found for the segment 'microsoft.graph.iosVppApp'."
	const uncastSegment = "Resource not found for the segment 'revokeDeviceLicense'."

	tests := []struct {
		accepted    Form
		sent        Form
		wantStatus  int
		wantMessage string
	}{
		{FormBoth, FormCast, http.StatusNoContent, ""},
		{FormBoth, FormUncast, http.StatusNoContent, ""},
		{FormCast, FormCast, http.StatusNoContent, ""},
		{FormCast, FormUncast, http.StatusBadRequest, uncastSegment},
		{FormUncast, FormUncast, http.StatusNoContent, ""},
		{FormUncast, FormCast, http.StatusBadRequest, castSegment},
		{FormNone, FormCast, http.StatusBadRequest, castSegment},
		{FormNone, FormUncast, http.StatusBadRequest, uncastSegment},
	}
	for _, tt := range tests {
		t.Run(tt.accepted.String()+" accepts "+tt.sent.String(), func(t *testing.T) {
			s := newTestServer(t, Options{Open: true, Forms: tt.accepted})

			got := revoke(t, s, getToken(t, s), tt.sent, appVPP, deviceOne)
			if got.resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", got.resp.StatusCode, tt.wantStatus)
			}
			if got.err.Error.Message != tt.wantMessage {
				t.Errorf("message = %q, want %q", got.err.Error.Message, tt.wantMessage)
			}
			if tt.wantStatus == http.StatusBadRequest && got.code() != "BadRequest" {
				t.Errorf("code = %q, want BadRequest", got.code())
			}
			if byForm := s.Stats().ByForm[tt.sent.String()]; byForm != 1 {
				t.Errorf("Stats().ByForm[%s] = %d, want 1", tt.sent, byForm)
			}
		})
	}
}

func TestGraphSetForms(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	if err := s.SetForms(FormCast); err != nil {
		t.Fatalf("SetForms: %v", err)
	}
	wantStatus(t, "uncast after SetForms(FormCast)", revoke(t, s, token, FormUncast, appVPP, deviceOne), http.StatusBadRequest, "BadRequest")
	wantStatus(t, "cast after SetForms(FormCast)", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
	if err := s.SetForms(0); err == nil {
		t.Errorf("SetForms(0) succeeded, want an error")
	}
}

func TestGraphUnknownPaths(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	tests := []struct {
		path        string
		wantSegment string
	}{
		{"/beta", "beta"},
		{"/beta/me", "me"},
		{"/beta/deviceAppManagement", "deviceAppManagement"},
		{"/beta/deviceAppManagement/managedEBooks", "managedEBooks"},
		{"/beta/deviceAppManagement/mobileApps", "mobileApps"},
		{"/beta/deviceAppManagement/mobileApps/" + appVPP + "/revokeAllLicenses", "revokeAllLicenses"},
		{"/beta/deviceAppManagement/mobileApps/" + appVPP + "/microsoft.graph.iosVppApp/revokeLicenseActionResults", "revokeLicenseActionResults"},
		{"/beta/deviceAppManagement/mobileApps/" + appVPP + "/microsoft.graph.iosVppApp/assignedLicenses/extra", "extra"},
		{"/beta/deviceAppManagement/mobileApps/" + appVPP + "/microsoft.graph.iosVppApp", "microsoft.graph.iosVppApp"},
		{"/beta/deviceAppManagement/mobileApps/" + appVPP + "/revokeDeviceLicense/extra", "extra"},
	}
	for _, tt := range tests {
		got := graphCall{path: tt.path, token: token, body: revokeBody(deviceOne)}.do(t, s)
		wantStatus(t, tt.path, got, http.StatusBadRequest, "BadRequest")
		if want := "Resource not found for the segment '" + tt.wantSegment + "'."; got.err.Error.Message != want {
			t.Errorf("%s: message = %q, want %q", tt.path, got.err.Error.Message, want)
		}
	}

	if got := s.Stats().UnknownPaths; got != len(tests) {
		t.Errorf("Stats().UnknownPaths = %d, want %d", got, len(tests))
	}
}

func TestGraphSegmentNamesIgnoreCase(t *testing.T) {
	s := newTestServer(t, Options{Open: true})

	path := "/beta/DeviceAppManagement/MOBILEAPPS/" + appVPP + "/Microsoft.Graph.IosVppApp/RevokeDeviceLicense"
	got := graphCall{path: path, token: getToken(t, s), body: revokeBody(deviceOne)}.do(t, s)
	wantStatus(t, path, got, http.StatusNoContent, "")
}

func TestGraphRequestChecks(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)
	cast := revokePath(FormCast, appVPP)

	tests := []struct {
		name       string
		call       graphCall
		wantStatus int
		wantCode   string
	}{
		{"valid", graphCall{path: cast, body: revokeBody(deviceOne)}, 204, ""},
		{"charset parameter", graphCall{path: cast, contentType: "application/json; charset=utf-8", body: revokeBody(deviceTwo)}, 204, ""},
		{"unknown fields ignored", graphCall{path: cast, body: `{"managedDeviceId":"` + deviceNoLic + `","extra":[1,2]}`}, 204, ""},
		{"notify omitted", graphCall{path: cast, body: `{"managedDeviceId":"` + deviceOne + `"}`}, 204, ""},
		{"text content type", graphCall{path: cast, contentType: "text/plain", body: revokeBody(deviceOne)}, 400, "BadRequest"},
		{"no content type", graphCall{path: cast, contentType: "none", body: revokeBody(deviceOne)}, 400, "BadRequest"},
		{"not JSON", graphCall{path: cast, body: `managedDeviceId=` + deviceOne}, 400, "BadRequest"},
		{"JSON array", graphCall{path: cast, body: `[]`}, 400, "BadRequest"},
		{"trailing data", graphCall{path: cast, body: revokeBody(deviceOne) + `{}`}, 400, "BadRequest"},
		{"empty body", graphCall{path: cast, body: ``}, 400, "BadRequest"},
		{"missing device id", graphCall{path: cast, body: `{"notifyManagedDevices":true}`}, 400, "BadRequest"},
		{"null device id", graphCall{path: cast, body: `{"managedDeviceId":null}`}, 400, "BadRequest"},
		{"device id not a GUID", graphCall{path: cast, body: revokeBody("device-1")}, 400, "BadRequest"},
		{"device id a number", graphCall{path: cast, body: `{"managedDeviceId":42}`}, 400, "BadRequest"},
		{"notify not a bool", graphCall{path: cast, body: `{"managedDeviceId":"` + deviceOne + `","notifyManagedDevices":"yes"}`}, 400, "BadRequest"},
		{"app id not a GUID", graphCall{path: revokePath(FormCast, "not-a-guid"), body: revokeBody(deviceOne)}, 400, "BadRequest"},
		{"GET method", graphCall{method: http.MethodGet, path: cast}, 405, "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.call.token = token
			wantStatus(t, tt.name, tt.call.do(t, s), tt.wantStatus, tt.wantCode)
		})
	}

	if got := s.Stats().WrongContentType; got != 2 {
		t.Errorf("Stats().WrongContentType = %d, want 2", got)
	}
}

func TestGraphExplicitCatalogue(t *testing.T) {
	s := newTestServer(t, explicitCatalogue())
	token := getToken(t, s)

	// The steps share the catalogue, so their order matters.
	steps := []struct {
		name       string
		app        string
		device     string
		wantStatus int
		wantCode   string
	}{
		{"licensed pair", appVPP, deviceOne, 204, ""},
		{"same pair again", appVPP, deviceOne, 204, ""},
		{"licensed pair in other case", strings.ToUpper(appVPP), deviceTwo, 204, ""},
		{"known device without license", appVPP, deviceNoLic, 204, ""},
		{"app licensed to nobody", appVPP2, deviceOne, 204, ""},
		{"unknown app", appUnknown, deviceOne, 404, "ResourceNotFound"},
		{"app outside the catalogue", "c3c3c3c3-0000-4000-8000-000000000001", deviceOne, 404, "ResourceNotFound"},
		{"app not VPP", appNotVPP, deviceOne, 400, "BadRequest"},
		{"unknown device", appVPP, deviceUnknown, 404, "ResourceNotFound"},
	}
	var notVPP graphResponse
	for _, step := range steps {
		got := revoke(t, s, token, FormCast, step.app, step.device)
		wantStatus(t, step.name, got, step.wantStatus, step.wantCode)
		if step.app == appNotVPP {
			notVPP = got
		}
	}
	if !strings.Contains(notVPP.err.Error.Message, "not an iosVppApp") {
		t.Errorf("non-VPP message = %q, want it to say the app is not an iosVppApp", notVPP.err.Error.Message)
	}

	stats := s.Stats()
	wantCounts := []struct {
		name   string
		counts PairCounts
		pair   Pair
		want   int
	}{
		{"RevokeCalls", stats.RevokeCalls, Pair{appVPP, deviceOne}, 2},
		{"RevokeCalls", stats.RevokeCalls, Pair{appVPP, deviceTwo}, 1},
		{"RevokeCalls", stats.RevokeCalls, Pair{appNotVPP, deviceOne}, 1},
		{"RevokeCalls", stats.RevokeCalls, Pair{appVPP, deviceUnknown}, 1},
		{"LicensesRemoved", stats.LicensesRemoved, Pair{appVPP, deviceOne}, 1},
		{"LicensesRemoved", stats.LicensesRemoved, Pair{appVPP, deviceTwo}, 1},
		{"NoOpRevokes", stats.NoOpRevokes, Pair{appVPP, deviceOne}, 1},
		{"NoOpRevokes", stats.NoOpRevokes, Pair{appVPP, deviceNoLic}, 1},
		{"NoOpRevokes", stats.NoOpRevokes, Pair{appVPP2, deviceOne}, 1},
	}
	for _, wc := range wantCounts {
		if got := wc.counts[wc.pair]; got != wc.want {
			t.Errorf("%s[%v] = %d, want %d", wc.name, wc.pair, got, wc.want)
		}
	}
	if got := stats.RevokeCalls.Total(); got != len(steps) {
		t.Errorf("sum of RevokeCalls = %d, want %d", got, len(steps))
	}
	if got := stats.LicensesRemoved.Total(); got != 2 {
		t.Errorf("sum of LicensesRemoved = %d, want 2", got)
	}
	if got := stats.NoOpRevokes.Total(); got != 3 {
		t.Errorf("sum of NoOpRevokes = %d, want 3", got)
	}
}

func TestGraphOpenCatalogue(t *testing.T) {
	opts := Options{Open: true, UnknownPrefix: "FFFFFFFF-", Apps: map[string]App{appNotVPP: {VPP: false}}}
	s := newTestServer(t, opts)
	token := getToken(t, s)
	unknownApp := "ffffffff-0000-4000-8000-000000000001"
	unknownDevice := "ffffffff-0000-4000-8000-000000000002"

	steps := []struct {
		name       string
		app        string
		device     string
		wantStatus int
		wantCode   string
	}{
		{"any pair", appVPP, deviceOne, 204, ""},
		{"same pair again", appVPP, deviceOne, 204, ""},
		{"same device, other app", appVPP2, deviceOne, 204, ""},
		{"zero prefix is known here", appUnknown, deviceUnknown, 204, ""},
		{"unknown app", unknownApp, deviceOne, 404, "ResourceNotFound"},
		{"unknown device", appVPP, unknownDevice, 404, "ResourceNotFound"},
		{"explicit non-VPP app", appNotVPP, deviceOne, 400, "BadRequest"},
	}
	for _, step := range steps {
		wantStatus(t, step.name, revoke(t, s, token, FormUncast, step.app, step.device), step.wantStatus, step.wantCode)
	}

	stats := s.Stats()
	if got := stats.LicensesRemoved[Pair{appVPP, deviceOne}]; got != 1 {
		t.Errorf("LicensesRemoved[appVPP/deviceOne] = %d, want 1", got)
	}
	if got := stats.NoOpRevokes[Pair{appVPP, deviceOne}]; got != 1 {
		t.Errorf("NoOpRevokes[appVPP/deviceOne] = %d, want 1", got)
	}
	if got := stats.LicensesRemoved.Total(); got != 3 {
		t.Errorf("sum of LicensesRemoved = %d, want 3", got)
	}
}

func TestGraphDefaultUnknownPrefix(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	wantStatus(t, "unknown app", revoke(t, s, token, FormCast, appUnknown, deviceOne), http.StatusNotFound, "ResourceNotFound")
	wantStatus(t, "unknown device", revoke(t, s, token, FormCast, appVPP, deviceUnknown), http.StatusNotFound, "ResourceNotFound")
}

func TestGraphResponseHeaders(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)
	const clientRequestID = "c1c1c1c1-0000-4000-8000-000000000001"

	responses := map[string]graphResponse{
		"success": graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne), clientRequestID: clientRequestID}.do(t, s),
		"error":   graphCall{path: revokePath(FormCast, appUnknown), token: token, body: revokeBody(deviceOne), clientRequestID: clientRequestID}.do(t, s),
		"401":     graphCall{path: revokePath(FormCast, appVPP), body: revokeBody(deviceOne), clientRequestID: clientRequestID}.do(t, s),
	}
	for name, got := range responses {
		h := got.resp.Header
		if !isGUID(h.Get("request-id")) {
			t.Errorf("%s: request-id = %q, want a GUID", name, h.Get("request-id"))
		}
		if h.Get("client-request-id") != clientRequestID {
			t.Errorf("%s: client-request-id = %q, want %q", name, h.Get("client-request-id"), clientRequestID)
		}
		var diagnostic map[string]any
		if err := json.Unmarshal([]byte(h.Get("x-ms-ags-diagnostic")), &diagnostic); err != nil {
			t.Errorf("%s: x-ms-ags-diagnostic = %q, want JSON: %v", name, h.Get("x-ms-ags-diagnostic"), err)
		}
		if _, err := http.ParseTime(h.Get("Date")); err != nil {
			t.Errorf("%s: Date = %q, want an HTTP-date: %v", name, h.Get("Date"), err)
		}

		if got.resp.StatusCode < 400 {
			continue
		}
		inner := got.err.Error.InnerError
		if inner.RequestID != h.Get("request-id") || inner.ClientRequestID != clientRequestID {
			t.Errorf("%s: innerError ids = %q, %q, want the header values", name, inner.RequestID, inner.ClientRequestID)
		}
		if _, err := time.Parse("2006-01-02T15:04:05", inner.Date); err != nil {
			t.Errorf("%s: innerError.date = %q: %v", name, inner.Date, err)
		}
	}

	if responses["success"].resp.Header.Get("request-id") == responses["error"].resp.Header.Get("request-id") {
		t.Errorf("two responses share a request-id")
	}

	// Without a client-request-id, Graph returns the request-id in its place.
	got := graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceTwo)}.do(t, s)
	if got.resp.Header.Get("client-request-id") != got.resp.Header.Get("request-id") {
		t.Errorf("client-request-id = %q, want the request-id %q", got.resp.Header.Get("client-request-id"), got.resp.Header.Get("request-id"))
	}
}

func TestGraphHTTPVersions(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	http1 := newHTTP1Client(t, s)

	tests := []struct {
		name      string
		client    *http.Client
		wantMajor int
	}{
		{"Client", s.Client(), 2},
		{"HTTP/1.1 transport", http1, 1},
	}
	for _, tt := range tests {
		got := graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne), client: tt.client}.do(t, s)
		if got.resp.ProtoMajor != tt.wantMajor {
			t.Errorf("%s: protocol = %s, want HTTP/%d", tt.name, got.resp.Proto, tt.wantMajor)
		}
		if got.resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: status = %d, want 204", tt.name, got.resp.StatusCode)
		}
	}
}
