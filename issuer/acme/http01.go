package acme

import (
	"net/http"
	"strings"
	"sync"
)

// HTTP01Solver answers HTTP-01 challenges for every issuer and order from
// one handler. lego's own HTTP-01 server opens a listener per challenge,
// which fails as soon as two orders run at once; tokens are unique, so one
// map serves them all.
type HTTP01Solver struct {
	mu     sync.RWMutex
	tokens map[string]string // token → key authorization
}

// NewHTTP01Solver returns an empty solver; serve it on the address the
// CA reaches for port 80 of the names being validated.
func NewHTTP01Solver() *HTTP01Solver { return &HTTP01Solver{tokens: map[string]string{}} }

const challengePrefix = "/.well-known/acme-challenge/"

// ServeHTTP answers /.well-known/acme-challenge/<token>.
func (s *HTTP01Solver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, challengePrefix)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	s.mu.RLock()
	keyAuth, found := s.tokens[token]
	s.mu.RUnlock()
	if !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(keyAuth))
}

// Present implements lego's challenge.Provider.
func (s *HTTP01Solver) Present(_, token, keyAuth string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = keyAuth
	return nil
}

// CleanUp implements lego's challenge.Provider.
func (s *HTTP01Solver) CleanUp(_, token, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
	return nil
}
