package redfish

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, for errors.Is.
var (
	// ErrFingerprintChanged: the BMC presented a certificate other than the pinned one.
	ErrFingerprintChanged = errors.New("BMC TLS certificate fingerprint changed")
	// ErrUnauthorized: the BMC refused the credentials.
	ErrUnauthorized = errors.New("BMC refused the credentials")
	// ErrUnsupported: the BMC does not offer what was asked (a boot target, an action).
	ErrUnsupported = errors.New("not supported by this BMC")
	// ErrBadReply: the BMC answered with something that is not the expected resource.
	ErrBadReply = errors.New("bad reply from BMC")
	// ErrTimeout: a bounded wait (power off, task, BIOS verify) ran out.
	ErrTimeout = errors.New("timed out waiting for the BMC")
	// ErrNotApplied: a BIOS profile or firmware did not take.
	ErrNotApplied = errors.New("not applied")
)

// Error is every failure of a BMC call: which BMC, which operation, what the BMC said.
type Error struct {
	BMC       string // address as configured
	Op        string // "power on", "set boot override", …
	Method    string // HTTP method, when a request failed
	Path      string
	Status    int    // HTTP status, 0 when none
	MessageID string // from the Redfish error body
	Message   string
	Hint      string // what the operator should do
	Err       error

	retryAfter string // Retry-After of the reply, for the retry loop
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bmc %s: %s", e.BMC, e.Op)
	if e.Method != "" {
		fmt.Fprintf(&b, ": %s %s", e.Method, e.Path)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.MessageID != "" {
		fmt.Fprintf(&b, " %s", e.MessageID)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// redfishErrorBody is DSP0266's error payload.
type redfishErrorBody struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Extended []struct {
			MessageID string `json:"MessageId"`
			Message   string `json:"Message"`
		} `json:"@Message.ExtendedInfo"`
	} `json:"error"`
}

// parseErrorBody pulls the most specific message id and text out of an error reply; a body
// that is not a Redfish error is quoted (shortened) instead.
func parseErrorBody(b []byte) (id, msg string) {
	var eb redfishErrorBody
	if err := json.Unmarshal(b, &eb); err == nil && (eb.Error.Code != "" || len(eb.Error.Extended) > 0) {
		id, msg = eb.Error.Code, eb.Error.Message
		if len(eb.Error.Extended) > 0 {
			var ids, msgs []string
			for _, x := range eb.Error.Extended {
				if x.MessageID != "" {
					ids = append(ids, x.MessageID)
				}
				if x.Message != "" {
					msgs = append(msgs, x.Message)
				}
			}
			if len(ids) > 0 {
				id = strings.Join(ids, ",")
			}
			if len(msgs) > 0 {
				msg = strings.Join(msgs, "; ")
			}
		}
		return id, msg
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return "", s
}

func hintFor(status int) string {
	switch status {
	case 400:
		return "the BMC rejected the request; check the value against what the BMC allows"
	case 401, 403:
		return "check the BMC user name, password and role"
	case 404:
		return "the BMC does not have this resource; check the vendor profile"
	case 409:
		return "the BMC is busy with a conflicting operation; retry later"
	case 412:
		return "the resource changed while Slate was editing it; retry"
	case 503:
		return "the BMC is busy or restarting; retry in a few minutes"
	}
	return ""
}
