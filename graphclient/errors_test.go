package graphclient

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		want   Class
	}{
		{200, Success}, {202, Success}, {204, Success},
		{400, Permanent}, {405, Permanent}, {409, Permanent}, {410, Permanent}, {412, Permanent}, {422, Permanent},
		{401, Unauthorized},
		{403, Forbidden},
		{404, NotFound},
		{408, Transient}, {500, Transient}, {502, Transient}, {503, Transient}, {504, Transient}, {509, Transient},
		{429, Throttled},
		{501, Permanent}, {505, Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.status); got != tt.want {
			t.Errorf("Classify(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestDecodeError(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
	}{
		{
			name:   "graph body",
			status: 429,
			header: http.Header{"Retry-After": {"0.249"}, "Request-Id": {"rid-header"}},
			body:   `{"error":{"code":"TooManyRequests","message":"Slow\ndown","innerError":{"request-id":"rid-body","client-request-id":"cid"}}}`,
			want:   Error{StatusCode: 429, Code: "TooManyRequests", Message: "Slow down", RequestID: "rid-header", RetryAfter: 249 * time.Millisecond},
		},
		{
			name:   "request id only in body",
			status: 404,
			header: http.Header{},
			body:   `{"error":{"code":"ResourceNotFound","message":"gone","innerError":{"request-id":"rid-body"}}}`,
			want:   Error{StatusCode: 404, Code: "ResourceNotFound", Message: "gone", RequestID: "rid-body"},
		},
		{
			name:   "date measured from the service's clock",
			status: 429,
			header: http.Header{"Date": {"Fri, 04 Dec 2026 11:00:00 GMT"}, "Retry-After": {"Fri, 04 Dec 2026 11:00:04 GMT"}},
			body:   `{"error":{"code":"TooManyRequests","message":""}}`,
			want:   Error{StatusCode: 429, Code: "TooManyRequests", RetryAfter: 4 * time.Second},
		},
		{
			name:   "intune message inside the message",
			status: 500,
			header: http.Header{},
			body:   `{"error":{"code":"InternalServerError","message":"{\"_version\": 3, \"Message\": \"An internal server error has occurred - Operation ID (for customer support): 0c21\", \"RetryAfter\": null}"}}`,
			want:   Error{StatusCode: 500, Code: "InternalServerError", Message: "An internal server error has occurred - Operation ID (for customer support): 0c21"},
		},
		{
			name:   "html from a proxy",
			status: 502,
			header: http.Header{},
			body:   "<html>\r\n<body>Bad gateway</body>\r\n</html>",
			want:   Error{StatusCode: 502, Message: "<html> <body>Bad gateway</body> </html>"},
		},
		{
			name:   "empty body",
			status: 503,
			header: http.Header{},
			want:   Error{StatusCode: 503},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: tt.header, Body: io.NopCloser(strings.NewReader(tt.body))}
			got := decodeError(resp, now)
			if *got != tt.want {
				t.Errorf("decodeError() = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestDecodeErrorCapsMessage(t *testing.T) {
	long := `{"error":{"code":"BadRequest","message":"` + strings.Repeat("é", 2000) + `"}}`
	resp := &http.Response{StatusCode: 400, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(long))}
	got := decodeError(resp, time.Now())
	if len(got.Message) > maxMessageLen+len("…") {
		t.Errorf("message has %d bytes, want at most %d", len(got.Message), maxMessageLen+len("…"))
	}
	if !strings.HasSuffix(got.Message, "é…") {
		t.Errorf("message ends %q, want a whole rune and an ellipsis", got.Message[len(got.Message)-10:])
	}
}

func TestIsSegmentError(t *testing.T) {
	tests := []struct {
		err  Error
		want bool
	}{
		{Error{StatusCode: 400, Code: "BadRequest", Message: "Resource not found for the segment 'revokeDeviceLicense'."}, true},
		{Error{StatusCode: 400, Code: "BadRequest", Message: "Invalid managedDeviceId"}, false},
		{Error{StatusCode: 404, Code: "ResourceNotFound", Message: "Resource not found for the segment 'x'."}, false},
	}
	for _, tt := range tests {
		if got := isSegmentError(&tt.err); got != tt.want {
			t.Errorf("isSegmentError(%+v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestTransportErrorRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"reset", errors.New("read: connection reset by peer"), true},
		{"eof", io.ErrUnexpectedEOF, true},
		{"timeout", context.DeadlineExceeded, true},
		{"temporary dns", &net.DNSError{Err: "server misbehaving", Name: "graph.example", IsTemporary: true}, true},
		{"unknown host", &net.DNSError{Err: "no such host", Name: "graph.example", IsNotFound: true}, false},
		{"untrusted certificate", &tlsWrap{x509.UnknownAuthorityError{}}, false},
		{"wrong host name", &tlsWrap{x509.HostnameError{Host: "graph.example"}}, false},
	}
	for _, tt := range tests {
		if got := (&TransportError{Err: tt.err}).Retryable(); got != tt.want {
			t.Errorf("%s: Retryable() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// tlsWrap wraps a certificate error the way crypto/tls does.
type tlsWrap struct{ err error }

func (w *tlsWrap) Error() string { return "tls: failed to verify certificate: " + w.err.Error() }
func (w *tlsWrap) Unwrap() error { return w.err }
