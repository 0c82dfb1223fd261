package graphclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"reclaim/graphclient"
	"reclaim/graphclient/graphsim"
)

const (
	vppAppType      = "#microsoft.graph.iosVppApp"
	licensesSegment = "/microsoft.graph.iosVppApp/assignedLicenses"
)

// deviceIDs returns n distinct lowercase device GUIDs, the spelling graphsim writes them in.
func deviceIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-1111-4222-8333-%012x", i+1, i+1)
	}
	return ids
}

// readAllLicenses follows the pages of app's licenses to the end and returns the device ids and the
// number of pages.
func readAllLicenses(t *testing.T, client *graphclient.Client, app string) ([]string, int) {
	t.Helper()
	var devices []string
	pages := 0
	next := ""
	for {
		page, err := client.ReadLicenses(context.Background(), app, next)
		if err != nil {
			t.Fatalf("ReadLicenses(%s, %q) on page %d: %v", app, next, pages+1, err)
		}
		pages++
		if page.RequestID == "" {
			t.Errorf("page %d has no request-id", pages)
		}
		devices = append(devices, page.DeviceIDs...)
		if page.Next == "" {
			return devices, pages
		}
		if pages > 1000 {
			t.Fatalf("more than 1000 pages; the last next link is %q", page.Next)
		}
		next = page.Next
	}
}

func TestReadApp(t *testing.T) {
	const lobApp = "0c8e6a2f-5b1d-4e7a-9f3c-2d4b6a8e0f11"
	sim := startSim(t, graphsim.Options{Apps: map[string]graphsim.App{
		vppApp:   {VPP: true, DisplayName: "Keynote", Licensed: []string{device1}},
		otherApp: {VPP: false},
		lobApp:   {VPP: false, ODataType: "#microsoft.graph.iosLobApp", DisplayName: "Field notes"},
	}})
	client := newClient(t, sim, nil)
	tests := []struct {
		name     string
		app      string
		wantType string
		wantName string
		wantVPP  bool
	}{
		{"VPP app", vppApp, vppAppType, "Keynote", true},
		{"store app", otherApp, graphsim.DefaultNonVPPType, "", false},
		{"line-of-business app", lobApp, "#microsoft.graph.iosLobApp", "Field notes", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, err := client.ReadApp(context.Background(), tt.app)
			if err != nil {
				t.Fatalf("ReadApp: %v", err)
			}
			if app.ID != tt.app {
				t.Errorf("ID = %q, want %q", app.ID, tt.app)
			}
			if app.ODataType != tt.wantType {
				t.Errorf("ODataType = %q, want %q", app.ODataType, tt.wantType)
			}
			if got := app.IsVPP(); got != tt.wantVPP {
				t.Errorf("IsVPP() = %v, want %v", got, tt.wantVPP)
			}
			if tt.wantName != "" && app.DisplayName != tt.wantName {
				t.Errorf("DisplayName = %q, want %q", app.DisplayName, tt.wantName)
			}
			if app.DisplayName == "" {
				t.Error("DisplayName is empty")
			}
			if app.RequestID == "" {
				t.Error("RequestID is empty")
			}
		})
	}
}

func TestReadAppUnknown(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	app, err := client.ReadApp(context.Background(), noApp)
	graphErr := asGraphError(t, err)
	if graphErr.Class() != graphclient.NotFound {
		t.Errorf("class = %v, want not_found", graphErr.Class())
	}
	if graphErr.StatusCode != http.StatusNotFound || graphErr.Code != "ResourceNotFound" {
		t.Errorf("error = %v, want 404 ResourceNotFound", graphErr)
	}
	if graphErr.RequestID == "" {
		t.Errorf("error %v has no request-id", graphErr)
	}
	if app != (graphclient.App{}) {
		t.Errorf("app = %+v with the error, want the zero App", app)
	}
}

func TestReadLicensesPages(t *testing.T) {
	devices := deviceIDs(25)
	sim := startSim(t, graphsim.Options{
		LicensePageSize: 4,
		Apps:            map[string]graphsim.App{vppApp: {VPP: true, Licensed: devices, UserLicenses: 7}},
	})
	client := newClient(t, sim, nil)

	got, pages := readAllLicenses(t, client, vppApp)
	slices.Sort(got)
	if !slices.Equal(got, devices) {
		t.Errorf("device ids = %q, want %q", got, devices)
	}
	// 25 device licenses and 7 user licenses, 4 entries per page.
	if pages != 8 {
		t.Errorf("pages = %d, want 8", pages)
	}
	if got := client.Reads(); got != int64(pages) {
		t.Errorf("Reads() = %d, want %d", got, pages)
	}
	if got := sim.Stats().LicensePages; got != pages {
		t.Errorf("license pages served = %d, want %d", got, pages)
	}
}

func TestReadLicensesOnePage(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	page, err := client.ReadLicenses(context.Background(), vppApp, "")
	if err != nil {
		t.Fatalf("ReadLicenses: %v", err)
	}
	slices.Sort(page.DeviceIDs)
	if want := []string{device1, device2}; !slices.Equal(page.DeviceIDs, want) {
		t.Errorf("DeviceIDs = %q, want %q", page.DeviceIDs, want)
	}
	if page.Next != "" {
		t.Errorf("Next = %q on the only page, want empty", page.Next)
	}
}

func TestReadLicensesAfterRevoke(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
		t.Fatal(err)
	}
	got, _ := readAllLicenses(t, client, vppApp)
	if want := []string{device2}; !slices.Equal(got, want) {
		t.Errorf("device ids after revoking %s = %q, want %q", device1, got, want)
	}
}

func TestReadLicensesErrors(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	staleLink := sim.GraphURL() + "/deviceAppManagement/mobileApps/" + vppApp + licensesSegment + "?$skiptoken=c3RhbGU"
	tests := []struct {
		name      string
		app, next string
		wantClass graphclient.Class
		wantCode  string
	}{
		{"unknown app", noApp, "", graphclient.NotFound, "ResourceNotFound"},
		{"not a VPP app", otherApp, "", graphclient.Permanent, "BadRequest"},
		{"stale skiptoken", vppApp, staleLink, graphclient.Permanent, "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := client.ReadLicenses(context.Background(), tt.app, tt.next)
			graphErr := asGraphError(t, err)
			if graphErr.Class() != tt.wantClass || graphErr.Code != tt.wantCode {
				t.Errorf("error = %v (class %v), want class %v code %s", graphErr, graphErr.Class(), tt.wantClass, tt.wantCode)
			}
			if page.DeviceIDs != nil || page.Next != "" {
				t.Errorf("page = %+v with the error, want the zero LicensePage", page)
			}
		})
	}
}

// recordingServer starts a TLS server on 127.0.0.1 that counts the requests it gets and serves
// handler, or 200 with an empty page when handler is nil.
func recordingServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if handler == nil {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"value":[]}`)
			return
		}
		handler(w, r)
	}))
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server.Listener = listener
	server.StartTLS()
	t.Cleanup(server.Close)
	return server, &requests
}

// newServerClient returns a client whose Graph URL is server's /beta, with a fixed token. The timeout
// leaves room for decoding a 16 MiB body under the race detector.
func newServerClient(t *testing.T, server *httptest.Server, token string) *graphclient.Client {
	t.Helper()
	graphURL, err := graphclient.ParseGraphURL(server.URL + "/beta")
	if err != nil {
		t.Fatal(err)
	}
	client, err := graphclient.New(graphclient.Options{
		GraphURL:   graphURL,
		Credential: fixedCredential{token: token},
		HTTPClient: server.Client(),
		Timeout:    time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func TestReadLicensesRejectsUnsafeNextLink(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	foreign, foreignRequests := recordingServer(t, nil)

	simURL := sim.URL()
	licenses := "/deviceAppManagement/mobileApps/" + vppApp + licensesSegment + "?$skiptoken=abc"
	links := []struct {
		name string
		link string
	}{
		{"another server", foreign.URL + "/beta" + licenses},
		{"http on the same host", "http" + strings.TrimPrefix(simURL, "https") + "/beta" + licenses},
		{"another path", simURL + "/v1.0" + licenses},
		{"path that climbs out", simURL + "/beta/../v1.0" + licenses},
		{"user information", strings.Replace(simURL, "https://", "https://user:secret@", 1) + "/beta" + licenses},
		{"relative link", "/beta" + licenses},
		{"not a URL", "https://[::1"},
	}
	for _, tt := range links {
		t.Run(tt.name, func(t *testing.T) {
			page, err := client.ReadLicenses(context.Background(), vppApp, tt.link)
			if !errors.Is(err, graphclient.ErrUnsafeNextLink) {
				t.Fatalf("ReadLicenses(%q) = %+v, %v; want an error wrapping ErrUnsafeNextLink", tt.link, page, err)
			}
			if !strings.Contains(err.Error(), tt.link) {
				t.Errorf("error %q does not name the link %q", err, tt.link)
			}
		})
	}

	if got := foreignRequests.Load(); got != 0 {
		t.Errorf("requests to the other server = %d, want 0", got)
	}
	if got := sim.Stats().GraphRequests; got != 0 {
		t.Errorf("Graph requests = %d, want 0", got)
	}
	if got := client.Reads(); got != 0 {
		t.Errorf("Reads() = %d, want 0", got)
	}
}

func TestReadLicensesForeignNextLinkFromPage(t *testing.T) {
	const token = "token-for-graph-only"
	foreign, foreignRequests := recordingServer(t, nil)
	foreignLink := foreign.URL + "/beta/deviceAppManagement/mobileApps/" + vppApp + licensesSegment + "?$skiptoken=abc"
	graph, graphRequests := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"value":[{"@odata.type":"#microsoft.graph.iosVppAppAssignedDeviceLicense","managedDeviceId":%q}],"@odata.nextLink":%q}`,
			device1, foreignLink)
	})
	client := newServerClient(t, graph, token)

	page, err := client.ReadLicenses(context.Background(), vppApp, "")
	if err != nil {
		t.Fatalf("first page: %v", err)
	}
	if page.Next != foreignLink {
		t.Fatalf("Next = %q, want %q", page.Next, foreignLink)
	}
	_, err = client.ReadLicenses(context.Background(), vppApp, page.Next)
	if !errors.Is(err, graphclient.ErrUnsafeNextLink) {
		t.Fatalf("second page: error = %v, want an error wrapping ErrUnsafeNextLink", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error %q contains the token", err)
	}
	if got := foreignRequests.Load(); got != 0 {
		t.Errorf("requests to the server of the next link = %d, want 0", got)
	}
	if got := graphRequests.Load(); got != 1 {
		t.Errorf("requests to Graph = %d, want 1", got)
	}
}

func TestReadsThrottled(t *testing.T) {
	reads := []struct {
		name string
		read func(*graphclient.Client) error
	}{
		{"ReadApp", func(c *graphclient.Client) error {
			_, err := c.ReadApp(context.Background(), vppApp)
			return err
		}},
		{"ReadLicenses", func(c *graphclient.Client) error {
			_, err := c.ReadLicenses(context.Background(), vppApp, "")
			return err
		}},
	}
	styles := []graphsim.RetryAfterStyle{graphsim.RetryAfterSeconds, graphsim.RetryAfterDecimal, graphsim.RetryAfterDate}
	for _, read := range reads {
		for _, style := range styles {
			t.Run(read.name+"/"+string(style), func(t *testing.T) {
				sim := startSim(t, graphsim.Options{ReadLimit: 1, ReadWindow: 3 * time.Second, RetryAfter: style})
				client := newClient(t, sim, nil)
				if err := read.read(client); err != nil {
					t.Fatalf("first read: %v", err)
				}

				graphErr := asGraphError(t, read.read(client))
				if graphErr.Class() != graphclient.Throttled || graphErr.Code != "TooManyRequests" {
					t.Fatalf("second read: error %v (class %v), want throttled TooManyRequests", graphErr, graphErr.Class())
				}
				// The window frees its slot about 3 s after the first read; whole-second styles round up.
				if graphErr.RetryAfter < time.Second || graphErr.RetryAfter > 5*time.Second {
					t.Errorf("RetryAfter = %v, want between 1s and 5s", graphErr.RetryAfter)
				}

				// Writes have a window of their own.
				if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
					t.Errorf("write after a throttled read: %v", err)
				}
				if got := client.Reads(); got != 2 {
					t.Errorf("Reads() = %d, want 2", got)
				}
				if got := client.Sent(); got != 1 {
					t.Errorf("Sent() = %d, want 1", got)
				}
			})
		}
	}
}

func TestReadsCounted(t *testing.T) {
	sim := startSim(t, graphsim.Options{LicensePageSize: 1})
	client := newClient(t, sim, nil)

	if _, err := client.ReadApp(context.Background(), vppApp); err != nil {
		t.Fatal(err)
	}
	_, pages := readAllLicenses(t, client, vppApp)
	if pages != 2 {
		t.Fatalf("pages = %d, want 2", pages)
	}
	if _, err := client.ReadApp(context.Background(), noApp); err == nil {
		t.Errorf("ReadApp(%s) = nil error for an unknown app", noApp)
	}
	if got := client.Reads(); got != 4 {
		t.Errorf("Reads() = %d after 4 reads, want 4", got)
	}
	if got := client.Sent(); got != 0 {
		t.Errorf("Sent() = %d after reads only, want 0", got)
	}

	if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false); err != nil {
		t.Fatal(err)
	}
	if got := client.Sent(); got != 1 {
		t.Errorf("Sent() = %d after one write, want 1", got)
	}
	if got := client.Reads(); got != 4 {
		t.Errorf("Reads() = %d after a write, want 4", got)
	}
	if got := sim.Stats().ReadRequests; got != 4 {
		t.Errorf("read requests the simulator got = %d, want 4", got)
	}
}

func TestReadsAndWritesConcurrently(t *testing.T) {
	devices := deviceIDs(40)
	sim := startSim(t, graphsim.Options{
		LicensePageSize: 3,
		Apps:            map[string]graphsim.App{vppApp: {VPP: true, Licensed: devices}},
	})
	client := newClient(t, sim, nil)

	var wg sync.WaitGroup
	for worker := range 4 {
		wg.Go(func() {
			readAllLicenses(t, client, vppApp)
			for _, device := range devices[worker*10 : worker*10+10] {
				if _, err := client.RevokeDeviceLicense(context.Background(), vppApp, device, false); err != nil {
					t.Errorf("RevokeDeviceLicense(%s): %v", device, err)
				}
			}
		})
	}
	wg.Wait()

	stats := sim.Stats()
	if got := client.Reads(); got != int64(stats.ReadRequests) {
		t.Errorf("Reads() = %d, want %d, the read requests the simulator got", got, stats.ReadRequests)
	}
	if got := client.Sent(); got != 40 {
		t.Errorf("Sent() = %d, want 40", got)
	}
	if left, _ := readAllLicenses(t, client, vppApp); len(left) != 0 {
		t.Errorf("licenses left = %q, want none", left)
	}
}

func TestReadRefreshesRejectedToken(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, nil)
	if _, err := client.ReadApp(context.Background(), vppApp); err != nil {
		t.Fatal(err)
	}

	sim.ExpireTokens()
	if _, err := client.ReadLicenses(context.Background(), vppApp, ""); err != nil {
		t.Fatalf("after the server expired tokens: %v", err)
	}
	stats := sim.Stats()
	if stats.Unauthorized != 1 || stats.TokensIssued != 2 {
		t.Errorf("unauthorized %d, tokens issued %d; want 1 and 2", stats.Unauthorized, stats.TokensIssued)
	}
	if got := client.RejectedTokens(); got != 1 {
		t.Errorf("RejectedTokens() = %d, want 1", got)
	}
	if got := client.Reads(); got != 3 {
		t.Errorf("Reads() = %d, want 3 (one read, then a 401 and its repeat)", got)
	}
}

func TestReadSecondUnauthorizedIsAuthError(t *testing.T) {
	sim := startSim(t, graphsim.Options{})
	client := newClient(t, sim, func(o *graphclient.Options) {
		o.Credential = fixedCredential{token: "token-from-another-tenant"}
		o.NewCredential = nil
	})
	_, err := client.ReadApp(context.Background(), vppApp)
	var authErr *graphclient.AuthError
	if !errors.As(err, &authErr) || authErr.Rejected == nil {
		t.Fatalf("error = %v, want an AuthError with Graph's rejection", err)
	}
	if got := sim.Stats().Unauthorized; got != 2 {
		t.Errorf("401 responses = %d, want 2 (first try and one retry)", got)
	}
}

func TestReadForbidden(t *testing.T) {
	sim := startSim(t, graphsim.Options{Forbidden: true})
	client := newClient(t, sim, nil)
	_, err := client.ReadLicenses(context.Background(), vppApp, "")
	if !errors.Is(err, graphclient.ErrForbidden) {
		t.Fatalf("error = %v, want ErrForbidden", err)
	}
	if graphErr := asGraphError(t, err); graphErr.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", graphErr.StatusCode)
	}
}

func TestReadTransportErrors(t *testing.T) {
	t.Run("connection reset", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{ResetRate: 1})
		client := newClient(t, sim, nil)
		_, err := client.ReadLicenses(context.Background(), vppApp, "")
		var transportErr *graphclient.TransportError
		if !errors.As(err, &transportErr) || !transportErr.Retryable() || transportErr.Timeout {
			t.Errorf("error = %v, want a retryable TransportError that is not a timeout", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{LatencyMin: 2 * time.Second})
		client := newClient(t, sim, func(o *graphclient.Options) { o.Timeout = 200 * time.Millisecond })
		_, err := client.ReadApp(context.Background(), vppApp)
		var transportErr *graphclient.TransportError
		if !errors.As(err, &transportErr) || !transportErr.Timeout || !transportErr.Retryable() {
			t.Errorf("error = %v, want a retryable TransportError with Timeout", err)
		}
	})
	t.Run("service fault", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{FaultRate: 1})
		client := newClient(t, sim, nil)
		_, err := client.ReadLicenses(context.Background(), vppApp, "")
		if graphErr := asGraphError(t, err); graphErr.Class() != graphclient.Transient {
			t.Errorf("class = %v, want transient", graphErr.Class())
		}
	})
	t.Run("outage", func(t *testing.T) {
		sim := startSim(t, graphsim.Options{})
		sim.SetOutage(true)
		client := newClient(t, sim, nil)
		_, err := client.ReadApp(context.Background(), vppApp)
		if graphErr := asGraphError(t, err); graphErr.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status = %d, want 503", graphErr.StatusCode)
		}
	})
}

func TestReadInvalidBodies(t *testing.T) {
	entry := fmt.Sprintf(`{"@odata.type":"#microsoft.graph.iosVppAppAssignedDeviceLicense","managedDeviceId":%q},`, device1)
	entries := []byte(strings.Repeat(entry, (1<<20)/len(entry)))
	largePage := func(w http.ResponseWriter, r *http.Request) {
		// 17 MiB of entries in a page that never ends.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"value":[`)
		for range 17 {
			if _, err := w.Write(entries); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantText string
	}{
		{"HTML instead of JSON", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "<html>proxy error</html>")
		}, "invalid character"},
		{"empty body", func(w http.ResponseWriter, r *http.Request) {}, "is empty"},
		{"value is an object", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"value":{}}`)
		}, "value is not an array"},
		{"body over the cap", largePage, "larger than 16 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, _ := recordingServer(t, tt.handler)
			client := newServerClient(t, server, "token")
			_, err := client.ReadLicenses(context.Background(), vppApp, "")
			if !errors.Is(err, graphclient.ErrInvalidResponse) {
				t.Fatalf("error = %v, want an error wrapping ErrInvalidResponse", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if !strings.Contains(err.Error(), "client-request-id ") {
				t.Errorf("error %q does not carry the client-request-id", err)
			}
		})
	}
}

func TestReadAppWithoutType(t *testing.T) {
	server, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"displayName":"No type"}`, vppApp)
	})
	client := newServerClient(t, server, "token")
	_, err := client.ReadApp(context.Background(), vppApp)
	if !errors.Is(err, graphclient.ErrInvalidResponse) {
		t.Errorf("error = %v, want an error wrapping ErrInvalidResponse", err)
	}
}

func TestReadBodyCutShort(t *testing.T) {
	server, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		fmt.Fprint(w, `{"value":[{"managedDeviceId":`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	client := newServerClient(t, server, "token")
	_, err := client.ReadLicenses(context.Background(), vppApp, "")
	var transportErr *graphclient.TransportError
	if !errors.As(err, &transportErr) || !transportErr.Retryable() {
		t.Fatalf("error = %v, want a retryable TransportError", err)
	}
	if errors.Is(err, graphclient.ErrInvalidResponse) {
		t.Errorf("error = %v wraps ErrInvalidResponse, want a connection error", err)
	}
}

func TestReadBodyStalls(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	server, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"value":[`)
		w.(http.Flusher).Flush()
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	stallingClient := func(timeout time.Duration) *graphclient.Client {
		graphURL, err := graphclient.ParseGraphURL(server.URL + "/beta")
		if err != nil {
			t.Fatal(err)
		}
		client, err := graphclient.New(graphclient.Options{
			GraphURL:   graphURL,
			Credential: fixedCredential{token: "token"},
			HTTPClient: server.Client(),
			Timeout:    timeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		return client
	}

	t.Run("timeout", func(t *testing.T) {
		client := stallingClient(200 * time.Millisecond)
		_, err := client.ReadLicenses(context.Background(), vppApp, "")
		var transportErr *graphclient.TransportError
		if !errors.As(err, &transportErr) || !transportErr.Timeout || !transportErr.Retryable() {
			t.Errorf("error = %v, want a retryable TransportError with Timeout", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		client := stallingClient(time.Minute)
		for len(started) > 0 {
			<-started // left by the timeout case
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-started
			cancel()
		}()
		_, err := client.ReadLicenses(ctx, vppApp, "")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want the caller's context error", err)
		}
	})
}

func TestRedirectOutOfGraphURLNotFollowed(t *testing.T) {
	foreign, foreignRequests := recordingServer(t, nil)
	graph, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, foreign.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	client := newServerClient(t, graph, "token")
	requests := []struct {
		name string
		send func() error
	}{
		{"read", func() error {
			_, err := client.ReadLicenses(context.Background(), vppApp, "")
			return err
		}},
		{"write", func() error {
			_, err := client.RevokeDeviceLicense(context.Background(), vppApp, device1, false)
			return err
		}},
	}
	for _, request := range requests {
		t.Run(request.name, func(t *testing.T) {
			graphErr := asGraphError(t, request.send())
			if graphErr.StatusCode != http.StatusTemporaryRedirect || graphErr.Class() != graphclient.Permanent {
				t.Errorf("error = %v (class %v), want 307 and class permanent", graphErr, graphErr.Class())
			}
		})
	}
	if got := foreignRequests.Load(); got != 0 {
		t.Errorf("requests to the redirect target = %d, want 0", got)
	}
}

func TestRedirectUnderGraphURLFollowed(t *testing.T) {
	graph, requests := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/beta/moved/") {
			http.Redirect(w, r, "/beta/moved"+strings.TrimPrefix(r.URL.Path, "/beta"), http.StatusTemporaryRedirect)
			return
		}
		fmt.Fprintf(w, `{"value":[{"managedDeviceId":%q}]}`, device1)
	})
	client := newServerClient(t, graph, "token")
	page, err := client.ReadLicenses(context.Background(), vppApp, "")
	if err != nil {
		t.Fatalf("ReadLicenses: %v", err)
	}
	if want := []string{device1}; !slices.Equal(page.DeviceIDs, want) {
		t.Errorf("DeviceIDs = %q, want %q", page.DeviceIDs, want)
	}
	if got := requests.Load(); got != 2 {
		t.Errorf("requests = %d, want 2 (the redirect and its target)", got)
	}
}
