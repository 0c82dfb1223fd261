package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
)

// OData types of the entries of an assignedLicenses page.
const (
	odataTypeDeviceLicense = "#microsoft.graph.iosVppAppAssignedDeviceLicense"
	odataTypeUserLicense   = "#microsoft.graph.iosVppAppAssignedUserLicense"
)

// odataContentType is the Content-Type of JSON responses, with OData's format parameters.
const odataContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// skiptokenParameter is the query parameter of a next link.
const skiptokenParameter = "$skiptoken"

// appResource is the body of GET mobileApps/{appId}.
type appResource struct {
	Context     string `json:"@odata.context"`
	Type        string `json:"@odata.type"`
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// licensePageBody is the body of GET .../assignedLicenses. Each value is a deviceLicenseResource
// or a userLicenseResource.
type licensePageBody struct {
	Context  string `json:"@odata.context"`
	Value    []any  `json:"value"`
	NextLink string `json:"@odata.nextLink,omitempty"`
}

// deviceLicenseResource is an iosVppAppAssignedDeviceLicense. The server writes its user fields
// as null, because it assigns no device license to a user.
type deviceLicenseResource struct {
	Type              string  `json:"@odata.type"`
	ID                string  `json:"id"`
	ManagedDeviceID   string  `json:"managedDeviceId"`
	DeviceName        string  `json:"deviceName"`
	UserID            *string `json:"userId"`
	UserName          *string `json:"userName"`
	UserEmailAddress  *string `json:"userEmailAddress"`
	UserPrincipalName *string `json:"userPrincipalName"`
}

// userLicenseResource is an iosVppAppAssignedUserLicense, which has no managedDeviceId.
type userLicenseResource struct {
	Type              string `json:"@odata.type"`
	ID                string `json:"id"`
	UserID            string `json:"userId"`
	UserPrincipalName string `json:"userPrincipalName"`
}

// readApp responds to GET mobileApps/{appId}.
func (s *Server) readApp(reply *graphReply, appKey guidKey) {
	s.mu.Lock()
	app := s.catalogue.app(appKey)
	s.mu.Unlock()

	if !app.found {
		s.replyAppNotFound(reply, appKey)
		return
	}
	s.replyJSON(reply, appResource{
		Context:     s.url + "/beta/$metadata#deviceAppManagement/mobileApps/$entity",
		Type:        app.odataType,
		ID:          appKey.String(),
		DisplayName: app.displayName,
	})
}

// readLicenses responds to GET .../microsoft.graph.iosVppApp/assignedLicenses with one page of
// license holders. The page follows the entry named by the $skiptoken parameter, or starts the
// listing when there is none.
func (s *Server) readLicenses(reply *graphReply, appKey guidKey) {
	s.mu.Lock()
	app := s.catalogue.app(appKey)
	pageSize := s.opts.LicensePageSize
	s.mu.Unlock()

	if !app.found {
		s.replyAppNotFound(reply, appKey)
		return
	}
	if app.odataType != odataTypeIOSVPPApp {
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Resource not found for the segment '%s'.", segmentIOSVPPApp))
		return
	}

	var after *licenseCursor
	if tokens, ok := reply.r.URL.Query()[skiptokenParameter]; ok {
		cursor, message, ok := s.decodeSkiptoken(tokens, appKey)
		if !ok {
			s.replyError(reply, http.StatusBadRequest, "BadRequest", message)
			return
		}
		after = &cursor
	}

	s.mu.Lock()
	page, more := s.catalogue.licensePage(appKey, after, pageSize)
	s.stats.LicensePages++
	s.mu.Unlock()

	body := licensePageBody{
		Context: s.url + "/beta/$metadata#deviceAppManagement/mobileApps('" + appKey.String() +
			"')/microsoft.graph.iosVppApp/assignedLicenses",
		Value: make([]any, len(page)),
	}
	for i, entry := range page {
		body.Value[i] = licenseResource(appKey, entry)
	}
	if more {
		next := page[len(page)-1].cursor()
		body.NextLink = s.url + reply.r.URL.EscapedPath() + "?" + skiptokenParameter + "=" + s.encodeSkiptoken(appKey, next)
	}
	s.replyJSON(reply, body)
}

// licenseResource returns the Graph resource of one entry. The ids of a license and the name of a
// device derive from the app and device ids, so they are the same on every read.
func licenseResource(appKey guidKey, entry licenseEntry) any {
	if entry.user != nil {
		return userLicenseResource{
			Type:              odataTypeUserLicense,
			ID:                entry.user.key.String(),
			UserID:            entry.user.userID.String(),
			UserPrincipalName: fmt.Sprintf("vpp-user-%04d@graphsim.example", entry.user.number),
		}
	}
	device := entry.device.String()
	licenseID := derivedKey("device license "+device, appKey, 0)
	return deviceLicenseResource{
		Type:            odataTypeDeviceLicense,
		ID:              licenseID.String(),
		ManagedDeviceID: device,
		DeviceName:      "iPad-" + device[:8],
	}
}

func (s *Server) replyAppNotFound(reply *graphReply, appKey guidKey) {
	s.replyError(reply, http.StatusNotFound, "ResourceNotFound",
		fmt.Sprintf("The mobile app '%s' was not found.", appKey))
}

// A skiptoken is base64url of: the server's skiptokenNonce (8 bytes), the app key (16 bytes), the
// key of the last entry of the previous page (16 bytes), and 1 for a user license or 0 for a device
// license (1 byte). The nonce makes tokens of another server run invalid.
const skiptokenLength = 8 + 16 + 16 + 1

func (s *Server) encodeSkiptoken(appKey guidKey, after licenseCursor) string {
	raw := make([]byte, 0, skiptokenLength)
	raw = append(raw, s.skiptokenNonce[:]...)
	raw = append(raw, appKey[:]...)
	raw = append(raw, after.key[:]...)
	if after.user {
		raw = append(raw, 1)
	} else {
		raw = append(raw, 0)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// decodeSkiptoken returns the cursor of the only value in tokens. When there are several values,
// or the value is not a token of this server for appKey, it returns the message of a 400 response
// instead, and ok is false.
func (s *Server) decodeSkiptoken(tokens []string, appKey guidKey) (cursor licenseCursor, message string, ok bool) {
	if len(tokens) != 1 {
		return cursor, fmt.Sprintf("The query specifies %d values for %s, but at most one is allowed.", len(tokens), skiptokenParameter), false
	}
	invalid := fmt.Sprintf("The %s value '%s' is invalid or has expired: restart the listing without it.", skiptokenParameter, tokens[0])

	raw, err := base64.RawURLEncoding.DecodeString(tokens[0])
	if err != nil || len(raw) != skiptokenLength {
		return cursor, invalid, false
	}
	nonce, app, key, kind := raw[:8], raw[8:24], raw[24:40], raw[40]
	if !bytes.Equal(nonce, s.skiptokenNonce[:]) || !bytes.Equal(app, appKey[:]) || kind > 1 {
		return cursor, invalid, false
	}

	copy(cursor.key[:], key)
	cursor.user = kind == 1
	return cursor, "", true
}

// replyJSON responds with 200 and body as JSON.
func (s *Server) replyJSON(reply *graphReply, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		s.replyError(reply, http.StatusInternalServerError, "InternalServerError", "Failed to encode the response: "+err.Error())
		return
	}

	s.setHeaders(reply, http.StatusOK)
	h := reply.w.Header()
	h.Set("Content-Type", odataContentType)
	h.Set("Cache-Control", "no-cache")
	reply.w.WriteHeader(http.StatusOK)
	reply.w.Write(data)
	if !reply.deferred {
		s.finishReply(reply)
	}
}
