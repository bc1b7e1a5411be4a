// Package webhook turns Git push notifications into reconcile triggers.
//
// It accepts GitHub (X-Hub-Signature-256 HMAC over the body) and GitLab
// (X-Gitlab-Token) push payloads, verifies the shared secret in constant
// time, and signals only for pushes to the watched branch. A trigger is
// coalesced: many pushes during a pass cause one more pass, not many.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// maxBody bounds the payload read; push payloads are far smaller.
const maxBody = 5 << 20

// Handler verifies push webhooks and sends on Trigger.
type Handler struct {
	secret  []byte
	branch  string
	trigger chan struct{}
	log     *slog.Logger
}

// New returns a Handler for pushes to branch. An empty secret refuses every
// request: an unauthenticated endpoint would let anyone drive ACME orders.
func New(secret []byte, branch string, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{secret: secret, branch: branch, trigger: make(chan struct{}, 1), log: log}
}

// Trigger receives a value after each accepted push (coalesced).
func (h *Handler) Trigger() <-chan struct{} { return h.trigger }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST a push event", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if !h.verify(r, body) {
		h.log.Warn("webhook refused: bad or missing signature", "remote", r.RemoteAddr)
		http.Error(w, "signature does not match the configured secret", http.StatusUnauthorized)
		return
	}
	if ev := r.Header.Get("X-GitHub-Event"); ev != "" && ev != "push" {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var payload struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		http.Error(w, "payload is not JSON", http.StatusBadRequest)
		return
	}
	if payload.Ref != "refs/heads/"+h.branch {
		w.WriteHeader(http.StatusAccepted) // another branch: nothing to do
		return
	}
	select {
	case h.trigger <- struct{}{}:
	default: // a pass is already queued
	}
	h.log.Info("push webhook accepted; reconciling", "ref", payload.Ref)
	w.WriteHeader(http.StatusAccepted)
}

func (h *Handler) verify(r *http.Request, body []byte) bool {
	if len(h.secret) == 0 {
		return false
	}
	if sig := r.Header.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, h.secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	if tok := r.Header.Get("X-Gitlab-Token"); tok != "" {
		return subtle.ConstantTimeCompare([]byte(tok), h.secret) == 1
	}
	return false
}
