// Package quotes is the quote service's HTTP API: a random quote from a fixed
// set, costing CPU in proportion to the requested strength, as the tutorial's
// Java quote service did to make scaling visible.
package quotes

import (
	"crypto/sha256"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/goblog/goblog/internal/jsonhttp"
)

// MaxStrength bounds the work one request may ask for.
const MaxStrength = 10

// Quote is the answer of GET /api/quote.
type Quote struct {
	Text      string `json:"quote"`
	IPAddress string `json:"ipAddress"`
	Language  string `json:"language"`
}

var texts = []string{
	"Simplicity is prerequisite for reliability. - Edsger W. Dijkstra",
	"Premature optimization is the root of all evil. - Donald Knuth",
	"Make it work, make it right, make it fast. - Kent Beck",
	"A distributed system is one in which the failure of a computer you didn't even know existed can render your own computer unusable. - Leslie Lamport",
	"Clear is better than clever. - Rob Pike",
	"Don't communicate by sharing memory, share memory by communicating. - Rob Pike",
	"There are only two hard things in Computer Science: cache invalidation and naming things. - Phil Karlton",
	"Everything fails, all the time. - Werner Vogels",
	"The network is reliable. - the first fallacy of distributed computing",
	"Programs must be written for people to read, and only incidentally for machines to execute. - Harold Abelson",
}

// Handler serves /api/quote and /health. IPAddress is "<hostname>/<ip>:8080".
type Handler struct {
	bodies atomic.Pointer[[][]byte] // one encoded answer per text, built once
	mux    *http.ServeMux
}

// SetIPAddress replaces the reported "<hostname>/<ip>:<port>". The answers
// are encoded here, once, not per request.
func (h *Handler) SetIPAddress(s string) {
	bodies := make([][]byte, len(texts))
	for i, t := range texts {
		b, err := json.Marshal(Quote{Text: t, IPAddress: s, Language: "en"})
		if err != nil {
			panic(err) // strings always encode
		}
		bodies[i] = append(b, '\n')
	}
	h.bodies.Store(&bodies)
}

var (
	jsonContentType = []string{"application/json"}
	healthUp        = []byte(`{"status":"UP"}` + "\n")
)

// NewHandler returns the service's routes.
func NewHandler(ipAddress string) *Handler {
	h := &Handler{mux: http.NewServeMux()}
	h.SetIPAddress(ipAddress)
	h.mux.HandleFunc("GET /api/quote", h.quote)
	h.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = jsonContentType
		_, _ = w.Write(healthUp)
	})
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) quote(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.RawQuery
	var param string
	if strings.HasPrefix(raw, "strength=") && !strings.ContainsAny(raw, "&;%+") {
		param = raw[len("strength="):] // the common case, read without a map
	} else {
		param = r.URL.Query().Get("strength")
	}
	strength, err := ParseStrength(param)
	if err != nil {
		jsonhttp.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	Burn(strength)
	bodies := *h.bodies.Load()
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(bodies[rand.IntN(len(bodies))])
}

// ParseStrength reads the strength parameter: empty is 0, else 0…MaxStrength.
func ParseStrength(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > MaxStrength {
		return 0, errStrength(s)
	}
	return n, nil
}

type errStrength string

func (e errStrength) Error() string {
	return "strength must be an integer from 0 to " + strconv.Itoa(MaxStrength) + ", got " + strconv.Quote(string(e))
}

// Work is the number of hash rounds a strength costs: 0 at 0, doubling per
// step from 1, so 10 costs 1024 rounds (about 0.2 ms on this machine, 4 about 5 µs).
func Work(strength int) int {
	if strength <= 0 {
		return 0
	}
	return 1 << strength
}

// Burn spends Work(strength) rounds of SHA-256.
func Burn(strength int) [32]byte {
	var sum [32]byte
	for i := 0; i < Work(strength); i++ {
		sum = sha256.Sum256(sum[:])
	}
	return sum
}
