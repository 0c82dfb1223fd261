package reclaim

import "strings"

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
