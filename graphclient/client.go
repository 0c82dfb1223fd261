// Package graphclient speaks to Microsoft Graph and Entra for reclaim: it sends the beta action
// iosVppApp: revokeDeviceLicense over net/http, reads mobile apps and their assigned licenses, keeps an
// access token fresh, decodes Graph's error body and classifies every answer. It does not retry on its
// own, apart from the one repeat that a rejected token or a wrong URL form calls for: the caller owns
// retries, waits and rate limits.
//
// References:
//   - https://learn.microsoft.com/graph/api/intune-apps-iosvppapp-revokedevicelicense?view=graph-rest-beta
//   - https://learn.microsoft.com/graph/api/resources/intune-apps-iosvppapp
//   - https://learn.microsoft.com/graph/api/intune-apps-iosvppappassignedlicense-list
package graphclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// DefaultTimeout is the time one request may take when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxRedirects is the number of redirects followed for one request, the same as net/http's default.
const maxRedirects = 10

// Options configure a Client.
type Options struct {
	// GraphURL is the Graph root including the version, as returned by ParseGraphURL.
	GraphURL *url.URL
	// Credential provides access tokens for Scope(GraphURL).
	Credential azcore.TokenCredential
	// NewCredential, when set, builds a replacement for Credential after Graph rejects a token
	// that Credential keeps returning from its cache.
	NewCredential func() (azcore.TokenCredential, error)
	// HTTPClient sends the requests; nil means a client with its own connection pool. Its
	// CheckRedirect is replaced: the Client follows no redirect that leaves GraphURL.
	HTTPClient *http.Client
	// Timeout bounds each request, from sending to the end of the response. Zero means DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// Form is the URL form to try first, such as the one a previous run found to work.
	Form Form
}

// Client sends revokeDeviceLicense requests and reads apps and their licenses. It is safe for
// concurrent use.
type Client struct {
	root      string
	graphURL  *url.URL
	http      *http.Client
	tokens    *tokenSource
	timeout   time.Duration
	userAgent string
	route     *route
	now       func() time.Time
	sent      atomic.Int64
	reads     atomic.Int64
	rejected  atomic.Int64
}

// Result describes a request that Graph accepted.
type Result struct {
	StatusCode      int
	RequestID       string
	ClientRequestID string
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	if opts.GraphURL == nil || opts.Credential == nil {
		return nil, errors.New("graphclient: GraphURL and Credential are required")
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Transport: transport}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	// net/http (Go 1.26) sends the Authorization header along on a redirect to the same host on
	// another port, so a redirect out of the Graph URL is not followed and its 3xx becomes an *Error.
	guarded := *httpClient
	guarded.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects || !isUnder(req.URL, opts.GraphURL) {
			return http.ErrUseLastResponse
		}
		return nil
	}

	return &Client{
		root:     opts.GraphURL.String(),
		graphURL: opts.GraphURL,
		http:     &guarded,
		tokens: &tokenSource{
			scope:         Scope(opts.GraphURL),
			now:           time.Now,
			credential:    opts.Credential,
			newCredential: opts.NewCredential,
		},
		timeout:   timeout,
		userAgent: opts.UserAgent,
		route:     &route{form: opts.Form},
		now:       time.Now,
	}, nil
}

// Sent returns the number of write requests (revokeDeviceLicense) sent to Graph so far. Reads and
// token requests are not included.
func (c *Client) Sent() int64 { return c.sent.Load() }

// RejectedTokens returns the number of tokens that Graph rejected with 401, each of which was replaced.
func (c *Client) RejectedTokens() int64 { return c.rejected.Load() }

// Form returns the URL form in use.
func (c *Client) Form() Form { return c.route.current() }

// RevokeDeviceLicense asks Graph to take the license of app appID back from the Intune managed device
// deviceID. Both ids must be GUIDs. notify sets notifyManagedDevices.
//
// The returned error is one of:
//   - *Error for a response outside 2xx that the caller may record or retry; see Error.Class.
//   - *TransportError when no response arrived.
//   - *AuthError when no token can be had, or Graph rejected a fresh one. The run cannot go on.
//   - an error wrapping ErrForbidden and the *Error, for 403. The run cannot go on.
//   - an error wrapping ErrActionUnavailable when neither URL form exists. The run cannot go on.
//   - an error wrapping ErrUntrustedAuthority when the token endpoint's certificate is not trusted.
//   - the context's error when ctx ended.
func (c *Client) RevokeDeviceLicense(ctx context.Context, appID, deviceID string, notify bool) (Result, error) {
	body, err := json.Marshal(revokeBody{ManagedDeviceID: deviceID, NotifyManagedDevices: notify})
	if err != nil {
		return Result{}, err
	}
	token, err := c.token(ctx, "")
	if err != nil {
		return Result{}, err
	}

	tokenReplaced := false
	for {
		form := c.route.current()
		answer, err := c.exchange(ctx, http.MethodPost, c.root+form.path(appID), token, body, drainBody)
		if err == nil {
			c.route.confirm(form)
			return answer, nil
		}
		var graphErr *Error
		if !errors.As(err, &graphErr) {
			return Result{}, err
		}

		switch {
		case isSegmentError(graphErr):
			switch c.route.reject(form) {
			case retryOtherForm:
				continue
			case rowRejected:
				return Result{}, graphErr
			default:
				return Result{}, fmt.Errorf("%w: %s and %s both returned %q; check --graph-url",
					ErrActionUnavailable, FormCast.path(appID), FormUncast.path(appID), graphErr.Message)
			}
		case graphErr.Class() == Unauthorized && !tokenReplaced:
			tokenReplaced = true
			c.rejected.Add(1)
			if token, err = c.token(ctx, token); err != nil {
				return Result{}, err
			}
			continue
		case graphErr.Class() == NotFound || graphErr.Class() == Permanent:
			c.route.confirm(form)
		}
		return Result{}, c.responseError(graphErr)
	}
}

// responseError turns Graph's last response to a request into the error for the caller: an *AuthError
// for a 401 that a fresh token did not cure, an error wrapping ErrForbidden for 403, and graphErr
// itself otherwise.
func (c *Client) responseError(graphErr *Error) error {
	switch {
	case graphErr.Class() == Unauthorized:
		return &AuthError{Rejected: graphErr}
	case graphErr.Class() == Forbidden:
		return fmt.Errorf("%w: %w", ErrForbidden, graphErr)
	case graphErr.StatusCode == http.StatusServiceUnavailable || graphErr.StatusCode == http.StatusGatewayTimeout:
		// Graph's guidance for 503 is to come back on a new connection.
		c.http.CloseIdleConnections()
	}
	return graphErr
}

type revokeBody struct {
	ManagedDeviceID      string `json:"managedDeviceId"`
	NotifyManagedDevices bool   `json:"notifyManagedDevices"`
}

// token returns a fresh token, one other than rejected when rejected is not empty, and turns a failure
// into an error the caller can classify.
func (c *Client) token(ctx context.Context, rejected string) (string, error) {
	var token string
	var err error
	if rejected == "" {
		token, err = c.tokens.get(ctx)
	} else {
		token, err = c.tokens.replace(ctx, rejected)
	}
	if err == nil {
		return token, nil
	}

	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	var failed *azidentity.AuthenticationFailedError
	if !errors.As(err, &failed) {
		// No credential is configured, or the configuration is unusable.
		return "", &AuthError{Err: err}
	}
	if response := failed.RawResponse; response != nil && response.StatusCode >= 400 && response.StatusCode < 500 {
		// Entra refused the credentials themselves: a retry would be refused too.
		return "", &AuthError{Err: err}
	}
	// NOTE: azidentity keeps only the text of a transport error from MSAL, so a certificate the
	// machine does not trust can be recognised only by the texts of crypto/x509 and crypto/tls.
	if text := err.Error(); strings.Contains(text, "x509: ") || strings.Contains(text, "tls: failed to verify certificate") {
		return "", fmt.Errorf("%w: %w", ErrUntrustedAuthority, err)
	}
	// Entra could not be reached or failed on its side, which may pass.
	transportErr := &TransportError{Token: true, Err: err}
	if !transportErr.Retryable() {
		return "", &AuthError{Err: err}
	}
	return "", transportErr
}

// exchange sends one request to target with token and passes a 2xx response to decode, which reads
// the body. body is nil for a GET. A response outside 2xx becomes an *Error, a failure to get or read a
// response a *TransportError, and a decode error that wraps ErrInvalidResponse is returned as it is.
// Each call counts as one read for GET and as one write otherwise.
func (c *Client) exchange(ctx context.Context, method, target, token string, body []byte, decode func(*http.Response) error) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	clientRequestID := newGUID()
	var bodyReader io.Reader
	if body != nil {
		bodyReader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bodyReader)
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", clientRequestID)
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}

	if method == http.MethodGet {
		c.reads.Add(1)
	} else {
		c.sent.Add(1)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Result{}, c.transportError(ctx, clientRequestID, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		graphErr := decodeError(resp, c.now())
		if graphErr.ClientRequestID == "" {
			graphErr.ClientRequestID = clientRequestID
		}
		return Result{}, graphErr
	}
	requestID := resp.Header.Get("request-id")
	if err := decode(resp); err != nil {
		// A body read that the timeout or the caller cut off can end in a plain io.EOF, which would
		// look like a short body from the service. Go 1.26 does so when the server ends a chunked
		// response as the connection closes.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Result{}, c.transportError(ctx, clientRequestID, ctxErr)
		}
		if errors.Is(err, ErrInvalidResponse) {
			return Result{}, fmt.Errorf("%w (request-id %s, client-request-id %s)", err, requestID, clientRequestID)
		}
		return Result{}, c.transportError(ctx, clientRequestID, err)
	}
	// Read what the decoder left, such as a final newline, so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return Result{
		StatusCode:      resp.StatusCode,
		RequestID:       requestID,
		ClientRequestID: clientRequestID,
	}, nil
}

// drainBody reads the (normally empty) body of a revoke response to the end, so that the connection
// can be reused.
func drainBody(resp *http.Response) error {
	_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return err
}

// transportError wraps a failure to get a response. When the caller's context ended, its error is
// returned instead, so a stop is not mistaken for a fault. The URL is left out of the message: the
// caller knows the app, and net/http errors would repeat the URL on every line.
func (c *Client) transportError(ctx context.Context, clientRequestID string, err error) error {
	if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
		return parent
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return &TransportError{
		ClientRequestID: clientRequestID,
		Timeout:         errors.Is(err, context.DeadlineExceeded),
		Err:             err,
	}
}

// newGUID returns a random (version 4) GUID for client-request-id.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// CheckToken gets a token, so that a credential problem shows before the first request.
func (c *Client) CheckToken(ctx context.Context) error {
	_, err := c.token(ctx, "")
	return err
}
