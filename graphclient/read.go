package graphclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxReadBody caps the body of a read response. 16 MiB holds about 60,000 device licenses in the
// documented format (about 270 bytes each, an estimate), and leaves room for a mobile app whose
// largeIcon (mimeContent) comes inline.
//
// NOTE: Graph does not document the page size of assignedLicenses, so the cap assumes far smaller pages.
const maxReadBody = 16 << 20

// OData types of the resources that the reads decode.
const (
	typeIOSVPPApp   = "#microsoft.graph.iosVppApp"
	typeUserLicense = "#microsoft.graph.iosVppAppAssignedUserLicense"
)

// App is the part of a mobile app that ReadApp decodes.
type App struct {
	ID string
	// ODataType is the app's @odata.type, such as "#microsoft.graph.iosVppApp".
	ODataType   string
	DisplayName string
	// RequestID is the service's request-id of the response.
	RequestID string
}

// IsVPP reports whether the app is an iosVppApp, the only type whose licenses can be revoked.
func (a App) IsVPP() bool { return a.ODataType == typeIOSVPPApp }

// LicensePage is one page of an app's license holders.
type LicensePage struct {
	// DeviceIDs are the managedDeviceId values of the page's device licenses, as Graph wrote them.
	// User licenses and entries without a managedDeviceId are left out.
	DeviceIDs []string
	// Next is the page's @odata.nextLink, or "" on the last page.
	Next string
	// RequestID is the service's request-id of the response.
	RequestID string
}

// Reads returns the number of read requests sent to Graph so far. Each attempt counts, including the
// repeat with a fresh token after a 401.
func (c *Client) Reads() int64 { return c.reads.Load() }

// ReadApp sends GET mobileApps/{appID}. An unknown app returns an *Error of Class NotFound. The other
// errors are those of RevokeDeviceLicense, apart from ErrActionUnavailable, and an error wrapping
// ErrInvalidResponse when the body is not a mobile app.
func (c *Client) ReadApp(ctx context.Context, appID string) (App, error) {
	var app App
	answer, err := c.get(ctx, c.root+appPath(appID), func(resp *http.Response) error {
		var body struct {
			ID          string `json:"id"`
			ODataType   string `json:"@odata.type"`
			DisplayName string `json:"displayName"`
		}
		err := decodeBody("mobile app", resp.Body, func(decoder *json.Decoder) error { return decoder.Decode(&body) })
		if err != nil {
			return err
		}
		if body.ODataType == "" {
			return fmt.Errorf("%w: mobile app has no @odata.type", ErrInvalidResponse)
		}
		app = App{ID: body.ID, ODataType: body.ODataType, DisplayName: body.DisplayName}
		return nil
	})
	if err != nil {
		return App{}, err
	}
	app.RequestID = answer.RequestID
	return app, nil
}

// ReadLicenses reads one page of the licenses of the iosVppApp appID: the first page when next is
// empty, and otherwise the page at next, a LicensePage.Next from the previous page, with appID unused.
// next must lie under the client's Graph URL (same scheme, host and port, and a path below the Graph
// URL's path), or ReadLicenses returns an error that wraps ErrUnsafeNextLink and names the link,
// without sending anything.
//
// An unknown app returns an *Error of Class NotFound. An app that is not an iosVppApp, and a skiptoken
// that the service no longer accepts, return an *Error of Class Permanent (400 BadRequest). The other
// errors are those of ReadApp.
func (c *Client) ReadLicenses(ctx context.Context, appID, next string) (LicensePage, error) {
	target := c.root + appPath(appID) + "/microsoft.graph.iosVppApp/assignedLicenses"
	if next != "" {
		if err := c.checkNextLink(next); err != nil {
			return LicensePage{}, err
		}
		target = next
	}

	var page LicensePage
	answer, err := c.get(ctx, target, func(resp *http.Response) error {
		page = LicensePage{}
		return decodeLicensePage(resp.Body, &page)
	})
	if err != nil {
		return LicensePage{}, err
	}
	page.RequestID = answer.RequestID
	return page, nil
}

// get sends GET target and passes a 2xx response to decode. When Graph rejects the token with 401,
// it sends the request once more with a fresh token.
func (c *Client) get(ctx context.Context, target string, decode func(*http.Response) error) (Result, error) {
	token, err := c.token(ctx, "")
	if err != nil {
		return Result{}, err
	}

	for tokenReplaced := false; ; tokenReplaced = true {
		answer, err := c.exchange(ctx, http.MethodGet, target, token, nil, decode)
		var graphErr *Error
		if err == nil || !errors.As(err, &graphErr) {
			return answer, err
		}
		if graphErr.Class() != Unauthorized || tokenReplaced {
			return Result{}, c.responseError(graphErr)
		}

		c.rejected.Add(1)
		if token, err = c.token(ctx, token); err != nil {
			return Result{}, err
		}
	}
}

func appPath(appID string) string {
	return "/deviceAppManagement/mobileApps/" + url.PathEscape(appID)
}

// checkNextLink returns an error wrapping ErrUnsafeNextLink unless link is an absolute URL under the
// client's Graph URL.
func (c *Client) checkNextLink(link string) error {
	u, err := url.Parse(link)
	if err == nil && isUnder(u, c.graphURL) {
		return nil
	}
	return fmt.Errorf("%w: %q is not under the graph URL %s, so it was not followed with the access token; "+
		"if the link is genuine, set --graph-url to the root that it starts with", ErrUnsafeNextLink, oneLine(link), c.root)
}

// isUnder reports whether u has the scheme, host and port of root and a path below root's path. A path
// with a "." or ".." segment is never under root, because a server that resolves it may leave root.
func isUnder(u, root *url.URL) bool {
	if u.Opaque != "" || u.User != nil || !strings.EqualFold(u.Scheme, root.Scheme) {
		return false
	}
	if !strings.EqualFold(u.Hostname(), root.Hostname()) || portOf(u) != portOf(root) {
		return false
	}
	if !strings.HasPrefix(u.Path, root.Path+"/") {
		return false
	}
	for segment := range strings.SplitSeq(u.Path, "/") {
		if segment == "." || segment == ".." {
			return false
		}
	}
	return true
}

// portOf returns u's port, or the default port of its scheme when u has none.
func portOf(u *url.URL) string {
	if port := u.Port(); port != "" {
		return port
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// decodeBody runs decode on a json.Decoder that reads body, and stops reading after maxReadBody
// bytes. An error of reading the body, such as a reset, a timeout or a body cut short, is returned as
// it is, because sending the request again may succeed. Every other error wraps ErrInvalidResponse:
// the body was complete as far as HTTP is concerned, so the service sent it this way.
func decodeBody(what string, body io.Reader, decode func(*json.Decoder) error) error {
	reader := &errorRecorder{reader: http.MaxBytesReader(nil, io.NopCloser(body), maxReadBody)}
	err := decode(json.NewDecoder(reader))
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(reader.err, &tooLarge):
		return fmt.Errorf("%w: %s is larger than %d MiB", ErrInvalidResponse, what, maxReadBody>>20)
	case reader.err != nil:
		return reader.err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s is empty or ends before its JSON does", ErrInvalidResponse, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidResponse, what, err)
}

// errorRecorder keeps the first error other than io.EOF that reading returned. json.Decoder reports a
// clean end of input inside a value as io.ErrUnexpectedEOF, which net/http also returns for a body
// that the connection cut short, so the decoder's error alone cannot tell them apart.
type errorRecorder struct {
	reader io.Reader
	err    error
}

func (r *errorRecorder) Read(p []byte) (int, error) {
	n, err := r.reader.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// decodeLicensePage reads a page of assignedLicenses into page, one entry at a time, so that memory
// holds the device ids and not the whole body. Its errors are those of decodeBody.
func decodeLicensePage(body io.Reader, page *LicensePage) error {
	return decodeBody("license page", body, func(decoder *json.Decoder) error {
		if err := expectDelim(decoder, '{'); err != nil {
			return err
		}
		for decoder.More() {
			key, err := decoder.Token()
			if err != nil {
				return err
			}
			switch key {
			case "value":
				err = decodeLicenses(decoder, page)
			case "@odata.nextLink":
				var next *string
				err = decoder.Decode(&next)
				if next != nil {
					page.Next = *next
				}
			default:
				var skipped json.RawMessage
				err = decoder.Decode(&skipped)
			}
			if err != nil {
				return err
			}
		}
		return expectDelim(decoder, '}')
	})
}

// decodeLicenses reads the value array of a license page, or null, and keeps the device licenses.
func decodeLicenses(decoder *json.Decoder, page *LicensePage) error {
	token, err := decoder.Token()
	if err != nil || token == nil {
		return err
	}
	if token != json.Delim('[') {
		return errors.New("value is not an array")
	}

	for decoder.More() {
		var entry struct {
			ODataType       string `json:"@odata.type"`
			ManagedDeviceID string `json:"managedDeviceId"`
		}
		if err := decoder.Decode(&entry); err != nil {
			return err
		}
		// A user license has no managedDeviceId, or null: only device licenses name a device.
		if entry.ODataType == typeUserLicense || entry.ManagedDeviceID == "" {
			continue
		}
		page.DeviceIDs = append(page.DeviceIDs, entry.ManagedDeviceID)
	}
	return expectDelim(decoder, ']')
}

// expectDelim reads the next token and returns an error unless it is want.
func expectDelim(decoder *json.Decoder, want json.Delim) error {
	token, err := decoder.Token()
	if err != nil {
		return err
	}
	if token != want {
		return fmt.Errorf("found %v where %v was expected", token, want)
	}
	return nil
}
