// Package graphclient speaks to Microsoft Graph and Entra for reclaim: it sends the beta action
// iosVppApp: revokeDeviceLicense over net/http, keeps an access token fresh, decodes Graph's error body
// and classifies every answer. It does not retry on its own, apart from the one repeat that a rejected
// token or a wrong URL form calls for: the caller owns retries, waits and rate limits.
//
// Reference: https://learn.microsoft.com/graph/api/intune-apps-iosvppapp-revokedevicelicense?view=graph-rest-beta
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

// Options configure a Client.
type Options struct {
	// GraphURL is the Graph root including the version, as returned by ParseGraphURL.
	GraphURL *url.URL
	// Credential provides access tokens for Scope(GraphURL).
	Credential azcore.TokenCredential
	// NewCredential, when set, builds a replacement for Credential after Graph rejects a token
	// that Credential keeps returning from its cache.
	NewCredential func() (azcore.TokenCredential, error)
	// HTTPClient sends the requests; nil means a client with its own connection pool.
	HTTPClient *http.Client
	// Timeout bounds each request, from sending to the end of the response. Zero means DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// Form is the URL form to try first, such as the one a previous run found to work.
	Form Form
}

// Client sends revokeDeviceLicense requests. It is safe for concurrent use.
type Client struct {
	root      string
	http      *http.Client
	tokens    *tokenSource
	timeout   time.Duration
	userAgent string
	route     *route
	now       func() time.Time
	sent      atomic.Int64
	rejected  atomic.Int64
}

// Result describes a revoke request that Graph accepted.
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
	return &Client{
		root: opts.GraphURL.String(),
		http: httpClient,
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

// Sent returns the number of HTTP requests sent to Graph so far, token requests not included.
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
		answer, err := c.send(ctx, form.path(appID), token, body)
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
		case graphErr.Class() == Unauthorized:
			return Result{}, &AuthError{Rejected: graphErr}
		case graphErr.Class() == Forbidden:
			return Result{}, fmt.Errorf("%w: %w", ErrForbidden, graphErr)
		case graphErr.Class() == NotFound || graphErr.Class() == Permanent:
			c.route.confirm(form)
		case graphErr.StatusCode == http.StatusServiceUnavailable || graphErr.StatusCode == http.StatusGatewayTimeout:
			// Graph's guidance for 503 is to come back on a new connection.
			c.http.CloseIdleConnections()
		}
		return Result{}, graphErr
	}
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

// send posts body to path with token and reads the response.
func (c *Client) send(ctx context.Context, path, token string, body []byte) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	clientRequestID := newGUID()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.root+path, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", clientRequestID)
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}

	c.sent.Add(1)
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
	// Read the (normally empty) body to the end so that the connection can be reused.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody)); err != nil {
		return Result{}, c.transportError(ctx, clientRequestID, err)
	}
	return Result{
		StatusCode:      resp.StatusCode,
		RequestID:       resp.Header.Get("request-id"),
		ClientRequestID: clientRequestID,
	}, nil
}

// transportError wraps a failure to get a response. When the caller's context ended, its error is
// returned instead, so a stop is not mistaken for a fault. The URL is left out of the message: it
// is always the same action, and net/http errors would repeat it on every line.
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
