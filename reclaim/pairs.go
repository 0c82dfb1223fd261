package reclaim

import (
	"fmt"
	"strings"
)

// guidKey is the 16 bytes of a GUID in the order its hex digits are written. The order differs from
// Microsoft's mixed-endian binary layout, which does not matter for comparing ids.
type guidKey [16]byte

// guidByteOffsets lists where the two hex digits of each byte start in the 36-character form.
var guidByteOffsets = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// parseGUID decodes a GUID written as 8-4-4-4-12 hex digits in either case. It also accepts the
// GUID in braces and surrounded by white space.
func parseGUID(s string) (g guidKey, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 {
		return guidKey{}, false
	}

	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return guidKey{}, false
	}
	for n, at := range guidByteOffsets {
		hi, ok1 := hexValue(s[at])
		lo, ok2 := hexValue(s[at+1])
		if !ok1 || !ok2 {
			return guidKey{}, false
		}
		g[n] = hi<<4 | lo
	}
	return g, true
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String formats g as lower-case 8-4-4-4-12 hex digits without braces.
func (g guidKey) String() string {
	const digits = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, v := range g {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j] = digits[v>>4]
		b[j+1] = digits[v&0x0f]
		j += 2
	}
	return string(b[:])
}

// pairSet is the set of (app id, device id) pairs seen so far, used to find duplicate rows. It is exact,
// so two pairs are the same only when both GUIDs are equal. A job has few apps and many devices, so the
// set keeps one map of 16-byte device keys per app. That costs 16 bytes of key per pair plus the map's
// overhead, which BenchmarkPairSetMemory includes in its bytes/pair figure.
//
// A pairSet is not safe for concurrent use.
type pairSet struct {
	devicesByApp map[guidKey]map[guidKey]struct{}
	len          int
}

func newPairSet() *pairSet {
	return &pairSet{devicesByApp: make(map[guidKey]map[guidKey]struct{})}
}

// Add records the pair and reports whether it was new. Both ids must be valid GUIDs, normally the
// normalised ids of a valid Row. Add panics on an invalid id, because that means the caller passed a
// row that cannot be sent.
func (s *pairSet) Add(appID, deviceID string) (added bool) {
	app, ok := parseGUID(appID)
	if !ok {
		panic(fmt.Sprintf("reclaim: pairSet.Add: app id %q is not a GUID", appID))
	}
	device, ok := parseGUID(deviceID)
	if !ok {
		panic(fmt.Sprintf("reclaim: pairSet.Add: device id %q is not a GUID", deviceID))
	}

	devices := s.devicesByApp[app]
	if devices == nil {
		devices = make(map[guidKey]struct{})
		s.devicesByApp[app] = devices
	}
	// A single insert replaces a lookup followed by an insert, because the map grows only for a new pair.
	before := len(devices)
	devices[device] = struct{}{}
	if len(devices) == before {
		return false
	}
	s.len++
	return true
}

// Len returns the number of distinct pairs added.
func (s *pairSet) Len() int { return s.len }
