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

	// GraphRequests counts every request under /beta, including the ones that got no response.
	GraphRequests int `json:"graphRequests"`
	// ByStatus counts Graph responses by HTTP status code.
	ByStatus map[int]int `json:"byStatus"`
	// Throttled counts 429 responses, Faults the injected 5xx responses, Resets the dropped
	// connections, OutageResponses the 503 responses during an outage, Unauthorized the 401 responses
	// and Forbidden the 403 responses.
	Throttled       int `json:"throttled"`
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
	// form is accepted or not. UnknownPaths counts requests whose path matches neither form.
	ByForm       map[string]int `json:"byForm"`
	UnknownPaths int            `json:"unknownPaths"`

	// RevokeCalls counts revoke requests that reached the catalogue, whatever their response
	// (204, 400 or 404). LicensesRemoved counts those that removed a license. NoOpRevokes counts
	// 204 responses for a known app and device that held no license.
	RevokeCalls     PairCounts `json:"revokeCalls"`
	LicensesRemoved PairCounts `json:"licensesRemoved"`
	NoOpRevokes     PairCounts `json:"noOpRevokes"`

	// DuplicateClientRequestIDs counts requests whose client-request-id was already seen, so an
	// id sent three times counts 2. MissingClientRequestID counts requests without one.
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
