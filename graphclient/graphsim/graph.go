package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"strings"
	"time"
)

// maxBodyBytes is the maximum size of the request body that the revoke action reads.
const maxBodyBytes = 1 << 20

// diagnosticHeader is the x-ms-ags-diagnostic value of every Graph response.
const diagnosticHeader = `{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"graphsim","ADSiteName":"LBK"}}`

// faultResponses are the statuses and codes of injected faults, drawn with equal chance.
var faultResponses = []struct {
	status int
	code   string
}{
	{http.StatusInternalServerError, "InternalServerError"},
	{http.StatusBadGateway, "BadGateway"},
	{http.StatusServiceUnavailable, "ServiceUnavailable"},
	{http.StatusGatewayTimeout, "GatewayTimeout"},
}

// graphError is the body of a Graph error response.
type graphError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// graphReply is the state of one Graph response: the writer, the request, the ids that every
// response carries, and what the checks decided.
type graphReply struct {
	w               http.ResponseWriter // the connection's writer, or a deferredResponse
	r               *http.Request
	requestID       string
	clientRequestID string
	deferred        bool   // w is a deferredResponse, which serveGraph writes to the connection after the latency
	status          int    // status of the response, once decided
	code            string // Graph error code of the response, or "" for 204
	drop            bool   // the connection is to be dropped without a response
}

// serveGraph serves a request under /beta. The checks run in this order: outage, token, path,
// method, permission, throttling, injected faults, the body of a revoke, app id, and then the
// catalogue. Reads and writes pass the same checks, each in its own throttling window. The latency
// comes before the checks, or after them and before the response when ProcessBeforeLatency is set.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	route := parseGraphPath(r.URL.Path)
	s.receiveGraph(r, route)
	defer s.finishGraph()

	latency, processFirst := s.drawLatency()
	if !processFirst {
		if !s.waitLatency(r, latency, nil) {
			return
		}
		reply := newGraphReply(w, r, false)
		s.process(reply, route)
		if reply.drop {
			s.dropConnection(reply)
		}
		return
	}

	// The response waits in memory until the latency has passed, so a client that goes away during it
	// gets no response, although its request has taken effect.
	deferred := &deferredResponse{header: http.Header{}}
	reply := newGraphReply(deferred, r, true)
	s.process(reply, route)
	if !s.waitLatency(r, latency, reply) {
		return
	}
	if reply.drop {
		s.dropConnection(reply)
	}
	deferred.writeTo(w)
	s.finishReply(reply)
}

func newGraphReply(w http.ResponseWriter, r *http.Request, deferred bool) *graphReply {
	reply := &graphReply{w: w, r: r, requestID: newGUID(), clientRequestID: r.Header.Get("client-request-id"), deferred: deferred}
	if reply.clientRequestID == "" {
		reply.clientRequestID = reply.requestID
	}
	return reply
}

// process runs the checks and the operation, and responds to reply or marks it to be dropped.
func (s *Server) process(reply *graphReply, route graphRoute) {
	if s.inOutage() {
		s.replyError(reply, http.StatusServiceUnavailable, "ServiceUnavailable",
			"The service is temporarily unavailable. Try again later.")
		return
	}
	clientID, ok := s.authenticate(reply)
	if !ok {
		return
	}
	if !s.checkRoute(reply, route) {
		return
	}
	if !s.checkForbidden(reply, route) {
		return
	}
	if !s.checkThrottle(reply, route, clientID) {
		return
	}
	if !s.checkFault(reply) {
		return
	}

	deviceID := ""
	if route.endpoint == endpointRevoke {
		if deviceID, ok = s.readRevokeBody(reply); !ok {
			return
		}
	}
	appKey, ok := parseGUIDKey(route.appID)
	if !ok {
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Invalid key '%s' for mobileApps: the key must be a GUID.", route.appID))
		return
	}

	switch route.endpoint {
	case endpointRevoke:
		s.revoke(reply, appKey, deviceID)
	case endpointReadApp:
		s.readApp(reply, appKey)
	case endpointReadLicenses:
		s.readLicenses(reply, appKey)
	}
}

// waitLatency waits for latency and reports whether the client is still there. Otherwise it counts
// the request as canceled. reply is the response that was decided before the wait, or nil.
func (s *Server) waitLatency(r *http.Request, latency time.Duration, reply *graphReply) bool {
	if sleep(r.Context(), latency) {
		return true
	}
	s.mu.Lock()
	s.stats.Canceled++
	s.mu.Unlock()
	if reply != nil {
		s.logger.Debug("graphsim processed a request whose client went away before the response",
			"method", r.Method, "path", r.URL.Path, "status", reply.status, "request_id", reply.requestID,
			"client_request_id", reply.clientRequestID)
	}
	return false
}

// dropConnection ends the request without a response. The server closes an HTTP/1.1 connection, or
// resets an HTTP/2 stream.
func (s *Server) dropConnection(reply *graphReply) {
	s.logger.Debug("graphsim dropped a connection", "request_id", reply.requestID)
	panic(http.ErrAbortHandler)
}

// receiveGraph counts what arrived, before any delay or check.
func (s *Server) receiveGraph(r *http.Request, route graphRoute) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.stats.GraphRequests++
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)

	switch {
	case route.endpoint == endpointRevoke:
		s.stats.ByForm[route.form.String()]++
	case route.endpoint == endpointUnknown:
		s.stats.UnknownPaths++
	case r.Method == http.MethodGet:
		s.stats.ReadRequests++
	}

	switch id := r.Header.Get("client-request-id"); {
	case id == "":
		s.stats.MissingClientRequestID++
	case s.opts.FixedSizeStats:
	case s.clientRequestIDs[id]:
		s.stats.DuplicateClientRequestIDs++
	default:
		// NOTE: the set grows by one id per request for the server's lifetime, about 80 bytes each,
		// so a run of a million requests holds about 80 MB. FixedSizeStats turns it off.
		s.clientRequestIDs[id] = true
	}

	if r.Method == http.MethodPost {
		if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
			s.stats.WrongContentType++
		}
	}
}

func (s *Server) finishGraph() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// drawLatency returns the delay of one response and the current ProcessBeforeLatency.
func (s *Server) drawLatency() (latency time.Duration, processFirst bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latency = s.opts.LatencyMin
	if spread := s.opts.LatencyMax - s.opts.LatencyMin; spread > 0 {
		latency += time.Duration(s.rng.Int64N(int64(spread) + 1))
	}
	return latency, s.opts.ProcessBeforeLatency
}

func (s *Server) inOutage() bool {
	since := time.Since(s.start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forcedOutage {
		s.stats.OutageResponses++
		return true
	}
	for _, outage := range s.opts.Outages {
		if outage.Start <= since && since < outage.End {
			s.stats.OutageResponses++
			return true
		}
	}
	return false
}

// authenticate returns the client id of the request's bearer token, or responds with 401.
func (s *Server) authenticate(reply *graphReply) (string, bool) {
	scheme, token, _ := strings.Cut(reply.r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)

	s.mu.Lock()
	issued, known := s.tokens[token]
	expired := known && !time.Now().Before(issued.expires)
	if !known || expired || !strings.EqualFold(scheme, "Bearer") {
		s.stats.Unauthorized++
	}
	s.mu.Unlock()

	message := ""
	switch {
	case token == "" || !strings.EqualFold(scheme, "Bearer"):
		message = "The access token is missing: send the header Authorization: Bearer <token>."
	case !known:
		message = "The access token is invalid."
	case expired:
		message = "The access token has expired."
	default:
		return issued.clientID, true
	}

	reply.w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s/%s/oauth2/v2.0/authorize"`,
		s.url, s.opts.TenantID))
	s.replyError(reply, http.StatusUnauthorized, "InvalidAuthenticationToken", message)
	return "", false
}

// checkRoute responds with 400 for an unknown path or a rejected URL form of the revoke action,
// and with 405 for a method that the endpoint does not accept: POST for the revoke, GET for reads.
func (s *Server) checkRoute(reply *graphReply, route graphRoute) bool {
	s.mu.Lock()
	accepted := s.opts.Forms
	s.mu.Unlock()

	unknown := route.unknownSegment
	if route.form != 0 && route.form&accepted == 0 {
		unknown = rejectedFormSegment(route.form)
	}
	if unknown != "" {
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Resource not found for the segment '%s'.", unknown))
		return false
	}

	if method := route.endpoint.method(); reply.r.Method != method {
		reply.w.Header().Set("Allow", method)
		target := "the action '" + segmentRevoke + "'"
		if route.endpoint.isRead() {
			target = "this resource"
		}
		s.replyError(reply, http.StatusMethodNotAllowed, "BadRequest",
			fmt.Sprintf("The HTTP method '%s' is not allowed for %s.", reply.r.Method, target))
		return false
	}
	return true
}

func (s *Server) checkForbidden(reply *graphReply, route graphRoute) bool {
	s.mu.Lock()
	forbidden := s.opts.Forbidden
	if forbidden {
		s.stats.Forbidden++
	}
	s.mu.Unlock()

	if !forbidden {
		return true
	}
	permission := "DeviceManagementApps.ReadWrite.All that this action requires"
	if route.endpoint.isRead() {
		permission = "DeviceManagementApps.Read.All or DeviceManagementApps.ReadWrite.All that this request requires"
	}
	s.replyError(reply, http.StatusForbidden, "Forbidden", "The application lacks the application permission "+permission+".")
	return false
}

// checkThrottle admits the request into the client's read or write window, or responds with 429
// and a Retry-After of the time until the window admits the next request.
func (s *Server) checkThrottle(reply *graphReply, route graphRoute, clientID string) bool {
	now := time.Now()
	s.mu.Lock()
	var wait time.Duration
	if route.endpoint.isRead() {
		wait = s.readWindow.admit(clientID, now, s.opts.ReadLimit, s.opts.ReadWindow)
	} else {
		wait = s.writeWindow.admit(clientID, now, s.opts.WriteLimit, s.opts.WriteWindow)
	}
	style := s.opts.RetryAfter
	switch {
	case wait > 0 && route.endpoint.isRead():
		s.stats.ReadThrottled++
	case wait > 0:
		s.stats.Throttled++
	}
	if wait > 0 {
		if style == RetryAfterRotate {
			style = rotatedStyles[s.rotation%len(rotatedStyles)]
			s.rotation++
		}
	}
	s.mu.Unlock()

	if wait <= 0 {
		return true
	}
	setRetryAfter(reply.w.Header(), style, wait, now)
	s.replyError(reply, http.StatusTooManyRequests, "TooManyRequests",
		"Too many requests from this application to the Intune service. Retry after the time in Retry-After.")
	return false
}

// checkFault draws whether to drop the connection, which it marks on reply, or to respond with 5xx.
func (s *Server) checkFault(reply *graphReply) bool {
	s.mu.Lock()
	draw := s.rng.Float64()
	reset := draw < s.opts.ResetRate
	fault := !reset && draw < s.opts.ResetRate+s.opts.FaultRate
	response := faultResponses[s.rng.IntN(len(faultResponses))]
	switch {
	case reset:
		s.stats.Resets++
	case fault:
		s.stats.Faults++
	}
	s.mu.Unlock()

	if reset {
		reply.drop = true
		return false
	}
	if !fault {
		return true
	}

	// Intune often puts a JSON document inside the message, so the fault does so too.
	message := fmt.Sprintf(`{"_version": 3, "Message": "Internal error in the Intune service. Operation ID for support: %s", "RetryAfter": null}`,
		newGUID())
	s.replyError(reply, response.status, response.code, message)
	return false
}

// readRevokeBody checks the Content-Type and the body of a revoke request and returns the managed
// device id, or responds with 400.
func (s *Server) readRevokeBody(reply *graphReply) (string, bool) {
	mediaType, _, err := mime.ParseMediaType(reply.r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Invalid Content-Type '%s': the request body must be application/json.", reply.r.Header.Get("Content-Type")))
		return "", false
	}

	data, err := io.ReadAll(http.MaxBytesReader(reply.w, reply.r.Body, maxBodyBytes))
	if err != nil {
		s.replyError(reply, http.StatusBadRequest, "BadRequest", "Failed to read the request body: "+err.Error())
		return "", false
	}
	var body struct {
		ManagedDeviceID      *string `json:"managedDeviceId"`
		NotifyManagedDevices *bool   `json:"notifyManagedDevices"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		s.replyError(reply, http.StatusBadRequest, "BadRequest", "Invalid JSON in the request body: "+err.Error())
		return "", false
	}
	if body.ManagedDeviceID == nil {
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			"The request body is missing the required parameter 'managedDeviceId'.")
		return "", false
	}
	if !isGUID(*body.ManagedDeviceID) {
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Invalid value '%s' for the parameter 'managedDeviceId': it must be a GUID.", *body.ManagedDeviceID))
		return "", false
	}
	return *body.ManagedDeviceID, true
}

// revoke applies the revoke to the catalogue and responds. deviceID has passed isGUID.
func (s *Server) revoke(reply *graphReply, appKey guidKey, deviceID string) {
	deviceKey, _ := parseGUIDKey(deviceID)
	pair := Pair{AppID: appKey.String(), DeviceID: deviceKey.String()}

	s.mu.Lock()
	outcome := s.catalogue.revoke(appKey, deviceKey)
	s.stats.countRevoke(pair, outcome, !s.opts.FixedSizeStats)
	s.mu.Unlock()

	switch outcome {
	case revokeRemoved, revokeNoOp:
		s.replyNoContent(reply)
	case revokeUnknownApp:
		s.replyError(reply, http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("The mobile app '%s' was not found.", pair.AppID))
	case revokeNotVPP:
		s.replyError(reply, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("The mobile app '%s' is not an iosVppApp, so it has no device licenses to revoke.", pair.AppID))
	case revokeUnknownDevice:
		s.replyError(reply, http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("The managed device '%s' was not found.", pair.DeviceID))
	}
}

// setHeaders sets the headers of every Graph response and records the status on reply.
func (s *Server) setHeaders(reply *graphReply, status int) {
	h := reply.w.Header()
	h.Set("request-id", reply.requestID)
	h.Set("client-request-id", reply.clientRequestID)
	h.Set("x-ms-ags-diagnostic", diagnosticHeader)
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	reply.status = status
}

// finishReply counts the status of a response that has been written and logs it.
func (s *Server) finishReply(reply *graphReply) {
	s.mu.Lock()
	s.stats.ByStatus[reply.status]++
	s.mu.Unlock()

	args := []any{"method", reply.r.Method, "path", reply.r.URL.Path, "status", reply.status}
	if reply.code != "" {
		args = append(args, "code", reply.code)
	}
	args = append(args, "request_id", reply.requestID, "client_request_id", reply.clientRequestID)
	s.logger.Debug("graphsim responded", args...)
}

func (s *Server) replyNoContent(reply *graphReply) {
	s.setHeaders(reply, http.StatusNoContent)
	reply.w.WriteHeader(http.StatusNoContent)
	if !reply.deferred {
		s.finishReply(reply)
	}
}

func (s *Server) replyError(reply *graphReply, status int, code, message string) {
	s.setHeaders(reply, status)
	reply.code = code

	var body graphError
	body.Error.Code = code
	body.Error.Message = message
	body.Error.InnerError.Date = time.Now().UTC().Format("2006-01-02T15:04:05")
	body.Error.InnerError.RequestID = reply.requestID
	body.Error.InnerError.ClientRequestID = reply.clientRequestID

	h := reply.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	reply.w.WriteHeader(status)
	json.NewEncoder(reply.w).Encode(body)
	if !reply.deferred {
		s.finishReply(reply)
	}
}

// deferredResponse is a response recorded in memory, which serveGraph writes to the connection after
// the latency when ProcessBeforeLatency is set.
type deferredResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *deferredResponse) Header() http.Header { return h.header }

func (h *deferredResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *deferredResponse) Write(p []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return h.body.Write(p)
}

// writeTo writes the recorded response to w.
func (h *deferredResponse) writeTo(w http.ResponseWriter) {
	maps.Copy(w.Header(), h.header)
	w.WriteHeader(h.status)
	w.Write(h.body.Bytes())
}
