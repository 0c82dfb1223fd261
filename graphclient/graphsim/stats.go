package graphsim

import (
	"fmt"
	"maps"
	"strings"
)

// Pair is one license: an app and a managed device, both as lowercase GUIDs. As a JSON map key
// it is written "appId/deviceId".
type Pair struct {
	AppID    string
	DeviceID string
}

func newPair(appID, deviceID string) Pair {
	return Pair{AppID: strings.ToLower(appID), DeviceID: strings.ToLower(deviceID)}
}

// String returns "appId/deviceId".
func (p Pair) String() string { return p.AppID + "/" + p.DeviceID }

// MarshalText encodes p as "appId/deviceId".
func (p Pair) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes "appId/deviceId".
func (p *Pair) UnmarshalText(text []byte) error {
	appID, deviceID, ok := strings.Cut(string(text), "/")
	if !ok {
		return fmt.Errorf("invalid pair %q: want appId/deviceId", text)
	}
	*p = Pair{AppID: appID, DeviceID: deviceID}
	return nil
}

// Stats counts what the server received and how it responded. Graph counters cover requests
// under /beta only. Stats from Server.Stats are a copy that the caller owns.
type Stats struct {
	// TokenRequests counts requests to the token endpoint, TokensIssued those that got a token
	// and TokenErrors those that got an Entra error.
	TokenRequests int `json:"tokenRequests"`
	TokensIssued  int `json:"tokensIssued"`
	TokenErrors   int `json:"tokenErrors"`

	// GraphRequests counts every request under /beta, reads and writes, including the ones that
	// got no response.
	GraphRequests int `json:"graphRequests"`
	// ReadRequests counts the GET requests to the two read endpoints, GET mobileApps/{appId} and
	// its assignedLicenses, including the ones that got no response.
	ReadRequests int `json:"readRequests"`
	// ByStatus counts Graph responses by HTTP status code, reads and writes together.
	ByStatus map[int]int `json:"byStatus"`
	// Throttled counts the 429 responses to writes and ReadThrottled those to reads, which have a
	// window of their own. Faults counts the injected 5xx responses, Resets the dropped connections,
	// OutageResponses the 503 responses during an outage, Unauthorized the 401 responses and
	// Forbidden the 403 responses, to reads and writes alike.
	Throttled       int `json:"throttled"`
	ReadThrottled   int `json:"readThrottled"`
	Faults          int `json:"faults"`
	Resets          int `json:"resets"`
	OutageResponses int `json:"outageResponses"`
	Unauthorized    int `json:"unauthorized"`
	Forbidden       int `json:"forbidden"`
	// Canceled counts requests whose client went away while the response was delayed. They get no
	// response. With Options.ProcessBeforeLatency they were processed before the delay, so they also
	// count in RevokeCalls or in the counter of the response decided for them.
	Canceled int `json:"canceled"`

	// ByForm counts requests by URL form of the revoke action ("cast" or "uncast"), whether the
	// form is accepted or not. UnknownPaths counts requests whose path matches no endpoint.
	ByForm       map[string]int `json:"byForm"`
	UnknownPaths int            `json:"unknownPaths"`

	// LicensePages counts the pages of assignedLicenses served with 200. With
	// Options.ProcessBeforeLatency it also counts pages whose client went away during the latency.
	LicensePages int `json:"licensePages"`

	// RevokeCalls counts revoke requests that reached the catalogue, whatever their response
	// (204, 400 or 404). LicensesRemoved counts those that removed a license. NoOpRevokes counts
	// 204 responses for a known app and device that held no license. The three maps stay empty
	// with Options.FixedSizeStats.
	RevokeCalls     PairCounts `json:"revokeCalls"`
	LicensesRemoved PairCounts `json:"licensesRemoved"`
	NoOpRevokes     PairCounts `json:"noOpRevokes"`
	// RevokeCallsTotal, LicensesRemovedTotal and NoOpRevokesTotal are the sums of the three maps
	// above. They count with Options.FixedSizeStats too.
	RevokeCallsTotal     int `json:"revokeCallsTotal"`
	LicensesRemovedTotal int `json:"licensesRemovedTotal"`
	NoOpRevokesTotal     int `json:"noOpRevokesTotal"`

	// DuplicateClientRequestIDs counts requests whose client-request-id was already seen, so an
	// id sent three times counts 2. It stays 0 with Options.FixedSizeStats, which keeps no set of
	// the ids seen. MissingClientRequestID counts requests without one.
	DuplicateClientRequestIDs int `json:"duplicateClientRequestIds"`
	MissingClientRequestID    int `json:"missingClientRequestId"`
	// WrongContentType counts POST requests whose Content-Type is not application/json.
	WrongContentType int `json:"wrongContentType"`
	// MaxInFlight is the peak number of Graph requests being served at once.
	MaxInFlight int `json:"maxInFlight"`
}

func newStats() Stats {
	return Stats{
		ByStatus:        map[int]int{},
		ByForm:          map[string]int{},
		RevokeCalls:     PairCounts{},
		LicensesRemoved: PairCounts{},
		NoOpRevokes:     PairCounts{},
	}
}

// countRevoke counts one revoke request that reached the catalogue. perPair also counts it in the
// maps of pairs.
func (st *Stats) countRevoke(pair Pair, outcome revokeOutcome, perPair bool) {
	st.RevokeCallsTotal++
	if perPair {
		st.RevokeCalls[pair]++
	}
	switch outcome {
	case revokeRemoved:
		st.LicensesRemovedTotal++
		if perPair {
			st.LicensesRemoved[pair]++
		}
	case revokeNoOp:
		st.NoOpRevokesTotal++
		if perPair {
			st.NoOpRevokes[pair]++
		}
	}
}

// clone returns a deep copy of st.
func (st Stats) clone() Stats {
	st.ByStatus = maps.Clone(st.ByStatus)
	st.ByForm = maps.Clone(st.ByForm)
	st.RevokeCalls = maps.Clone(st.RevokeCalls)
	st.LicensesRemoved = maps.Clone(st.LicensesRemoved)
	st.NoOpRevokes = maps.Clone(st.NoOpRevokes)
	return st
}

// PairCounts counts requests per license pair.
type PairCounts map[Pair]int

// Total returns the sum over all pairs.
func (c PairCounts) Total() int {
	total := 0
	for _, n := range c {
		total += n
	}
	return total
}
