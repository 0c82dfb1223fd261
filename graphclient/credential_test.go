package graphclient

import (
	"strings"
	"testing"
)

func TestParseGraphURL(t *testing.T) {
	tests := []struct {
		raw       string
		want      string
		wantScope string
		wantErr   string
	}{
		{raw: "https://graph.microsoft.com/beta", want: "https://graph.microsoft.com/beta", wantScope: "https://graph.microsoft.com/.default"},
		{raw: "https://graph.microsoft.com/beta/", want: "https://graph.microsoft.com/beta", wantScope: "https://graph.microsoft.com/.default"},
		{raw: "https://graph.microsoft.us/beta", want: "https://graph.microsoft.us/beta", wantScope: "https://graph.microsoft.us/.default"},
		{raw: "https://127.0.0.1:8443/beta", want: "https://127.0.0.1:8443/beta", wantScope: "https://127.0.0.1:8443/.default"},
		{raw: "http://127.0.0.1:8080/beta", want: "http://127.0.0.1:8080/beta", wantScope: "http://127.0.0.1:8080/.default"},
		{raw: "http://localhost:8080/beta", want: "http://localhost:8080/beta", wantScope: "http://localhost:8080/.default"},
		{raw: "http://graph.microsoft.com/beta", wantErr: "uses http"},
		{raw: "ftp://graph.microsoft.com/beta", wantErr: "must start with https://"},
		{raw: "https://graph.microsoft.com/v1.0", wantErr: "only in Graph beta"},
		{raw: "https://graph.microsoft.com", wantErr: "does not end in /beta"},
		{raw: "graph.microsoft.com/beta", wantErr: "has no host"},
		{raw: "https://graph.microsoft.com/beta?x=1", wantErr: "query"},
		{raw: "https://[::1/beta", wantErr: "is not a URL"},
	}
	for _, tt := range tests {
		got, err := ParseGraphURL(tt.raw)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseGraphURL(%q) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseGraphURL(%q): %v", tt.raw, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParseGraphURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
		if scope := Scope(got); scope != tt.wantScope {
			t.Errorf("Scope(%q) = %q, want %q", got, scope, tt.wantScope)
		}
	}
}

func TestIsPublicAuthority(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"", true},
		{"https://login.microsoftonline.com/", true},
		{"https://LOGIN.microsoftonline.com", true},
		{"https://login.microsoftonline.us/", true},
		{"https://login.chinacloudapi.cn/", true},
		{"https://127.0.0.1:8443/", false},
		{"https://login.contoso.internal/", false},
		{"https://login.microsoftonline.com.evil.example/", false},
	}
	for _, tt := range tests {
		if got := isPublicAuthority(tt.host); got != tt.want {
			t.Errorf("isPublicAuthority(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}
