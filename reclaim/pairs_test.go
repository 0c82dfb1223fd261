package reclaim

import (
	"strings"
	"testing"
)

func TestParseGUID(t *testing.T) {
	tests := []struct {
		in   string
		want string // normalised form; "" when in is not a GUID
	}{
		{in: app1, want: app1},
		{in: strings.ToUpper(app1), want: app1},
		{in: "{" + app1 + "}", want: app1},
		{in: " \t{" + app1 + "}\n", want: app1},
		{in: "\u00a0" + app1 + "\u00a0", want: app1},
		{in: "00000000-0000-0000-0000-000000000000", want: "00000000-0000-0000-0000-000000000000"},
		{in: "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", want: "ffffffff-ffff-ffff-ffff-ffffffffffff"},
		{in: ""},
		{in: "   "},
		{in: "0f8fad5bd9cb469fa16570867728950e"},
		{in: "0f8fad5b-d9cb-469f-a165-70867728950"},
		{in: "0f8fad5b-d9cb-469f-a165-70867728950e0"},
		{in: "0f8fad5b-d9cb-469f-a16570867728950e-"},
		{in: "0f8fad5bd-9cb-469f-a165-70867728950e"},
		{in: "0f8fad5b-d9cb-469f-a165-70867728950g"},
		{in: "0f8fad5b-d9cb-469f-a165+70867728950e"},
		{in: "{" + app1},
		{in: app1 + "}"},
		{in: "(" + app1 + ")"},
		{in: "{ " + app1 + " }"},
		{in: "urn:uuid:" + app1},
		{in: "0f8fad5b-d9cb-469f-a165-7086772895é"},
		{in: "0x8fad5b-d9cb-469f-a165-70867728950e"},
	}
	for _, tt := range tests {
		g, ok := parseGUID(tt.in)
		if ok != (tt.want != "") {
			t.Errorf("parseGUID(%q) ok = %v, want %v", tt.in, ok, !ok)
			continue
		}
		if ok && g.String() != tt.want {
			t.Errorf("parseGUID(%q).String() = %q, want %q", tt.in, g.String(), tt.want)
		}
	}
}
