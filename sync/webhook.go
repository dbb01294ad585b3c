package sync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	gosync "sync"
	"time"
)

// maxHookBody bounds a webhook payload.
const maxHookBody = 5 << 20

var commitHex = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Push is what a verified push webhook says.
type Push struct {
	After string   // the pushed commit; "" when absent or a deleted branch
	Repos []string // the repository's URLs the payload names (clone, SSH, web)
}

// WebhookHandler takes git push webhooks. GitHub's and Gitea's
// (X-Hub-Signature-256, an HMAC of the body with the secret) and GitLab's
// (X-Gitlab-Token, the secret) are verified; anything else gets 401. A
// verified push calls route, which triggers the sources following the
// pushed repository and returns their names; the answer is 202 with them,
// or 404 when no source follows the repository.
func WebhookHandler(secret []byte, route func(ctx context.Context, p Push) ([]string, error), log *slog.Logger) http.Handler {
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
			http.Error(w, "webhooks are off: this agent was started without a webhook secret", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			http.Error(w, "payload over 5 MiB", http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "cannot read the payload: "+err.Error(), http.StatusBadRequest)
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
		p := readPush(body)
		sources, err := route(r.Context(), p)
		if err != nil {
			log.Error("webhook: could not trigger a sync", "err", err)
			http.Error(w, "could not trigger a sync: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(sources) == 0 {
			log.Warn("webhook: no source follows the pushed repository", "from", kind, "repos", p.Repos)
			http.Error(w, "no source of this agent follows "+strings.Join(p.Repos, " or "), http.StatusNotFound)
			return
		}
		log.Info("webhook: sync triggered", "from", kind, "after", p.After, "sources", sources)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"triggered": sources, "after": p.After})
	})
}

// Recent tells repeated triggers apart from new ones, so that a storm of
// webhooks for one push writes one trigger: Fresh is false for a (source,
// commit) seen within Window. A trigger naming no commit is always fresh:
// it may announce a push the last one did not see. It is safe for concurrent use and keeps at
// most a few thousand entries.
type Recent struct {
	Window time.Duration
	mu     gosync.Mutex
	seen   map[string]time.Time
}

// Fresh reports whether source's trigger for commit after was not seen
// within the window, and records it.
func (r *Recent) Fresh(source, after string, now time.Time) bool {
	if after == "" {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	key := source + "\x00" + after
	if at, ok := r.seen[key]; ok && now.Sub(at) < r.Window {
		return false
	}
	if len(r.seen) >= 4096 {
		for k, at := range r.seen {
			if now.Sub(at) >= r.Window {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= 4096 {
			clear(r.seen)
		}
	}
	r.seen[key] = now
	return true
}

// readPush reads the commit and the repository's URLs of a GitHub,
// GitLab or Gitea push payload.
func readPush(body []byte) Push {
	var payload struct {
		After      string         `json:"after"`
		Repository map[string]any `json:"repository"`
		Project    map[string]any `json:"project"`
	}
	_ = json.Unmarshal(body, &payload)
	p := Push{After: strings.ToLower(payload.After)}
	if !commitHex.MatchString(p.After) || p.After == strings.Repeat("0", 40) {
		p.After = "" // no commit, or a deleted branch: just sync
	}
	seen := map[string]bool{}
	for _, m := range []map[string]any{payload.Repository, payload.Project} {
		for _, k := range []string{"clone_url", "ssh_url", "git_url", "html_url", "url", "git_http_url", "git_ssh_url", "web_url", "homepage"} {
			if u, ok := m[k].(string); ok && u != "" && !seen[u] {
				seen[u] = true
				p.Repos = append(p.Repos, u)
			}
		}
	}
	return p
}

// SameRepo reports whether a source's repository URL and a URL from a
// webhook name the same repository: host and path compared, without
// scheme, user, port, ".git" or trailing slash, so that
// git@github.com:org/units.git matches https://github.com/org/units.
func SameRepo(a, b string) bool {
	ka, kb := repoKey(a), repoKey(b)
	return ka != "" && ka == kb
}

func repoKey(u string) string {
	u = strings.TrimSpace(u)
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		host, path, _ := strings.Cut(u, "/")
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		if h, _, ok := strings.Cut(host, ":"); ok {
			host = h
		}
		u = host + "/" + path
	} else if m := scpURL.FindStringSubmatch(u); m != nil {
		u = m[1] + "/" + m[2]
	}
	host, path, _ := strings.Cut(u, "/")
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if path == "" {
		return strings.ToLower(host)
	}
	return strings.ToLower(host) + "/" + path
}

var scpURL = regexp.MustCompile(`^(?:[^@/]+@)?([^/:]+):/?(.*)$`)

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
