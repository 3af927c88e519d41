package http

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"

	"github.com/joinincard/engine/postgres"
)

// apiKey describes one kind of API key (a transit operator's, a merchant's, an institution's):
// who holds it, the realm a client is told to authenticate in, the key's shape, and how the store
// finds the holder by the key's SHA-256. Keys themselves are never stored.
type apiKey[T any] struct {
	holder string // "operator", "merchant", "institution": named in the error messages
	realm  string // for WWW-Authenticate
	// wellFormed says whether a key has this kind's shape: one that has not is refused without
	// asking the store.
	wellFormed func(key string) bool
	lookup     func(ctx context.Context, hash [sha256.Size]byte) (T, error)
}

// require lets a request through with a key of this kind as its bearer token and hands the
// handler the key's holder: each holder sees and acts on its own resources only. No key is a 401,
// a key of the wrong shape or unknown a 403, a store failure what storeError makes of it.
func (k apiKey[T]) require(s *Server, next func(http.ResponseWriter, *http.Request, T)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, key, ok := strings.Cut(auth, " ")
		if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+k.realm+`"`)
			s.writeError(w, r, Errorf(EUNAUTHORIZED, "missing %s api key", k.holder))
			return
		}
		if !k.wellFormed(key) {
			s.writeError(w, r, Errorf(EFORBIDDEN, "invalid %s api key", k.holder))
			return
		}
		holder, err := k.lookup(r.Context(), sha256.Sum256([]byte(key)))
		if errors.Is(err, postgres.ErrNotFound) {
			s.writeError(w, r, Errorf(EFORBIDDEN, "invalid %s api key", k.holder))
			return
		}
		if err != nil {
			s.writeError(w, r, s.storeError(r.Context(), err))
			return
		}
		next(w, r, holder)
	}
}
