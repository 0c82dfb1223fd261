package graphsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// randomGUIDs returns n distinct random lowercase GUIDs from a seeded source.
func randomGUIDs(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := map[string]bool{}
	var ids []string
	for len(ids) < n {
		id := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// testLicensePage is a decoded page of assignedLicenses.
type testLicensePage struct {
	Context  string           `json:"@odata.context"`
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"@odata.nextLink"`
}

// readLicensePage sends GET link, which is absolute or relative to the server's origin, and
// decodes the page. It fails the test unless the status is 200.
func readLicensePage(t *testing.T, s *Server, token, link string) testLicensePage {
	t.Helper()
	got := get(t, s, token, strings.TrimPrefix(link, s.URL()))
	if got.resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status = %d, want 200; body %s", link, got.resp.StatusCode, got.body)
	}
	var page testLicensePage
	if err := json.Unmarshal(got.body, &page); err != nil {
		t.Fatalf("GET %s: decode page: %v; body %s", link, err, got.body)
	}
	return page
}

// listing is every entry of an app's assignedLicenses, read page by page.
type listing struct {
	devices []string // managedDeviceId of each device license, in the order listed
	users   []string // id of each user license
	pages   int
}

// listLicenses follows the next links from the first page of appID's assignedLicenses. It checks
// the shape of each entry and that every page but the last is full and has a next link.
func listLicenses(t *testing.T, s *Server, token, appID string, pageSize int) listing {
	t.Helper()
	var got listing
	link := licensesPath(appID)
	for link != "" {
		page := readLicensePage(t, s, token, link)
		got.pages++
		if len(page.Value) > pageSize {
			t.Errorf("page %d has %d entries, want at most %d", got.pages, len(page.Value), pageSize)
		}
		if page.NextLink != "" && len(page.Value) != pageSize {
			t.Errorf("page %d has %d entries and a next link, want a full page of %d", got.pages, len(page.Value), pageSize)
		}
		if page.Context == "" {
			t.Errorf("page %d has no @odata.context", got.pages)
		}
		for _, entry := range page.Value {
			checkLicenseEntry(t, entry)
			if device, ok := entry["managedDeviceId"].(string); ok {
				got.devices = append(got.devices, device)
			} else {
				got.users = append(got.users, entry["id"].(string))
			}
		}
		if page.NextLink != "" {
			checkNextLink(t, s, appID, page.NextLink)
		}
		link = page.NextLink
		if got.pages > 1000 {
			t.Fatalf("more than 1000 pages: the next links do not end")
		}
	}
	return got
}

// checkLicenseEntry checks that entry is a device license with null user fields, or a user
// license without managedDeviceId.
func checkLicenseEntry(t *testing.T, entry map[string]any) {
	t.Helper()
	id, _ := entry["id"].(string)
	if !isGUID(id) {
		t.Errorf("entry %v: id is not a GUID", entry)
	}
	switch entry["@odata.type"] {
	case "#microsoft.graph.iosVppAppAssignedDeviceLicense":
		if device, _ := entry["managedDeviceId"].(string); !isGUID(device) {
			t.Errorf("device license %v: managedDeviceId is not a GUID", entry)
		}
		if name, _ := entry["deviceName"].(string); name == "" {
			t.Errorf("device license %v: deviceName is empty", entry)
		}
		for _, field := range []string{"userId", "userName", "userEmailAddress", "userPrincipalName"} {
			if value, ok := entry[field]; !ok || value != nil {
				t.Errorf("device license %v: %s = %v, want null", entry, field, value)
			}
		}
	case "#microsoft.graph.iosVppAppAssignedUserLicense":
		if _, ok := entry["managedDeviceId"]; ok {
			t.Errorf("user license %v has a managedDeviceId", entry)
		}
		if user, _ := entry["userId"].(string); !isGUID(user) {
			t.Errorf("user license %v: userId is not a GUID", entry)
		}
		if upn, _ := entry["userPrincipalName"].(string); !strings.Contains(upn, "@") {
			t.Errorf("user license %v: userPrincipalName = %q, want a UPN", entry, upn)
		}
	default:
		t.Errorf("entry %v: unexpected @odata.type", entry)
	}
}

// checkNextLink checks that link is the assignedLicenses URL of appID with a $skiptoken.
func checkNextLink(t *testing.T, s *Server, appID, link string) {
	t.Helper()
	parsed, err := url.Parse(link)
	if err != nil {
		t.Fatalf("next link %q: %v", link, err)
	}
	if base := parsed.Scheme + "://" + parsed.Host + parsed.Path; base != s.URL()+licensesPath(appID) {
		t.Errorf("next link %q: base = %q, want %q", link, base, s.URL()+licensesPath(appID))
	}
	if query := parsed.Query(); len(query) != 1 || query.Get("$skiptoken") == "" {
		t.Errorf("next link %q: query = %v, want only $skiptoken", link, query)
	}
}

func TestReadApp(t *testing.T) {
	const customType = "#microsoft.graph.iosLobApp"
	opts := Options{
		Open:          true,
		UnknownPrefix: "ffffffff-",
		Apps: map[string]App{
			appVPP:    {VPP: true, DisplayName: "Keynote"},
			appNotVPP: {},
			appVPP2:   {ODataType: customType},
		},
	}
	s := newTestServer(t, opts)
	token := getToken(t, s)

	tests := []struct {
		name     string
		appID    string
		wantType string
		wantName string
	}{
		{"VPP app", appVPP, "#microsoft.graph.iosVppApp", "Keynote"},
		{"VPP app in upper case", strings.ToUpper(appVPP), "#microsoft.graph.iosVppApp", "Keynote"},
		{"non-VPP app", appNotVPP, DefaultNonVPPType, "Simulated app b2b2b2b2"},
		{"non-VPP app with its own type", appVPP2, customType, "Simulated app a1a1a1a1"},
		{"open-catalogue app", "c3c3c3c3-0000-4000-8000-000000000001", "#microsoft.graph.iosVppApp", "Simulated app c3c3c3c3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := get(t, s, token, appPath(tt.appID))
			wantStatus(t, tt.name, got, http.StatusOK, "")
			var app map[string]any
			if err := json.Unmarshal(got.body, &app); err != nil {
				t.Fatalf("decode app: %v; body %s", err, got.body)
			}
			if app["@odata.type"] != tt.wantType {
				t.Errorf("@odata.type = %v, want %s", app["@odata.type"], tt.wantType)
			}
			if want := strings.ToLower(tt.appID); app["id"] != want {
				t.Errorf("id = %v, want %s", app["id"], want)
			}
			if app["displayName"] != tt.wantName {
				t.Errorf("displayName = %v, want %q", app["displayName"], tt.wantName)
			}
			if context, _ := app["@odata.context"].(string); !strings.HasPrefix(context, s.GraphURL()+"/$metadata#") {
				t.Errorf("@odata.context = %q, want it under %s/$metadata", context, s.GraphURL())
			}
			if contentType := got.resp.Header.Get("Content-Type"); !strings.HasPrefix(contentType, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", contentType)
			}
		})
	}
}

func TestReadLicensesPaging(t *testing.T) {
	tests := []struct {
		name      string
		devices   int
		users     int
		pageSize  int
		wantPages int
	}{
		{"no licenses", 0, 0, 4, 1},
		{"one short page", 3, 0, 100, 1},
		{"last page exactly full", 8, 0, 4, 2},
		{"user licenses mixed in", 25, 7, 4, 8},
		{"only user licenses", 0, 5, 2, 3},
		{"page of one", 5, 2, 1, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devices := randomGUIDs(uint64(tt.devices), tt.devices)
			upper := make([]string, len(devices))
			for i, id := range devices {
				upper[i] = strings.ToUpper(id)
			}
			s := newTestServer(t, Options{
				LicensePageSize: tt.pageSize,
				Apps:            map[string]App{appVPP: {VPP: true, Licensed: upper, UserLicenses: tt.users}},
			})
			token := getToken(t, s)

			got := listLicenses(t, s, token, appVPP, tt.pageSize)

			want := slices.Sorted(slices.Values(devices))
			if !slices.Equal(got.devices, want) {
				t.Errorf("devices listed =\n%v\nwant, in sorted order,\n%v", got.devices, want)
			}
			if len(got.users) != tt.users {
				t.Errorf("user licenses listed = %d, want %d", len(got.users), tt.users)
			}
			if len(slices.Compact(slices.Sorted(slices.Values(got.users)))) != len(got.users) {
				t.Errorf("user licenses listed = %v, want no duplicates", got.users)
			}
			if got.pages != tt.wantPages {
				t.Errorf("pages = %d, want %d", got.pages, tt.wantPages)
			}

			// A second listing returns the same entries: the order is stable.
			again := listLicenses(t, s, token, appVPP, tt.pageSize)
			if !slices.Equal(again.devices, got.devices) || !slices.Equal(again.users, got.users) {
				t.Errorf("second listing = %v %v, want %v %v", again.devices, again.users, got.devices, got.users)
			}

			stats := s.Stats()
			if stats.LicensePages != 2*tt.wantPages || stats.ReadRequests != 2*tt.wantPages {
				t.Errorf("LicensePages, ReadRequests = %d, %d, want %d, %d", stats.LicensePages, stats.ReadRequests, 2*tt.wantPages, 2*tt.wantPages)
			}
		})
	}
}

func TestReadLicensesUserLicensesInterleaved(t *testing.T) {
	devices := randomGUIDs(11, 40)
	s := newTestServer(t, Options{LicensePageSize: 5, Apps: map[string]App{appVPP: {VPP: true, Licensed: devices, UserLicenses: 10}}})
	token := getToken(t, s)

	// With 10 user licenses among 40 device licenses in key order, some page must hold both kinds:
	// the chance that all 10 sort into pages of their own is negligible, and the seed is fixed.
	mixed := 0
	for link := licensesPath(appVPP); link != ""; {
		page := readLicensePage(t, s, token, link)
		kinds := map[any]bool{}
		for _, entry := range page.Value {
			kinds[entry["@odata.type"]] = true
		}
		if len(kinds) == 2 {
			mixed++
		}
		link = page.NextLink
	}
	if mixed == 0 {
		t.Errorf("no page holds both device and user licenses, want user licenses mixed into the pages")
	}
}

func TestReadLicensesRemovedBetweenPages(t *testing.T) {
	devices := slices.Sorted(slices.Values(randomGUIDs(5, 12)))
	s := newTestServer(t, Options{LicensePageSize: 3, Apps: map[string]App{appVPP: {VPP: true, Licensed: devices}}})
	token := getToken(t, s)

	first := readLicensePage(t, s, token, licensesPath(appVPP))
	if len(first.Value) != 3 || first.Value[2]["managedDeviceId"] != devices[2] {
		t.Fatalf("first page = %v, want %v", first.Value, devices[:3])
	}

	// Revoke a device of the first page, the device that would open the second page, one in the
	// middle and the last one.
	revoked := []string{devices[1], devices[3], devices[7], devices[11]}
	for _, device := range revoked {
		wantStatus(t, "revoke "+device, revoke(t, s, token, FormCast, appVPP, device), http.StatusNoContent, "")
	}

	var rest []string
	for link := first.NextLink; link != ""; {
		page := readLicensePage(t, s, token, link)
		for _, entry := range page.Value {
			rest = append(rest, entry["managedDeviceId"].(string))
		}
		link = page.NextLink
	}
	want := []string{devices[4], devices[5], devices[6], devices[8], devices[9], devices[10]}
	if !slices.Equal(rest, want) {
		t.Errorf("devices on later pages =\n%v\nwant\n%v", rest, want)
	}

	// A new listing leaves out every revoked device.
	got := listLicenses(t, s, token, appVPP, 3)
	wantAll := slices.DeleteFunc(slices.Clone(devices), func(d string) bool { return slices.Contains(revoked, d) })
	if !slices.Equal(got.devices, wantAll) {
		t.Errorf("devices after the revokes =\n%v\nwant\n%v", got.devices, wantAll)
	}
}

func TestReadLicensesOpenCatalogue(t *testing.T) {
	listed := slices.Sorted(slices.Values(randomGUIDs(3, 5)))
	s := newTestServer(t, Options{Open: true, Devices: listed, LicensePageSize: 2})
	token := getToken(t, s)
	const openApp = "c3c3c3c3-0000-4000-8000-000000000001"

	if got := listLicenses(t, s, token, openApp, 2); !slices.Equal(got.devices, listed) {
		t.Errorf("devices of an open app = %v, want Options.Devices %v", got.devices, listed)
	}

	// A device outside Options.Devices holds a license too, but the listing cannot show it.
	wantStatus(t, "revoke a listed device", revoke(t, s, token, FormCast, openApp, listed[2]), http.StatusNoContent, "")
	wantStatus(t, "revoke an unlisted device", revoke(t, s, token, FormCast, openApp, deviceOne), http.StatusNoContent, "")
	want := []string{listed[0], listed[1], listed[3], listed[4]}
	if got := listLicenses(t, s, token, openApp, 2); !slices.Equal(got.devices, want) {
		t.Errorf("devices after a revoke = %v, want %v", got.devices, want)
	}
	if got := listLicenses(t, s, token, appVPP2, 2); !slices.Equal(got.devices, listed) {
		t.Errorf("devices of another open app = %v, want %v", got.devices, listed)
	}

	withoutDevices := newTestServer(t, Options{Open: true})
	if got := listLicenses(t, withoutDevices, getToken(t, withoutDevices), openApp, DefaultLicensePageSize); len(got.devices) != 0 {
		t.Errorf("devices of an open app without Options.Devices = %v, want none", got.devices)
	}
}

func TestReadErrors(t *testing.T) {
	opts := explicitCatalogue()
	opts.LicensePageSize = 1
	s := newTestServer(t, opts)
	other := newTestServer(t, opts)
	token := getToken(t, s)
	const notVPPMessage = "Resource not found for the segment 'microsoft.graph.iosVppApp'."

	firstPage := readLicensePage(t, s, token, licensesPath(appVPP))
	otherServer := readLicensePage(t, other, getToken(t, other), licensesPath(appVPP))
	skiptoken := func(link string) string {
		parsed, err := url.Parse(link)
		if err != nil || parsed.Query().Get("$skiptoken") == "" {
			t.Fatalf("next link %q has no $skiptoken", link)
		}
		return parsed.Query().Get("$skiptoken")
	}
	valid := skiptoken(firstPage.NextLink)

	tests := []struct {
		name        string
		path        string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"unknown app", appPath(appUnknown), 404, "ResourceNotFound", ""},
		{"app outside the catalogue", appPath("c3c3c3c3-0000-4000-8000-000000000001"), 404, "ResourceNotFound", ""},
		{"licenses of unknown app", licensesPath(appUnknown), 404, "ResourceNotFound", ""},
		{"licenses of non-VPP app", licensesPath(appNotVPP), 400, "BadRequest", notVPPMessage},
		{"app id not a GUID", appPath("not-a-guid"), 400, "BadRequest", ""},
		{"licenses of app id not a GUID", licensesPath("not-a-guid"), 400, "BadRequest", ""},
		{"valid skiptoken", licensesPath(appVPP) + "?$skiptoken=" + valid, 200, "", ""},
		{"skiptoken with encoded dollar", licensesPath(appVPP) + "?%24skiptoken=" + valid, 200, "", ""},
		{"skiptoken not base64", licensesPath(appVPP) + "?$skiptoken=not*a*token", 400, "BadRequest", ""},
		{"empty skiptoken", licensesPath(appVPP) + "?$skiptoken=", 400, "BadRequest", ""},
		{"truncated skiptoken", licensesPath(appVPP) + "?$skiptoken=" + valid[:20], 400, "BadRequest", ""},
		{"skiptoken of another app", licensesPath(appVPP2) + "?$skiptoken=" + valid, 400, "BadRequest", ""},
		{"skiptoken of another server", licensesPath(appVPP) + "?$skiptoken=" + skiptoken(otherServer.NextLink), 400, "BadRequest", ""},
		{"two skiptokens", licensesPath(appVPP) + "?$skiptoken=" + valid + "&$skiptoken=" + valid, 400, "BadRequest", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := get(t, s, token, tt.path)
			wantStatus(t, tt.name, got, tt.wantStatus, tt.wantCode)
			if tt.wantMessage != "" && got.err.Error.Message != tt.wantMessage {
				t.Errorf("message = %q, want %q", got.err.Error.Message, tt.wantMessage)
			}
		})
	}
}

func TestReadMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, explicitCatalogue())
	token := getToken(t, s)

	for _, path := range []string{appPath(appVPP), licensesPath(appVPP)} {
		for _, method := range []string{http.MethodPost, http.MethodDelete} {
			got := graphCall{method: method, path: path, token: token, body: `{}`}.do(t, s)
			wantStatus(t, method+" "+path, got, http.StatusMethodNotAllowed, "BadRequest")
			if allow := got.resp.Header.Get("Allow"); allow != http.MethodGet {
				t.Errorf("%s %s: Allow = %q, want GET", method, path, allow)
			}
		}
	}
	if got := s.Stats().ReadRequests; got != 0 {
		t.Errorf("ReadRequests = %d, want 0: only GET requests are reads", got)
	}
}

// TestReadSharedChecks checks that outages, tokens, the permission, faults and resets apply to
// reads as to writes.
func TestReadSharedChecks(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		noToken    bool
		wantStatus int
		wantCode   string
		wantFault  bool // any injected 5xx response
		wantReset  bool
	}{
		{name: "outage", opts: Options{Outages: []Outage{{0, time.Hour}}}, wantStatus: 503, wantCode: "ServiceUnavailable"},
		{name: "no token", noToken: true, wantStatus: 401, wantCode: "InvalidAuthenticationToken"},
		{name: "forbidden", opts: Options{Forbidden: true}, wantStatus: 403, wantCode: "Forbidden"},
		{name: "fault", opts: Options{FaultRate: 1}, wantFault: true},
		{name: "reset", opts: Options{ResetRate: 1}, wantReset: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Open = true
			s := newTestServer(t, tt.opts)
			token := ""
			if !tt.noToken {
				token = getToken(t, s)
			}

			for _, path := range []string{appPath(appVPP), licensesPath(appVPP)} {
				got, err := graphCall{method: http.MethodGet, path: path, token: token}.send(s)
				if tt.wantReset {
					if err == nil {
						t.Errorf("GET %s: status %d, want a dropped connection", path, got.resp.StatusCode)
					}
					continue
				}
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				if tt.wantFault {
					if got.resp.StatusCode < 500 {
						t.Errorf("GET %s: status = %d, want a 5xx fault", path, got.resp.StatusCode)
					}
					continue
				}
				wantStatus(t, "GET "+path, got, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestReadForbiddenNamesReadPermission(t *testing.T) {
	s := newTestServer(t, Options{Open: true, Forbidden: true})
	got := get(t, s, getToken(t, s), licensesPath(appVPP))
	wantStatus(t, "forbidden read", got, http.StatusForbidden, "Forbidden")
	if !strings.Contains(got.err.Error.Message, "DeviceManagementApps.Read.All") {
		t.Errorf("message = %q, want it to name DeviceManagementApps.Read.All", got.err.Error.Message)
	}
	if got := s.Stats().Forbidden; got != 1 {
		t.Errorf("Stats().Forbidden = %d, want 1", got)
	}
}

// TestReadThrottlingIndependent fills one window and checks that the other still admits requests.
func TestReadThrottlingIndependent(t *testing.T) {
	tests := []struct {
		name      string
		fillReads bool
	}{
		{"reads throttled, writes pass", true},
		{"writes throttled, reads pass", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Options{Open: true, WriteLimit: 2, ReadLimit: 3, WriteWindow: time.Hour, ReadWindow: time.Hour})
			token := getToken(t, s)
			read := func() graphResponse { return get(t, s, token, licensesPath(appVPP)) }
			write := func() graphResponse { return revoke(t, s, token, FormCast, appVPP, deviceOne) }

			filled, other := read, write
			filledLimit, otherLimit := 3, 2
			filledOK, otherOK := http.StatusOK, http.StatusNoContent
			if !tt.fillReads {
				filled, other = write, read
				filledLimit, otherLimit = 2, 3
				filledOK, otherOK = http.StatusNoContent, http.StatusOK
			}

			for i := range filledLimit {
				wantStatus(t, fmt.Sprintf("filling request %d", i+1), filled(), filledOK, "")
			}
			throttled := filled()
			wantStatus(t, "request over the limit", throttled, http.StatusTooManyRequests, "TooManyRequests")
			if throttled.resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 response has no Retry-After")
			}
			for i := range otherLimit {
				wantStatus(t, fmt.Sprintf("other kind, request %d", i+1), other(), otherOK, "")
			}
			wantStatus(t, "other kind over its own limit", other(), http.StatusTooManyRequests, "TooManyRequests")

			stats := s.Stats()
			if stats.ReadThrottled != 1 || stats.Throttled != 1 {
				t.Errorf("ReadThrottled, Throttled = %d, %d, want 1, 1", stats.ReadThrottled, stats.Throttled)
			}
			if stats.ReadRequests != 4 || stats.LicensePages != 3 {
				t.Errorf("ReadRequests, LicensePages = %d, %d, want 4, 3", stats.ReadRequests, stats.LicensePages)
			}
			if got := stats.ByStatus[http.StatusTooManyRequests]; got != 2 {
				t.Errorf("ByStatus[429] = %d, want 2", got)
			}
		})
	}
}

func TestSetReadLimit(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	for range 3 {
		wantStatus(t, "without a limit", get(t, s, token, appPath(appVPP)), http.StatusOK, "")
	}
	if err := s.SetReadLimit(3, time.Minute); err != nil {
		t.Fatalf("SetReadLimit: %v", err)
	}
	// The three reads before the call stay in the window.
	wantStatus(t, "limit reached", get(t, s, token, appPath(appVPP)), http.StatusTooManyRequests, "TooManyRequests")
	wantStatus(t, "write beside a full read window", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")

	if err := s.SetReadLimit(0, time.Minute); err != nil {
		t.Fatalf("SetReadLimit: %v", err)
	}
	wantStatus(t, "limit off", get(t, s, token, appPath(appVPP)), http.StatusOK, "")

	for _, bad := range []struct {
		limit  int
		window time.Duration
	}{{-1, time.Minute}, {1, 0}} {
		if err := s.SetReadLimit(bad.limit, bad.window); err == nil {
			t.Errorf("SetReadLimit(%d, %v) succeeded, want an error", bad.limit, bad.window)
		}
	}
}

// TestSetLimitsWhileRequestsFlow lowers and raises the write and read limits while workers send
// writes and reads, and waits for each change to show in the responses to requests sent after it.
func TestSetLimitsWhileRequestsFlow(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	type result struct {
		phase  int64
		read   bool
		status int
	}
	var phase atomic.Int64
	results := make(chan result)
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for worker := range 4 {
		workers.Go(func() {
			read := worker%2 == 1
			for {
				sentIn := phase.Load()
				var got graphResponse
				var err error
				if read {
					got, err = graphCall{method: http.MethodGet, path: licensesPath(appVPP), token: token}.send(s)
				} else {
					got, err = graphCall{path: revokePath(FormCast, appVPP), token: token, body: revokeBody(deviceOne)}.send(s)
				}
				status := 0
				if err == nil {
					status = got.resp.StatusCode
				}
				select {
				case results <- result{sentIn, read, status}:
				case <-stop:
					return
				}
			}
		})
	}
	defer func() {
		close(stop)
		workers.Wait()
	}()

	// waitFor reads results until one of the current phase matches, or fails after 10 s so that a
	// broken knob fails the test instead of hanging it.
	waitFor := func(label string, read bool, status int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case r := <-results:
				if r.status == 0 {
					t.Fatalf("%s: a request failed without a response", label)
				}
				if r.phase == phase.Load() && r.read == read && r.status == status {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no %d response to a request sent after the change", label, status)
			}
		}
	}
	change := func(label string, set func() error) {
		t.Helper()
		if err := set(); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		phase.Add(1)
	}

	waitFor("writes without a limit", false, http.StatusNoContent)
	change("lower the write limit", func() error { return s.SetWriteLimit(1, time.Hour) })
	waitFor("writes after lowering the write limit", false, http.StatusTooManyRequests)
	waitFor("reads while writes are throttled", true, http.StatusOK)

	change("raise the write limit", func() error { return s.SetWriteLimit(0, time.Hour) })
	waitFor("writes after raising the write limit", false, http.StatusNoContent)

	change("lower the read limit", func() error { return s.SetReadLimit(1, time.Hour) })
	waitFor("reads after lowering the read limit", true, http.StatusTooManyRequests)
	waitFor("writes while reads are throttled", false, http.StatusNoContent)

	change("raise the read limit", func() error { return s.SetReadLimit(0, time.Hour) })
	waitFor("reads after raising the read limit", true, http.StatusOK)
}

func TestAddLicenses(t *testing.T) {
	s := newTestServer(t, Options{LicensePageSize: 2})
	token := getToken(t, s)
	devices := slices.Sorted(slices.Values(randomGUIDs(9, 4)))

	// The app does not exist until the first call.
	wantStatus(t, "app before AddLicenses", get(t, s, token, appPath(appVPP)), http.StatusNotFound, "ResourceNotFound")
	if err := s.AddLicenses(strings.ToUpper(appVPP), true, []string{devices[0], strings.ToUpper(devices[1]), devices[0]}); err != nil {
		t.Fatalf("AddLicenses: %v", err)
	}
	wantStatus(t, "app after AddLicenses", get(t, s, token, appPath(appVPP)), http.StatusOK, "")
	if got := listLicenses(t, s, token, appVPP, 2); !slices.Equal(got.devices, devices[:2]) {
		t.Errorf("devices = %v, want %v", got.devices, devices[:2])
	}

	// devices[2] is unknown until it gets a license.
	wantStatus(t, "revoke an unknown device", revoke(t, s, token, FormCast, appVPP, devices[2]), http.StatusNotFound, "ResourceNotFound")
	if err := s.AddLicenses(appVPP, true, devices[2:]); err != nil {
		t.Fatalf("AddLicenses: %v", err)
	}
	wantStatus(t, "revoke an added device", revoke(t, s, token, FormCast, appVPP, devices[2]), http.StatusNoContent, "")
	if got := s.Stats().LicensesRemovedTotal; got != 1 {
		t.Errorf("LicensesRemovedTotal = %d, want 1", got)
	}
	if got := listLicenses(t, s, token, appVPP, 2); !slices.Equal(got.devices, []string{devices[0], devices[1], devices[3]}) {
		t.Errorf("devices after a revoke = %v, want all but %s", got.devices, devices[2])
	}

	// A revoked license comes back.
	if err := s.AddLicenses(appVPP, true, devices[2:3]); err != nil {
		t.Fatalf("AddLicenses: %v", err)
	}
	if got := listLicenses(t, s, token, appVPP, 2); !slices.Equal(got.devices, devices) {
		t.Errorf("devices after adding the revoked one again = %v, want %v", got.devices, devices)
	}

	// A non-VPP app.
	if err := s.AddLicenses(appNotVPP, false, []string{deviceOne}); err != nil {
		t.Fatalf("AddLicenses of a non-VPP app: %v", err)
	}
	got := get(t, s, token, appPath(appNotVPP))
	if !strings.Contains(string(got.body), DefaultNonVPPType) {
		t.Errorf("non-VPP app = %s, want the type %s", got.body, DefaultNonVPPType)
	}
	wantStatus(t, "revoke on a non-VPP app", revoke(t, s, token, FormCast, appNotVPP, deviceOne), http.StatusBadRequest, "BadRequest")
	wantStatus(t, "device known through a non-VPP app", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")

	rejected := []struct {
		name    string
		appID   string
		vpp     bool
		devices []string
	}{
		{"app id not a GUID", "not-a-guid", true, devices},
		{"device id not a GUID", appVPP2, true, []string{devices[0], "not-a-guid"}},
		{"existing VPP app as non-VPP", appVPP, false, devices},
		{"existing non-VPP app as VPP", appNotVPP, true, devices},
	}
	for _, tt := range rejected {
		if err := s.AddLicenses(tt.appID, tt.vpp, tt.devices); err == nil {
			t.Errorf("AddLicenses with %s succeeded, want an error", tt.name)
		}
	}
	// A rejected call changes nothing.
	wantStatus(t, "app of a rejected call", get(t, s, token, appPath(appVPP2)), http.StatusNotFound, "ResourceNotFound")
	if got := listLicenses(t, s, token, appVPP, 2); !slices.Equal(got.devices, devices) {
		t.Errorf("devices after rejected calls = %v, want %v", got.devices, devices)
	}
}

func TestAddLicensesOpenApp(t *testing.T) {
	s := newTestServer(t, Options{Open: true})
	token := getToken(t, s)

	if err := s.AddLicenses(appVPP, true, []string{deviceOne}); err != nil {
		t.Fatalf("AddLicenses: %v", err)
	}
	// The app is explicit now: deviceTwo exists in the open catalogue but holds no license for it.
	wantStatus(t, "revoke an added license", revoke(t, s, token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
	wantStatus(t, "revoke another device", revoke(t, s, token, FormCast, appVPP, deviceTwo), http.StatusNoContent, "")
	stats := s.Stats()
	if got := stats.LicensesRemoved[Pair{appVPP, deviceOne}]; got != 1 {
		t.Errorf("LicensesRemoved[appVPP/deviceOne] = %d, want 1", got)
	}
	if got := stats.NoOpRevokes[Pair{appVPP, deviceTwo}]; got != 1 {
		t.Errorf("NoOpRevokes[appVPP/deviceTwo] = %d, want 1", got)
	}
}

func TestReadProcessBeforeLatency(t *testing.T) {
	opts := explicitCatalogue()
	opts.ProcessBeforeLatency = true
	opts.LatencyMin = time.Millisecond
	opts.LicensePageSize = 1
	s := newTestServer(t, opts)
	token := getToken(t, s)

	// The response waits in memory during the latency, so its body and headers must survive that.
	got := listLicenses(t, s, token, appVPP, 1)
	if want := []string{deviceOne, deviceTwo}; !slices.Equal(got.devices, want) {
		t.Errorf("devices = %v, want %v", got.devices, want)
	}
	app := get(t, s, token, appPath(appVPP))
	wantStatus(t, "read app", app, http.StatusOK, "")
	if !isGUID(app.resp.Header.Get("request-id")) {
		t.Errorf("request-id = %q, want a GUID", app.resp.Header.Get("request-id"))
	}
	if contentType := app.resp.Header.Get("Content-Type"); !strings.HasPrefix(contentType, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", contentType)
	}
}
