package sync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
)

// maxHookBody bounds a webhook payload.
const maxHookBody = 5 << 20

var commitHex = regexp.MustCompile(`^[0-9a-f]{40}$`)

// WebhookHandler takes git push webhooks. GitHub's (X-Hub-Signature-256, an
// HMAC of the body with the secret) and GitLab's (X-Gitlab-Token, the
// secret) are verified; anything else gets 401. A verified push calls
// trigger with the pushed commit (payload "after"; "" when absent), and
// answers 202.
func WebhookHandler(secret []byte, trigger func(ctx context.Context, after string) error, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a GitHub or GitLab push webhook here", http.StatusMethodNotAllowed)
			return
		}
		if len(secret) == 0 {
			http.Error(w, "webhooks are off: start kaylee agent with --webhook-secret-file", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxHookBody+1))
		if err != nil || len(body) > maxHookBody {
			http.Error(w, "cannot read the payload (at most 5 MiB)", http.StatusBadRequest)
			return
		}
		kind, ok := verify(r.Header, body, secret)
		if !ok {
			log.Warn("webhook refused: bad or missing signature", "remote", r.RemoteAddr)
			http.Error(w, "signature or token missing or wrong", http.StatusUnauthorized)
			return
		}
		if kind == "github" && r.Header.Get("X-GitHub-Event") == "ping" {
			fmt.Fprintln(w, "pong")
			return
		}
		var payload struct {
			After string `json:"after"`
		}
		_ = json.Unmarshal(body, &payload)
		after := strings.ToLower(payload.After)
		if !commitHex.MatchString(after) || after == strings.Repeat("0", 40) {
			after = "" // no commit, or a deleted branch: just sync
		}
		if err := trigger(r.Context(), after); err != nil {
			log.Error("webhook: could not trigger a sync", "err", err)
			http.Error(w, "could not trigger a sync: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		log.Info("webhook: sync triggered", "from", kind, "after", after)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"triggered": true, "after": after})
	})
}

func verify(h http.Header, body, secret []byte) (string, bool) {
	if sig := h.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !strings.HasPrefix(sig, "sha256=") {
			return "github", false
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		return "github", hmac.Equal(got, m.Sum(nil))
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" {
		return "gitlab", subtle.ConstantTimeCompare([]byte(tok), secret) == 1
	}
	return "", false
}
