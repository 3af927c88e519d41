package http

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A database that did not answer (a connection refused or cut, a server shutting down, a COMMIT
// whose answer was lost) is a 503 that says the request may be in and to send it again unchanged;
// what the database answered, even a refusal, is not.
func TestDatabaseThatDidNotAnswerIsA503ToSendAgain(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		cause  error
		status int
	}{
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, http.StatusServiceUnavailable},
		{&pgconn.PgError{Code: "08006", Message: "connection failure"}, http.StatusServiceUnavailable},
		{fmt.Errorf("batch transaction: commit: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, http.StatusServiceUnavailable},
		{errors.New("batch transaction: commit: conn closed"), http.StatusServiceUnavailable},
		{&pgconn.PgError{Code: "23514", Message: "check constraint"}, http.StatusInternalServerError},
		{errors.New("something else"), http.StatusInternalServerError},
	} {
		e.store.fail("Ingest", fmt.Errorf("ingest: %w", c.cause))
		w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: registration(nil)})
		if w.Code != c.status {
			t.Errorf("%v: status %d, want %d", c.cause, w.Code, c.status)
			continue
		}
		msg := errorOf(t, w).Message
		if again := strings.Contains(msg, "send it again unchanged"); again != (c.status == http.StatusServiceUnavailable) {
			t.Errorf("%v: answered %q", c.cause, msg)
		}
		if c.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After", c.cause)
		}
	}
}
