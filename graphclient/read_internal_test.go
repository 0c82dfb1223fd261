package graphclient

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestDecodeLicensePage(t *testing.T) {
	const (
		device1 = "36f675cc-81e7-4ef5-a8e2-5d940ed90475"
		device2 = "6cad4a26-8d11-4ece-9738-f7d93d9c1724"
		next    = "https://graph.microsoft.com/beta/deviceAppManagement/mobileApps/x/microsoft.graph.iosVppApp/assignedLicenses?$skiptoken=abc"
	)
	deviceLicense := func(id string) string {
		return `{"@odata.type":"#microsoft.graph.iosVppAppAssignedDeviceLicense","id":"l-` + id + `","managedDeviceId":"` + id +
			`","deviceName":"iPad","userId":null,"userName":null,"userEmailAddress":null,"userPrincipalName":null}`
	}
	userLicense := `{"@odata.type":"#microsoft.graph.iosVppAppAssignedUserLicense","id":"u1","userId":"b1c5","userPrincipalName":"a@example.com"}`

	tests := []struct {
		name     string
		body     string
		wantIDs  []string
		wantNext string
	}{
		{
			name:     "device and user licenses",
			body:     `{"@odata.context":"ctx","value":[` + deviceLicense(device1) + `,` + userLicense + `,` + deviceLicense(device2) + `],"@odata.nextLink":"` + next + `"}`,
			wantIDs:  []string{device1, device2},
			wantNext: next,
		},
		{
			name:    "last page",
			body:    `{"value":[` + deviceLicense(device1) + `]}`,
			wantIDs: []string{device1},
		},
		{
			name:     "next link before value",
			body:     `{"@odata.nextLink":"` + next + `","value":[` + deviceLicense(device2) + `]}`,
			wantIDs:  []string{device2},
			wantNext: next,
		},
		{
			name: "only user licenses",
			body: `{"value":[` + userLicense + `]}`,
		},
		{
			name: "device license with null managedDeviceId",
			body: `{"value":[{"@odata.type":"#microsoft.graph.iosVppAppAssignedDeviceLicense","id":"x","managedDeviceId":null}]}`,
		},
		{
			name:    "entry without a type",
			body:    `{"value":[{"id":"x","managedDeviceId":"` + device1 + `"}]}`,
			wantIDs: []string{device1},
		},
		{
			name: "user license that names a device",
			body: `{"value":[{"@odata.type":"#microsoft.graph.iosVppAppAssignedUserLicense","managedDeviceId":"` + device1 + `"}]}`,
		},
		{
			name:    "unknown fields of every kind",
			body:    `{"a":{"b":[1,{"c":null}]},"value":[` + deviceLicense(device1) + `],"n":1.5,"t":true,"s":"x"}` + "\n",
			wantIDs: []string{device1},
		},
		{name: "empty value", body: `{"value":[]}`},
		{name: "null value", body: `{"value":null}`},
		{name: "no value", body: `{"@odata.context":"ctx"}`},
		{name: "null next link", body: `{"value":[],"@odata.nextLink":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var page LicensePage
			if err := decodeLicensePage(strings.NewReader(tt.body), &page); err != nil {
				t.Fatalf("decodeLicensePage: %v", err)
			}
			if !slices.Equal(page.DeviceIDs, tt.wantIDs) {
				t.Errorf("DeviceIDs = %q, want %q", page.DeviceIDs, tt.wantIDs)
			}
			if page.Next != tt.wantNext {
				t.Errorf("Next = %q, want %q", page.Next, tt.wantNext)
			}
		})
	}
}

func TestDecodeLicensePageInvalid(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"empty body", ""},
		{"only spaces", "  \n"},
		{"not JSON", "<html>gateway</html>"},
		{"top-level array", `[{"managedDeviceId":"x"}]`},
		{"top-level null", `null`},
		{"value is an object", `{"value":{"managedDeviceId":"x"}}`},
		{"value is a string", `{"value":"x"}`},
		{"entry is a string", `{"value":["x"]}`},
		{"managedDeviceId is a number", `{"value":[{"managedDeviceId":5}]}`},
		{"next link is a number", `{"value":[],"@odata.nextLink":5}`},
		{"missing closing brace", `{"value":[]`},
		{"missing value after key", `{"value"`},
		{"bad syntax inside value", `{"value":[{"managedDeviceId":"x",}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var page LicensePage
			err := decodeLicensePage(strings.NewReader(tt.body), &page)
			if !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("decodeLicensePage(%q) = %v, want an error wrapping ErrInvalidResponse", tt.body, err)
			}
		})
	}
}

// cutReader returns its data and then io.ErrUnexpectedEOF, as net/http does for a body that the
// connection cut short.
type cutReader struct{ data io.Reader }

func (r cutReader) Read(p []byte) (int, error) {
	n, err := r.data.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestDecodeLicensePageCutShort(t *testing.T) {
	var page LicensePage
	err := decodeLicensePage(cutReader{strings.NewReader(`{"value":[{"managedDeviceId":"x"},`)}, &page)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error = %v, want io.ErrUnexpectedEOF", err)
	}
	if errors.Is(err, ErrInvalidResponse) {
		t.Errorf("error = %v wraps ErrInvalidResponse, want a connection error that the caller may retry", err)
	}
}

func TestIsUnder(t *testing.T) {
	root, err := url.Parse("https://127.0.0.1:8443/beta")
	if err != nil {
		t.Fatal(err)
	}
	const licenses = "/beta/deviceAppManagement/mobileApps/a/microsoft.graph.iosVppApp/assignedLicenses?$skiptoken=x"
	tests := []struct {
		link string
		want bool
	}{
		{"https://127.0.0.1:8443" + licenses, true},
		{"HTTPS://127.0.0.1:8443" + licenses, true},
		{"https://127.0.0.1:8443/beta/x", true},
		{"http://127.0.0.1:8443" + licenses, false},
		{"https://127.0.0.1:8444" + licenses, false},
		{"https://127.0.0.1" + licenses, false},
		{"https://127.0.0.2:8443" + licenses, false},
		{"https://localhost:8443" + licenses, false},
		{"https://user:pass@127.0.0.1:8443" + licenses, false},
		{"https://127.0.0.1:8443/v1.0/deviceAppManagement/mobileApps", false},
		{"https://127.0.0.1:8443/betax/deviceAppManagement", false},
		{"https://127.0.0.1:8443/beta", false},
		{"https://127.0.0.1:8443/beta/../v1.0/me", false},
		{"https://127.0.0.1:8443/beta/%2e%2e/v1.0/me", false},
		{"https://127.0.0.1:8443/beta/./x", false},
		{licenses, false},
		{"//127.0.0.1:8443" + licenses, false},
		{"https:127.0.0.1:8443/beta/x", false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.link)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", tt.link, err)
		}
		if got := isUnder(u, root); got != tt.want {
			t.Errorf("isUnder(%q, %s) = %v, want %v", tt.link, root, got, tt.want)
		}
	}
}

func TestIsUnderDefaultPort(t *testing.T) {
	root, err := url.Parse("https://graph.microsoft.com/beta")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		link string
		want bool
	}{
		{"https://graph.microsoft.com/beta/x", true},
		{"https://GRAPH.microsoft.com:443/beta/x", true},
		{"https://graph.microsoft.com:8443/beta/x", false},
		{"https://graph.microsoft.com.example.net/beta/x", false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.link)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", tt.link, err)
		}
		if got := isUnder(u, root); got != tt.want {
			t.Errorf("isUnder(%q, %s) = %v, want %v", tt.link, root, got, tt.want)
		}
	}
}

func FuzzDecodeLicensePage(f *testing.F) {
	f.Add(`{"value":[{"@odata.type":"#microsoft.graph.iosVppAppAssignedDeviceLicense","managedDeviceId":"d"}],"@odata.nextLink":"n"}`)
	f.Add(`{"value":[{"@odata.type":"#microsoft.graph.iosVppAppAssignedUserLicense","userId":"u"}]}`)
	f.Add(`{"value":null}`)
	f.Add(`{"a":[{"b":{}}],"value":[]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		var page LicensePage
		err := decodeLicensePage(strings.NewReader(body), &page)
		if err != nil {
			if !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("decodeLicensePage(%q) = %v, want nil or an error wrapping ErrInvalidResponse", body, err)
			}
			return
		}
		if slices.Contains(page.DeviceIDs, "") {
			t.Errorf("decodeLicensePage(%q) kept an empty device id: %q", body, page.DeviceIDs)
		}
	})
}

func BenchmarkDecodeLicensePage(b *testing.B) {
	const entries = 1000
	var body strings.Builder
	body.WriteString(`{"@odata.context":"ctx","value":[`)
	for i := range entries {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"@odata.type":"#microsoft.graph.iosVppAppAssignedDeviceLicense","id":"%08x-aaaa-4bbb-8ccc-%012x",`+
			`"managedDeviceId":"%08x-1111-4222-8333-%012x","deviceName":"iPad-%08x","userId":null,"userName":null,`+
			`"userEmailAddress":null,"userPrincipalName":null}`, i, i, i, i, i)
	}
	body.WriteString(`],"@odata.nextLink":"https://graph.microsoft.com/beta/x?$skiptoken=abc"}`)
	data := body.String()

	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var page LicensePage
		if err := decodeLicensePage(strings.NewReader(data), &page); err != nil {
			b.Fatal(err)
		}
		if len(page.DeviceIDs) != entries {
			b.Fatalf("device ids = %d, want %d", len(page.DeviceIDs), entries)
		}
	}
}
