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

	// listen, when set, opens the listener that serves this solver; it
	// is called before each HTTP-01 order (it must be idempotent), so an
	// agent that orders only through DNS-01 never binds a port, and a
	// port in use fails the order before it reaches the CA.
	listen func() error
}

// NewHTTP01Solver returns an empty solver; serve it on the address the
// CA reaches for port 80 of the names being validated. listen, if not
// nil, starts serving it (see HTTP01Solver.listen).
func NewHTTP01Solver(listen func() error) *HTTP01Solver {
	return &HTTP01Solver{tokens: map[string]string{}, listen: listen}
}

// ready makes sure the solver is served before an HTTP-01 order.
func (s *HTTP01Solver) ready() error {
	if s.listen == nil {
		return nil
	}
	return s.listen()
}

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
