package graphsim

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Default values that New fills in for zero fields of Options.
const (
	DefaultTenantID      = "8e2c7b1a-3d4f-4a6b-9c0d-1e2f3a4b5c6d"
	DefaultClientID      = "2b9d4c6e-7f80-4a1b-8c2d-3e4f5a6b7c8d"
	DefaultUnknownPrefix = "00000000-"
	DefaultTokenLifetime = time.Hour
	DefaultWriteWindow   = 20 * time.Second
	DefaultReadWindow    = 20 * time.Second

	// DefaultLicensePageSize is the number of entries per page of assignedLicenses.
	DefaultLicensePageSize = 100
)

// Form is a set of URL forms of the revokeDeviceLicense action.
type Form int

const (
	// FormCast is .../mobileApps/{appId}/microsoft.graph.iosVppApp/revokeDeviceLicense.
	FormCast Form = 1 << iota
	// FormUncast is .../mobileApps/{appId}/revokeDeviceLicense.
	FormUncast

	// FormNone accepts neither form, like a tenant where the action does not exist. It has a bit
	// of its own because the zero Form in Options means FormBoth.
	FormNone

	// FormBoth accepts either form.
	FormBoth = FormCast | FormUncast
)

// String returns "cast", "uncast", "both" or "none", the names that ParseForm accepts.
func (f Form) String() string {
	switch f {
	case FormCast:
		return "cast"
	case FormUncast:
		return "uncast"
	case FormBoth:
		return "both"
	case FormNone:
		return "none"
	}
	return fmt.Sprintf("Form(%d)", int(f))
}

// ParseForm parses "cast", "uncast", "both" or "none".
func ParseForm(s string) (Form, error) {
	for _, f := range []Form{FormCast, FormUncast, FormBoth, FormNone} {
		if strings.EqualFold(s, f.String()) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("invalid URL form %q: want cast, uncast, both or none", s)
}

// RetryAfterStyle is the way a 429 response spells its Retry-After header.
type RetryAfterStyle string

// Retry-After styles seen in real Graph responses. Every style carries the true time until the
// throttling window admits the next request.
const (
	RetryAfterSeconds RetryAfterStyle = "seconds" // whole seconds, rounded up, at least 1: "3"
	RetryAfterDecimal RetryAfterStyle = "decimal" // seconds with three decimals, at least 0.001: "0.249"
	RetryAfterDate    RetryAfterStyle = "date"    // HTTP-date, rounded up to the next whole second
	RetryAfterList    RetryAfterStyle = "list"    // whole seconds written twice: "2, 2"
	RetryAfterNone    RetryAfterStyle = "none"    // no header at all
	RetryAfterRotate  RetryAfterStyle = "rotate"  // the five styles above in turn, one per 429 response
)

var rotatedStyles = []RetryAfterStyle{RetryAfterSeconds, RetryAfterDecimal, RetryAfterDate, RetryAfterList, RetryAfterNone}

// ParseRetryAfterStyle parses one of the style names above.
func ParseRetryAfterStyle(s string) (RetryAfterStyle, error) {
	style := RetryAfterStyle(strings.ToLower(s))
	if style == RetryAfterRotate {
		return style, nil
	}
	for _, known := range rotatedStyles {
		if style == known {
			return style, nil
		}
	}
	return "", fmt.Errorf("invalid Retry-After style %q: want seconds, decimal, date, list, none or rotate", s)
}

// App is one mobile app of an explicit catalogue.
type App struct {
	// VPP is true for an iosVppApp. Revoking a license of any other app, or listing its
	// assignedLicenses, responds with 400.
	VPP bool
	// ODataType is the @odata.type that GET mobileApps/{appId} returns for an app that is not a VPP
	// app. Empty means DefaultNonVPPType. A VPP app always returns #microsoft.graph.iosVppApp, so
	// for one this must be empty or that type.
	ODataType string
	// DisplayName is the displayName that GET mobileApps/{appId} returns. Empty means
	// "Simulated app " and the first 8 digits of the app id.
	DisplayName string
	// Licensed lists the managed device ids that hold a license for the app. They are known devices.
	Licensed []string
	// UserLicenses is the number of user licenses, which assignedLicenses lists among the device
	// licenses in a fixed order, so that clients are tested on skipping them. A revoke never
	// removes them.
	UserLicenses int
}

// Outage is a time range, relative to the server's start, during which every Graph request gets 503.
type Outage struct {
	Start, End time.Duration
}

// Options configures a Server. New rejects Options without ClientSecret or FederatedToken. Other
// zero fields take the defaults named on them, and a zero catalogue contains no app.
type Options struct {
	// Addr is the listen address, "127.0.0.1:PORT" or "localhost:PORT". Empty means 127.0.0.1 on a
	// free port. Any other host is rejected.
	Addr string

	// TenantID and ClientID are the only tenant and client the token endpoint accepts. They
	// default to DefaultTenantID and DefaultClientID.
	TenantID string
	ClientID string
	// ClientSecret is the secret the token endpoint accepts. Empty means that no secret is
	// accepted, and then FederatedToken must be set.
	ClientSecret string
	// FederatedToken is the client assertion the token endpoint accepts, as workload identity
	// sends it: the content of the federated token file. Empty means no assertion is accepted.
	FederatedToken string

	// TokenLifetime is how long the server honours an access token. TokenExpiresIn is the
	// expires_in that it advertises. Both default to DefaultTokenLifetime. A lifetime shorter than
	// the advertised one makes tokens expire under a client that trusts expires_in.
	TokenLifetime  time.Duration
	TokenExpiresIn time.Duration

	// Forms are the accepted URL forms of the revoke action. Zero means FormBoth.
	Forms Form

	// Open turns on the open catalogue: every app id is a VPP app and every device id a device
	// that holds a license for every app, except ids that start with UnknownPrefix, which do not
	// exist. Apps listed in Apps keep their explicit entry. An open catalogue cannot list every
	// device, so the assignedLicenses of an app outside Apps lists only the devices of Devices
	// that still hold its license. With Devices empty, that list is empty, although revokes of any
	// device succeed.
	Open bool
	// UnknownPrefix defaults to DefaultUnknownPrefix. Matching ignores case.
	UnknownPrefix string
	// Apps is the explicit catalogue, keyed by app id. Ids are GUIDs and matching ignores case.
	// Server.AddLicenses adds to it while the server runs.
	Apps map[string]App
	// Devices lists known managed device ids beyond those in App.Licensed. They are GUIDs.
	Devices []string

	// LicensePageSize is the maximum number of entries on one page of assignedLicenses. It
	// defaults to DefaultLicensePageSize.
	LicensePageSize int

	// WriteLimit is the number of writes that one client id may make in any WriteWindow. Zero
	// means no limit. WriteWindow defaults to DefaultWriteWindow. A 429 response takes no slot,
	// but a request that passes the limit does, even if it then gets a fault or a 400.
	WriteLimit  int
	WriteWindow time.Duration
	// ReadLimit and ReadWindow are the same for reads, in a window of their own, so reads never
	// take a write's slot or the reverse. ReadWindow defaults to DefaultReadWindow.
	// NOTE: Intune's limit of 1000 requests per 20 s counts writes too. The simulator counts only
	// reads against ReadLimit, so a client near both limits passes here where Intune may throttle it.
	ReadLimit  int
	ReadWindow time.Duration
	// RetryAfter is the style of the Retry-After header on 429 responses. Empty means
	// RetryAfterSeconds.
	RetryAfter RetryAfterStyle

	// FaultRate is the share of Graph requests, from 0 to 1, that get a 500, 502, 503 or 504
	// response. ResetRate is the share whose connection is dropped without a response. Their sum
	// must not exceed 1.
	FaultRate float64
	ResetRate float64
	// Seed seeds the random source for faults, resets and latency, so runs are repeatable in
	// distribution.
	Seed uint64

	// Every Graph response is delayed by a uniform random time in [LatencyMin, LatencyMax]. A zero
	// LatencyMax means LatencyMin.
	LatencyMin time.Duration
	LatencyMax time.Duration
	// ProcessBeforeLatency moves the latency from before the processing of a request to after it.
	// The server then decides the response, outage, throttling and faults included, applies and
	// counts the revoke, waits the latency, and writes the response only if the client is still
	// there. So the revoke of a client that goes away during the latency, as one killed with
	// requests in flight, takes effect all the same. Such a request counts in Stats.Canceled and
	// also in the counter of its decision, such as RevokeCalls or Throttled. Stats.ByStatus counts
	// only the responses written.
	ProcessBeforeLatency bool

	// Outages are the time ranges during which every Graph request gets 503.
	Outages []Outage

	// Forbidden makes the server respond with 403 to every authenticated request to a known
	// endpoint, reads included, as for an app without the permission that the endpoint requires.
	Forbidden bool

	// FixedSizeStats keeps the memory of Stats fixed for long benchmarks. The server then keeps no
	// set of client-request-id values, so Stats.DuplicateClientRequestIDs stays 0, and no counts per
	// pair, so Stats.RevokeCalls, LicensesRemoved and NoOpRevokes stay empty. The totals count on.
	// Without it, Stats grows by about 80 bytes per request with a new client-request-id and 220
	// bytes per pair whose license a revoke removed (measured with 200,000 of each, go1.26.8).
	FixedSizeStats bool

	// Logger receives one Debug record per response and the HTTP server's own errors at Warn.
	// Nil discards them. No record contains a secret or a token.
	Logger *slog.Logger
}

// Demo returns Options with Intune-like behaviour scaled for a demo run: an open catalogue, 20
// writes per 5 s so that a few 429 responses show up, 200 reads per 5 s, 40-150 ms latency, 2%
// faults and rotating Retry-After styles. ClientSecret is a new random value, so read it back to
// configure the client.
func Demo() Options {
	return Options{
		TenantID:     DefaultTenantID,
		ClientID:     DefaultClientID,
		ClientSecret: randomString(24),
		Open:         true,
		WriteLimit:   20,
		WriteWindow:  5 * time.Second,
		ReadLimit:    200,
		ReadWindow:   5 * time.Second,
		RetryAfter:   RetryAfterRotate,
		FaultRate:    0.02,
		LatencyMin:   40 * time.Millisecond,
		LatencyMax:   150 * time.Millisecond,
		Seed:         1,
	}
}

// withDefaults returns o with defaults filled in, or an error that names every invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.TenantID == "" {
		o.TenantID = DefaultTenantID
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.ClientSecret == "" && o.FederatedToken == "" {
		return o, errors.New("graphsim: no credential configured: set ClientSecret or FederatedToken")
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	if o.TokenExpiresIn == 0 {
		o.TokenExpiresIn = DefaultTokenLifetime
	}
	if o.Forms == 0 {
		o.Forms = FormBoth
	}
	if o.UnknownPrefix == "" {
		o.UnknownPrefix = DefaultUnknownPrefix
	}
	if o.WriteWindow == 0 {
		o.WriteWindow = DefaultWriteWindow
	}
	if o.ReadWindow == 0 {
		o.ReadWindow = DefaultReadWindow
	}
	if o.LicensePageSize == 0 {
		o.LicensePageSize = DefaultLicensePageSize
	}
	if o.RetryAfter == "" {
		o.RetryAfter = RetryAfterSeconds
	}
	if o.LatencyMax == 0 {
		o.LatencyMax = o.LatencyMin
	}

	checks := []error{
		validateTokenLifetime(o.TokenLifetime, o.TokenExpiresIn),
		validateForms(o.Forms),
		validateLimit("write", o.WriteLimit, o.WriteWindow),
		validateLimit("read", o.ReadLimit, o.ReadWindow),
		validatePageSize(o.LicensePageSize),
		validateStyle(o.RetryAfter),
		validateRates(o.FaultRate, o.ResetRate),
		validateLatency(o.LatencyMin, o.LatencyMax),
	}
	for _, outage := range o.Outages {
		if outage.Start < 0 || outage.End <= outage.Start {
			checks = append(checks, fmt.Errorf("invalid outage %v-%v: want 0 <= start < end", outage.Start, outage.End))
		}
	}
	if err := errors.Join(checks...); err != nil {
		return o, fmt.Errorf("graphsim: %w", err)
	}
	return o, nil
}

func validateTokenLifetime(lifetime, expiresIn time.Duration) error {
	if lifetime <= 0 || expiresIn <= 0 {
		return fmt.Errorf("invalid token lifetime %v or expires_in %v: want both above zero", lifetime, expiresIn)
	}
	return nil
}

func validateForms(forms Form) error {
	switch forms {
	case FormCast, FormUncast, FormBoth, FormNone:
		return nil
	}
	return fmt.Errorf("invalid URL forms %v: want FormCast, FormUncast, FormBoth or FormNone", forms)
}

// validateLimit checks a throttling limit. kind is "read" or "write".
func validateLimit(kind string, limit int, window time.Duration) error {
	if limit < 0 || window <= 0 {
		return fmt.Errorf("invalid %s limit %d per %v: want a limit of 0 or more and a window above zero", kind, limit, window)
	}
	return nil
}

func validatePageSize(size int) error {
	if size < 1 {
		return fmt.Errorf("invalid license page size %d: want 1 or more", size)
	}
	return nil
}

func validateStyle(style RetryAfterStyle) error {
	_, err := ParseRetryAfterStyle(string(style))
	return err
}

func validateRates(faultRate, resetRate float64) error {
	// The negated comparisons also reject NaN.
	if !(faultRate >= 0 && resetRate >= 0 && faultRate+resetRate <= 1) {
		return fmt.Errorf("invalid fault rate %v and reset rate %v: want each at least 0 and a sum of at most 1", faultRate, resetRate)
	}
	return nil
}

func validateLatency(minimum, maximum time.Duration) error {
	if minimum < 0 || maximum < minimum {
		return fmt.Errorf("invalid latency range %v-%v: want 0 <= min <= max", minimum, maximum)
	}
	return nil
}

// randomString returns n random bytes in unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
