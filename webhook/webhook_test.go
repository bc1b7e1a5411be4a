package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestHandler(t *testing.T) {
	const body = `{"ref":"refs/heads/main"}`
	tests := []struct {
		name     string
		secret   string
		headers  map[string]string
		body     string
		wantCode int
		wantFire bool
	}{
		{"github signed push", "s", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("s", body)}, body, 202, true},
		{"github bad signature", "s", map[string]string{"X-Hub-Signature-256": sign("other", body)}, body, 401, false},
		{"gitlab token", "s", map[string]string{"X-Gitlab-Token": "s"}, body, 202, true},
		{"gitlab wrong token", "s", map[string]string{"X-Gitlab-Token": "x"}, body, 401, false},
		{"unsigned", "s", nil, body, 401, false},
		{"no secret configured refuses all", "", map[string]string{"X-Gitlab-Token": ""}, body, 401, false},
		{"other branch", "s", map[string]string{"X-Gitlab-Token": "s"}, `{"ref":"refs/heads/dev"}`, 202, false},
		{"github ping", "s", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign("s", `{}`)}, `{}`, 202, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New([]byte(tt.secret), "main", nil)
			req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Errorf("code = %d, want %d", rec.Code, tt.wantCode)
			}
			fired := false
			select {
			case <-h.Trigger():
				fired = true
			default:
			}
			if fired != tt.wantFire {
				t.Errorf("triggered = %v, want %v", fired, tt.wantFire)
			}
		})
	}
}

func TestTriggersCoalesce(t *testing.T) {
	h := New([]byte("s"), "main", nil)
	for range 5 {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"ref":"refs/heads/main"}`))
		req.Header.Set("X-Gitlab-Token", "s")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	<-h.Trigger()
	select {
	case <-h.Trigger():
		t.Fatal("five pushes queued more than one pass")
	default:
	}
}
