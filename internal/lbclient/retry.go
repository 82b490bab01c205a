package lbclient

import "net/http"

// Replayable is goblog's one retry rule: a request may be sent again, to
// another instance, only when its method is idempotent (RFC 9110 §9.2.2:
// GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and its body can be sent again
// (none, or GetBody set). Every transport that retries (this package's and
// the watcher-fed swarmwatcher/sd one) asks it.
func Replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}
