package graphclient

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Class is the action a caller can take on a response from Graph.
type Class int

const (
	// Success: the request was accepted.
	Success Class = iota
	// NotFound: the app or the device does not exist. Retrying cannot help.
	NotFound
	// Permanent: Graph rejected this request for a reason of its own. Retrying cannot help.
	Permanent
	// Throttled: the app is over its request budget. Retry after the wait, and slow every worker down.
	Throttled
	// Transient: a fault on the way or in the service. Retry after a wait.
	Transient
	// Unauthorized: the token was rejected. Get a fresh token and retry once.
	Unauthorized
	// Forbidden: the app lacks the permission. Nothing of the same kind can succeed.
	Forbidden
)

var classNames = [...]string{"success", "not_found", "permanent", "throttled", "transient", "unauthorized", "forbidden"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Classify maps the HTTP status of a Graph response to the caller's next action.
func Classify(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return Success
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusUnauthorized:
		return Unauthorized
	case status == http.StatusForbidden:
		return Forbidden
	case status == http.StatusTooManyRequests:
		return Throttled
	// 408 and the gateway family are faults on the way; 509 is Graph's bandwidth cap. All pass with time.
	case status == http.StatusRequestTimeout,
		status == http.StatusInternalServerError,
		status == http.StatusBadGateway,
		status == http.StatusServiceUnavailable,
		status == http.StatusGatewayTimeout,
		status == 509:
		return Transient
	default:
		// 400 and every other status: Graph's own verdict on this request, which a retry repeats.
		return Permanent
	}
}

// Error is a Graph response with a status outside 2xx, decoded from Graph's error body
// {"error":{"code","message","innerError":{...}}}.
type Error struct {
	StatusCode int
	// Code is Graph's error code, such as "TooManyRequests"; empty when the body had none.
	Code string
	// Message is Graph's error message on one line, at most maxMessageLen bytes.
	Message string
	// RequestID is the service's request-id. Microsoft support requests it.
	RequestID       string
	ClientRequestID string
	// RetryAfter is the wait the service asked for; zero when it sent no usable Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph answered %d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	return b.String()
}

// Class returns what a caller can do about e.
func (e *Error) Class() Class { return Classify(e.StatusCode) }

// TransportError is a request that got no HTTP response: a timeout, a dropped connection, a DNS
// failure, or a token endpoint that could not be reached or failed on its side.
type TransportError struct {
	ClientRequestID string
	// Timeout is true when the per-request timeout expired.
	Timeout bool
	// Token is true when the failed request was the token request, not the Graph request.
	Token bool
	Err   error
}

func (e *TransportError) Error() string {
	switch {
	case e.Token:
		return "access token request failed: " + e.Err.Error()
	case e.Timeout:
		return "graph request timed out: " + e.Err.Error()
	}
	return "graph request failed: " + e.Err.Error()
}

func (e *TransportError) Unwrap() error { return e.Err }

// Retryable reports whether sending the request again may succeed. Certificate
// and name resolution failures are configuration problems that a retry repeats.
func (e *TransportError) Retryable() bool {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dns *net.DNSError
	switch {
	case errors.As(e.Err, &unknownAuthority), errors.As(e.Err, &hostname), errors.As(e.Err, &invalid):
		return false
	case errors.As(e.Err, &dns) && dns.IsNotFound:
		return false
	}
	return true
}

// AuthError is a failure to get a token, or a token Graph rejected even after a refresh.
// The credential's own error is kept; azidentity's messages carry no secret.
type AuthError struct {
	// Rejected is Graph's 401 response to a fresh token, or nil when getting the token failed.
	Rejected *Error
	Err      error
}

func (e *AuthError) Error() string {
	if e.Rejected != nil {
		return "graph rejected a fresh access token: " + e.Rejected.Error() +
			"; check that the token's audience matches --graph-url and that the app registration is enabled"
	}
	return "get access token: " + e.Err.Error()
}

func (e *AuthError) Unwrap() error {
	if e.Rejected != nil {
		return e.Rejected
	}
	return e.Err
}

// ErrForbidden is wrapped by errors for 403 responses, because the app registration lacks the permission.
var ErrForbidden = errors.New("graph rejected the request with 403: the app registration needs the application permission DeviceManagementApps.ReadWrite.All with admin consent")

// ErrUntrustedAuthority is wrapped when the token endpoint's TLS certificate is not trusted.
var ErrUntrustedAuthority = errors.New("the certificate of the token endpoint is not trusted; check AZURE_AUTHORITY_HOST, or trust a private authority through SSL_CERT_FILE")

// ErrActionUnavailable is wrapped when neither URL form of revokeDeviceLicense exists on the service.
var ErrActionUnavailable = errors.New("graph has no revokeDeviceLicense action at either URL form")

// ErrInvalidResponse is wrapped when the body of a 2xx response to a read is not the JSON that Graph
// documents, or is larger than 16 MiB. Sending the request again is unlikely to help.
var ErrInvalidResponse = errors.New("invalid response body from graph")

// ErrUnsafeNextLink is wrapped when an @odata.nextLink does not lie under the client's Graph URL. The
// client does not follow such a link, so that the access token goes to no other host or path.
var ErrUnsafeNextLink = errors.New("unsafe @odata.nextLink")

const (
	maxErrorBody  = 64 << 10
	maxMessageLen = 1000
)

// graphErrorBody is the JSON shape of Graph's error responses.
type graphErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// decodeError reads at most maxErrorBody bytes of resp's body into an *Error.
// A body that is not Graph's JSON still yields an Error with the status and a short excerpt.
func decodeError(resp *http.Response, now time.Time) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))

	e := &Error{
		StatusCode:      resp.StatusCode,
		RequestID:       resp.Header.Get("request-id"),
		ClientRequestID: resp.Header.Get("client-request-id"),
	}
	var parsed graphErrorBody
	if json.Unmarshal(body, &parsed) == nil && parsed.Error.Code != "" {
		e.Code = parsed.Error.Code
		e.Message = oneLine(innerMessage(parsed.Error.Message))
		if e.RequestID == "" {
			e.RequestID = parsed.Error.InnerError.RequestID
		}
	} else if len(body) > 0 {
		e.Message = oneLine(string(body))
	}

	reference := now
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		// The service computes an HTTP-date Retry-After on its own clock, so measure from its Date.
		reference = date
	}
	if wait, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), reference); ok {
		e.RetryAfter = wait
	}
	return e
}

// innerMessage returns the Message of the JSON object that Intune often puts inside Graph's message,
// such as {"_version": 3, "Message": "An internal server error has occurred - Operation ID ..."}, or
// message itself when it is not such an object.
func innerMessage(message string) string {
	var inner struct {
		Message string `json:"Message"`
	}
	if strings.HasPrefix(strings.TrimSpace(message), "{") && json.Unmarshal([]byte(message), &inner) == nil && inner.Message != "" {
		return inner.Message
	}
	return message
}

// oneLine turns s into a single line of printable text of at most maxMessageLen bytes.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessageLen {
		cut := maxMessageLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// isSegmentError reports whether e is Graph's answer for a path it does not know.
//
// NOTE: Graph gives this case no code of its own (it is "BadRequest"), so the message has to be
// matched. It is the only branch on a message in this package.
func isSegmentError(e *Error) bool {
	return e.StatusCode == http.StatusBadRequest &&
		strings.Contains(e.Message, "Resource not found for the segment")
}
