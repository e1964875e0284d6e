package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// problemError carries a status with a message to the error handler.
type problemError struct {
	status int
	detail string
}

func (p *problemError) Error() string { return p.detail }

func problem(status int, format string, args ...any) error {
	return &problemError{status: status, detail: fmt.Sprintf(format, args...)}
}

// statusOf maps domain errors to HTTP statuses: handlers just return errors.
func statusOf(err error) (int, string) {
	var pe *problemError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
		return pe.status, pe.detail
	case errors.As(err, &he):
		msg := fmt.Sprint(he.Message)
		if he.Code == http.StatusRequestEntityTooLarge {
			msg = "request body is larger than 1 MiB"
		}
		return he.Code, msg
	case inventory.IsDiskFull(err):
		// 507 Insufficient Storage (RFC 4918): the server cannot store what the request needs
		// stored — exactly the case; clients and monitoring can tell it from a bug (500).
		return http.StatusInsufficientStorage, StorageDetail(err)
	case errors.Is(err, inventory.ErrStorage):
		// Read-only or failing data directory: the service is unavailable for writes until
		// an operator fixes it; 503 says "retry later", which is true once it is fixed.
		return http.StatusServiceUnavailable, StorageDetail(err)
	case errors.Is(err, lifecycle.ErrFingerprintNotConfirmed):
		// the request confirmed a certificate the BMC does not present: probe again, check, confirm
		return http.StatusConflict, err.Error()
	case errors.Is(err, lifecycle.ErrBMCCredentials):
		// the BMC refused the credentials the request carries: the request must change
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, lifecycle.ErrBMC):
		return http.StatusBadGateway, err.Error()
	case errors.Is(err, inventory.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, inventory.ErrConflict), errors.Is(err, lifecycle.ErrNotAllowed), errors.Is(err, lifecycle.ErrCannotInstall):
		return http.StatusConflict, err.Error()
	case errors.Is(err, inventory.ErrInvalid):
		return http.StatusUnprocessableEntity, err.Error()
	}
	return http.StatusInternalServerError, "internal error: " + err.Error()
}

func writeProblem(c echo.Context, status int, detail string) error {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Instance: c.Request().URL.Path}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(status)
	return json.NewEncoder(c.Response()).Encode(p)
}

// decode reads a JSON body strictly: unknown fields, trailing data and bodies over the limit
// are refused with a message naming the problem.
func decode(c echo.Context, dst any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, "application/json") {
		return problem(http.StatusUnsupportedMediaType, "send the body as application/json, not %s", ct)
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return problem(http.StatusRequestEntityTooLarge, "request body is larger than 1 MiB")
		case errors.Is(err, io.EOF):
			return problem(http.StatusBadRequest, "request body is empty: send a JSON object")
		case errors.As(err, &se):
			return problem(http.StatusBadRequest, "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return problem(http.StatusBadRequest, "field %q must be %s, not %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return problem(http.StatusBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case strings.Contains(err.Error(), "request body too large"):
			return problem(http.StatusRequestEntityTooLarge, "request body is larger than 1 MiB")
		}
		return problem(http.StatusBadRequest, "malformed JSON: %v", err)
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "malformed JSON: extra data after the object")
	}
	return nil
}

// StorageDetail is what a client is told about a write the store could not commit: that
// nothing was saved and what to do, without the database path (that is in Slate's log).
func StorageDetail(err error) string {
	if inventory.IsDiskFull(err) {
		return "nothing was saved: Slate's data directory is full; free space on it (see Slate's log), then retry"
	}
	return "nothing was saved: Slate's data directory refused the write (read-only or failing; see Slate's log); fix it, then retry"
}
