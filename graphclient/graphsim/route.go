package graphsim

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
)

// Segment names of the paths under /beta that the server serves.
const (
	segmentDeviceAppManagement = "deviceAppManagement"
	segmentMobileApps          = "mobileApps"
	segmentIOSVPPApp           = "microsoft.graph.iosVppApp"
	segmentRevoke              = "revokeDeviceLicense"
	segmentAssignedLicenses    = "assignedLicenses"
)

// endpoint is one of the Graph operations that the server serves.
type endpoint int

const (
	endpointUnknown      endpoint = iota
	endpointRevoke                // POST the revokeDeviceLicense action
	endpointReadApp               // GET one mobile app
	endpointReadLicenses          // GET the assignedLicenses of an iosVppApp
)

// method returns the only HTTP method that e accepts.
func (e endpoint) method() string {
	if e == endpointRevoke {
		return http.MethodPost
	}
	return http.MethodGet
}

// isRead reports whether e is a read, which the read window throttles, rather than a write.
func (e endpoint) isRead() bool {
	return e == endpointReadApp || e == endpointReadLicenses
}

// graphRoute is a parsed path under /beta. For an unknown path, endpoint is endpointUnknown and
// unknownSegment names the segment that Graph would report as not found. form is the URL form of
// a revoke and zero for the other endpoints.
type graphRoute struct {
	endpoint       endpoint
	form           Form
	appID          string
	unknownSegment string
}

// routeTemplates are the segments of the served paths after /beta. An empty name matches any
// segment: the app id, always the third segment.
var routeTemplates = []struct {
	endpoint endpoint
	form     Form
	names    []string
}{
	{endpointRevoke, FormUncast, []string{segmentDeviceAppManagement, segmentMobileApps, "", segmentRevoke}},
	{endpointRevoke, FormCast, []string{segmentDeviceAppManagement, segmentMobileApps, "", segmentIOSVPPApp, segmentRevoke}},
	{endpointReadApp, 0, []string{segmentDeviceAppManagement, segmentMobileApps, ""}},
	{endpointReadLicenses, 0, []string{segmentDeviceAppManagement, segmentMobileApps, "", segmentIOSVPPApp, segmentAssignedLicenses}},
}

// parseGraphPath parses a path under /beta. Segment names match without regard to case, as in
// Graph. The app id is not checked here.
func parseGraphPath(path string) graphRoute {
	rest := strings.Trim(strings.TrimPrefix(path, "/beta"), "/")
	if rest == "" {
		return graphRoute{unknownSegment: "beta"}
	}
	segments := strings.Split(rest, "/")

	// An unknown path reports the first segment after the longest match with a template, or the
	// last segment when the path is a prefix of one.
	longest := -1
	var unknown string
	for _, template := range routeTemplates {
		matched := 0
		for matched < len(template.names) && matched < len(segments) &&
			(template.names[matched] == "" || strings.EqualFold(segments[matched], template.names[matched])) {
			matched++
		}
		if matched == len(template.names) && matched == len(segments) {
			return graphRoute{endpoint: template.endpoint, form: template.form, appID: segments[2]}
		}
		if matched > longest {
			longest = matched
			unknown = segments[min(matched, len(segments)-1)]
		}
	}
	return graphRoute{unknownSegment: unknown}
}

// rejectedFormSegment returns the segment that Graph reports as not found when form is rejected: the
// type cast for the cast form, the action for the uncast form.
func rejectedFormSegment(form Form) string {
	if form == FormCast {
		return segmentIOSVPPApp
	}
	return segmentRevoke
}

// isGUID reports whether s is a GUID in the 8-4-4-4-12 hex form, in either case.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// newGUID returns a random version 4 GUID in lowercase.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
